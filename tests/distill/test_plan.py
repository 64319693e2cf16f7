"""From a math job's store to a plan: held-out problems never train, eval items share no
n-gram with training rows, bad requests are one line and write nothing."""
import pytest

from support import fake_job, query
from factory.distill.eval_sets import ngrams
from factory.distill.plan import plan_math
from factory.distill.spec import DistillSpec, load_distill
from factory.pipeline import run_job
from factory.spec import JobError, parse_job
from stores import Store

def distill(**kw) -> DistillSpec:
    data = {"name": "d", "source": {"job": "fake-math", "use": "all", "require": "answered"}}
    data.update(kw)
    return DistillSpec.model_validate(data)


def test_held_out_problems_never_train_and_share_no_ngram(math_db):
    spec = distill(evaluation={"source": "held_out", "problems": 8, "overlap_ngram": 8})
    with Store(math_db) as store:
        plan = plan_math(store.con, spec)
        again = plan_math(store.con, spec)
    assert [m.mixture_id for m in plan.mixtures] == [m.mixture_id for m in again.mixtures]
    held = {i.item_id for i in plan.items}
    trained = {c.sample_id for m in plan.mixtures for _, c in m.rows}
    assert held and trained and not held & trained
    assert len(plan.items) + plan.eval_removed == 8
    grams = set().union(*(ngrams(c.prompt + " " + c.target, 8) for m in plan.mixtures for _, c in m.rows))
    assert all(ngrams(i.question, 8).isdisjoint(grams) for i in plan.items)
    assert [m.name for m in plan.mixtures] == ["long", "short", "mix-long"]
    assert len({len(m.rows) for m in plan.mixtures}) == 1


def test_builtin_eval_items_are_fresh_and_exact(math_db):
    spec = distill(evaluation={"source": "builtin", "problems": 10, "seed": 77})
    with Store(math_db) as store:
        plan = plan_math(store.con, spec)
    assert len(plan.items) == 10 and all(i.item_id.startswith("builtin:77:") for i in plan.items)
    questions = {c.prompt for m in plan.mixtures for _, c in m.rows}
    assert not any(i.question in q for i in plan.items for q in questions)


def test_a_mixture_asking_too_much_says_how_many_rows_exist(math_db):
    too_many = distill(rows=1000, evaluation={"source": "builtin", "problems": 5})
    with Store(math_db) as store, pytest.raises(JobError) as err:
        plan_math(store.con, too_many)
    assert "asks for 1000 rows per mixture" in str(err.value) and "nothing trained" in str(err.value)
    assert "long: " in str(err.value) and "short: " in str(err.value)
    # the fake teacher is never right: correct-only has no row at all, and says so
    correct_only = distill(source={"job": "fake-math", "use": "all", "require": "correct"},
                           evaluation={"source": "builtin", "problems": 5})
    with Store(math_db) as store, pytest.raises(JobError, match="long: 0 problems, short: 0 problems"):
        plan_math(store.con, correct_only)


def test_a_tinystories_job_is_not_a_math_source(tmp_path):
    db = tmp_path / "s.duckdb"
    run_job(parse_job(fake_job(name="stories", num_samples=4)), db=db)
    with Store(db) as store, pytest.raises(JobError, match="source.job: stories is a tinystories job"):
        plan_math(store.con, DistillSpec.model_validate({"name": "d", "source": {"job": "stories"}}))


@pytest.mark.parametrize("text,expected", [
    ("name: d\nsource: {job: x}\nstudnet: {}\n", "studnet: unknown field; allowed here: name, task, db, source"),
    ("name: d\nsource: {job: x}\nmixtures: [mix-large]\n", "needs source.large_job"),
    ("name: d\nsource: {job: x}\nmixtures: [{name: m, parts: {long: 0.5, short: 0.6}}]\n", "sum to 1"),
    ("name: d\nsource: {job: x}\nstudent: {kind: hf}\n", "student: Value error, kind 'hf' needs path"),
    ("name: d\nsource: {job: x}\ntraining: {batch_size: 0}\n", "training.batch_size: Input should be greater"),
    ("name: d\nsource: {job: x, require: always}\n", "source.require: Input should be 'correct' or 'answered'"),
])
def test_invalid_distill_files_are_one_line(tmp_path, text, expected):
    path = tmp_path / "d.yaml"
    path.write_text(text)
    with pytest.raises(JobError) as err:
        load_distill(path)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_cli_bad_distill_exits_2_and_writes_nothing(tmp_path, math_db, capsys):
    from factory.cli import main

    spec = tmp_path / "d.yaml"
    spec.write_text(f"name: d\ndb: {math_db}\nsource: {{job: fake-math, require: correct}}\nrows: 1000\n"
                    f"evaluation: {{source: builtin, problems: 5}}\noutput_dir: {tmp_path / 'runs'}\n")
    assert main(["distill", str(spec)]) == 2
    # the source job was never curated: a warning line may come first (issue 15); the error is one line
    err = "\n".join(line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("warning:"))
    assert err.startswith("error: rows: ") and len(err.splitlines()) == 1
    assert query(math_db, "SELECT count(*) FROM runs") == [(0,)]
    assert query(math_db, "SELECT count(*) FROM mixtures") == [(0,)]
    assert not (tmp_path / "runs").exists()


def test_cli_student_path_that_is_not_a_model_exits_2_and_writes_nothing(tmp_path, math_db, capsys):
    from factory.cli import main

    (tmp_path / "notamodel").mkdir()
    spec = tmp_path / "d.yaml"
    spec.write_text(f"name: d2\ndb: {math_db}\nsource: {{job: fake-math, use: all, require: answered}}\n"
                    f"student: {{kind: hf, path: {tmp_path / 'notamodel'}}}\noutput_dir: {tmp_path / 'runs'}\n")
    assert main(["distill", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: student.path: ") and "config.json" in err and len(err.splitlines()) == 1
    assert query(math_db, "SELECT count(*) FROM mixtures WHERE distill = 'd2'") == [(0,)]
    assert not (tmp_path / "runs").exists()


def test_mix_large_draws_a_fifth_from_the_large_teachers_job(tmp_path):
    from support import MATH_ROLES

    db = tmp_path / "two.duckdb"
    for name, temperature in [("small", 0.7), ("large", 0.3)]:  # another sampling: another job, same problems
        roles = {r: {"backend": "fake", "model": "fake", "sampling": {"temperature": temperature}} for r in MATH_ROLES}
        run_job(parse_job(fake_job(name=name, recipe="math", num_samples=20, seed=5,
                                   math={"source": "builtin", "max_steps": 2, "programs": 1}, roles=roles)), db=db)
    spec = DistillSpec.model_validate({
        "name": "ml", "source": {"job": "small", "large_job": "large", "use": "all", "require": "answered"},
        "mixtures": ["short", "mix-large"], "rows": 10, "evaluation": {"source": "builtin", "problems": 3}})
    with Store(db) as store:
        plan = plan_math(store.con, spec)
        jobs = dict(store.con.execute("SELECT solution_id, job FROM solutions").fetchall())
        names = dict(store.con.execute("SELECT fingerprint, name FROM jobs").fetchall())
    short, mix = plan.mixtures
    assert mix.counts == {"large_short": 2, "short": 8}
    assert sorted(names[jobs[c.source_id]] for _, c in mix.rows) == ["large"] * 2 + ["small"] * 8
    assert {names[jobs[c.source_id]] for _, c in short.rows} == {"small"}
    assert sorted(c.problem for _, c in mix.rows) == sorted(c.problem for _, c in short.rows)
