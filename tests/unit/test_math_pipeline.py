"""Math with a verifier on the fake backend: seed files, sandboxed programs, verification."""
import json

import duckdb
import pytest

import fakes
from support import fake_job, query
from factory.pipeline import run_job
from factory.spec import JobError, parse_job
from stores.stats import job_stats

ROLES = ("problem_writer", "generator", "long_solver", "short_solver", "reviewer", "adjudicator")


def math_job(**math):
    job = fake_job(recipe="math", math=math, roles={r: {"backend": "fake", "model": "fake"} for r in ROLES})
    return parse_job(job)


q = query


@pytest.fixture
def seed_file(tmp_path):
    lines = [json.dumps({"question": f"Tom has {a} pens and gets {b} more. How many pens?", "answer": f"{a}+{b}\n#### {a + b}"})
             for a, b in [(3, 4), (10, 5), (7, 8), (1, 1)]]
    lines.insert(2, "{not json")
    lines.insert(4, json.dumps({"question": "How many?", "answer": "no final line"}))
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


# Served to the first program request (a file's problems need no model call before it), so
# the hostile path is taken for certain, not when a hash happens to end in 0.
HOSTILE = "```python\ndef simple_math_problem():\n    import os\n    return os.system('touch scripted-hostile')\n```"


def test_seed_file_problems_are_verified_against_ground_truth(tmp_path, seed_file):
    db = tmp_path / "m.duckdb"
    spec = math_job(source="file", seed_file=str(seed_file), programs=3)
    fakes.script(HOSTILE)
    result = run_job(spec, db=db)
    assert result.target == 6  # capped at the file's lines, not num_samples
    drops = q(db, "SELECT reason FROM drops WHERE role = 'seed' ORDER BY reason")
    assert drops == [(f"{seed_file}:3: not JSON (Expecting property name enclosed in double quotes)",),
                     (f"{seed_file}:5: answer has no '#### n' final line",)]
    # every attempt is stored: 3 programs, a long and a short solution per problem
    assert q(db, "SELECT kind, count(*) FROM solutions GROUP BY 1 ORDER BY 1") == [("long", 4), ("program", 12), ("short", 4)]
    statuses = {s for (s,) in q(db, "SELECT DISTINCT status FROM solutions WHERE kind = 'program'")}
    assert statuses <= {"ok", "denied", "unparseable", "error"} and "ok" in statuses
    # an unparseable attempt is a drop row too, naming the sample, with the raw text
    program_drops = q(db, "SELECT reason, raw_text, sample_id FROM drops WHERE role = 'generator'")
    assert program_drops and all(r.startswith("no `def simple_math_problem():`") and raw and sid
                                 for r, raw, sid in program_drops)
    # the hostile attempt (os.system) never ran in our process: the sandbox denied it
    scripted = q(db, "SELECT status, status_reason FROM solutions WHERE text LIKE '%scripted-hostile%'")
    assert len(scripted) == 1 and scripted[0][0] == "denied" and "'os'" in scripted[0][1], scripted
    assert not (tmp_path / "scripted-hostile").exists() and not (seed_file.parent / "scripted-hostile").exists()
    denied = q(db, "SELECT status_reason FROM solutions WHERE status = 'denied'")
    assert denied and all("os" in r for (r,) in denied)
    v = q(db, "SELECT verified, reference_source, reference_answer, program_answer, long_correct, reason FROM verifications")
    assert len(v) == 4
    for verified, source, ref, answer, long_ok, reason in v:
        assert source == "ground_truth" and (verified == (answer == ref)) and long_ok
        assert (reason == "verified") == verified
        assert verified or reason.startswith(("programs' answer", "no program returned a number")), reason
    assert any(row[0] for row in v)
    # only verified samples are reviewed and can be accepted
    unverified_accepted = q(db, """SELECT count(*) FROM verdicts JOIN verifications USING (sample_id)
                                   WHERE decision = 'accept' AND NOT verified""")[0][0]
    assert unverified_accepted == 0
    stats = job_stats(duckdb.connect(str(db), read_only=True), None)
    assert stats["verification"]["checked"] == 4 and stats["funnel"]["dropped"] >= 2


def test_generated_problems_take_their_answer_from_a_majority(tmp_path):
    db = tmp_path / "m.duckdb"
    run_job(math_job(source="generated", programs=5), db=db)
    rows = q(db, """SELECT s.text, s.payload->>'ground_truth', v.reference_source, v.agreement, v.verified
                    FROM samples s JOIN verifications v USING (sample_id)""")
    assert rows
    for text, truth, source, agreement, verified in rows:
        assert text.startswith("Sam has") and truth is None
        assert source in ("majority", "none") and (verified == (source == "majority"))
        assert agreement is not None
    lineage = q(db, "SELECT DISTINCT template FROM samples")
    assert lineage == [("math/problem_writer@1",)]


def test_builtin_problems_record_why_verification_failed(tmp_path):
    db = tmp_path / "m.duckdb"
    run_job(math_job(source="builtin", programs=2, families=["money", "rates"]), db=db)
    origins = {o.split(":")[1] for (o,) in q(db, "SELECT payload->>'origin' FROM samples")}
    assert origins <= {"money", "rates"}
    reasons = q(db, "SELECT reason FROM verifications WHERE NOT verified")
    assert reasons and all(r.startswith(("programs' answer", "no program returned")) for (r,) in reasons)


def test_math_options_are_checked(tmp_path):
    with pytest.raises(JobError, match="source 'file' needs seed_file"):
        math_job(source="file")
    with pytest.raises(JobError, match="unknown family 'algebra'"):
        math_job(families=["algebra"])
    with pytest.raises(JobError, match="roles.long_solver: not a role of recipe tinystories"):
        parse_job(fake_job(roles={"long_solver": {"backend": "fake"}}))


def test_a_missing_seed_file_fails_before_the_database_exists(tmp_path):
    db = tmp_path / "never.duckdb"
    with pytest.raises(FileNotFoundError, match="seed file .* does not exist"):
        run_job(math_job(source="file", seed_file=str(tmp_path / "none.jsonl")), db=db)
    assert not db.exists()
