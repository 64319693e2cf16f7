"""The public step API (issue 24 item 2), run from docs/plugins.md: the example recipe's
files are written from the page, its gate step reads the generator's parsed output and
writes signal + verdict in one call, `factory stats` counts the verdicts it decided, and
the recipe imports a module next to it, in the driver and (a backend file) in Ray actors."""
from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import duckdb
import pytest
import yaml

from factory.pipeline import run_job
from factory.spec import JobError, load_job
from factory.steps import MakeSeeds, Step, StepError, check_steps

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
FAKE = {"backend": "fake", "model": "fake"}


def write_doc_files(root: Path) -> list[str]:
    """Each ```block preceded by `<!-- file: PATH -->` in docs/plugins.md, written under root."""
    found = re.findall(r"<!-- file: (\S+) -->\n```[a-z]*\n(.*?)```", DOC.read_text(), re.S)
    for name, body in found:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(body)
    return [name for name, _ in found]


def facts_job(root: Path, **extra) -> Path:
    job = {"name": "facts", "recipe": "lib/facts.py:Facts", "num_samples": 6, "seed": 2, "reviewers": 2,
           "options": {"max_words": 3},
           "roles": {r: dict(FAKE) for r in ("generator", "reviewer", "adjudicator")},
           "execution": {"executor": "local", "batch_size": 3}, **extra}
    path = root / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def rows(db, sql):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_documented_example_runs_and_stats_count_its_gate(tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "path", list(sys.path))
    names = write_doc_files(tmp_path)
    assert "lib/facts.py" in names and "lib/fact_rules.py" in names
    spec = load_job(facts_job(tmp_path, options={"max_words": 1}))
    import fakes

    fakes.script(json.dumps({"question": "Which river is longest?", "answer": "Nile"}))  # passes; the rest fail
    db = tmp_path / "facts.duckdb"
    run_job(spec, db=db)
    gate = rows(db, "SELECT value, details, template, model FROM signals WHERE signal = 'answer_words'")
    assert len(gate) >= 1
    assert all(template == "facts/generator@1" and model for _, _, template, model in gate)  # lineage filled
    failed = [v for v, d, _, _ in gate if not json.loads(d)["passed"]]
    verdicts = rows(db, "SELECT count(*) FROM verdicts WHERE stage = 'answer_words'")[0][0]
    assert verdicts == len(failed) == len(gate) - 1 >= 1  # the fake's answers ("fake judge") have 2 words
    from factory.api import stats

    for exact in (False, True):
        signal = stats(db, "facts", exact=exact)["signals"]["answer_words"]
        assert signal["verdicts_decided"] == verdicts
    # rule_checks got the parsed output: question_words is a field of the JSON, not the text
    checks = [json.loads(c) for (c,) in rows(db, "SELECT rule_checks FROM samples") if c]
    assert checks and all("question_words" in c for c in checks)


def test_a_step_that_reads_what_nothing_wrote_is_refused_before_the_database(tmp_path):
    class Reads:
        reads, writes = ("reviews",), ()

        def run(self, ctx, state): ...

    assert isinstance(Reads(), Step)
    with pytest.raises(StepError, match=r"steps\(\)\[1\] Reads reads 'reviews', which no earlier step writes"):
        check_steps([MakeSeeds(), Reads()], "demo")

    class Bad:
        reads, writes = ("sampels",), ()

        def run(self, ctx, state): ...

    with pytest.raises(StepError, match=r"'sampels' is not a BatchState field; allowed: seeds, made, parsed"):
        check_steps([MakeSeeds(), Bad()], "demo")


def test_a_bad_step_in_a_recipe_is_exit_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import sys

    from factory.cli import main

    monkeypatch.setattr(sys, "path", list(sys.path))
    write_doc_files(tmp_path)
    source = (tmp_path / "lib" / "facts.py").read_text()
    (tmp_path / "lib" / "facts.py").write_text(source.replace('reads, writes = ("samples", "parsed")',
                                                              'reads, writes = ("samples", "reviews")'))
    job = facts_job(tmp_path)
    assert main(["run", str(job), "--db", str(tmp_path / "x.duckdb"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "AnswerWords reads 'reviews', which no earlier step writes" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.duckdb").exists()


BACKEND = '''
from factory.backends import Completion, ModelIdentity
import word_rules  # a module next to this file: imported in the Ray actor too


class Rules:
    @classmethod
    def identity(cls, ref):
        return ModelIdentity(backend="rules", model=ref.model, file_sha256="")

    def __init__(self, ref, threads=1):
        pass

    def generate(self, requests):
        out = []
        for r in requests:
            text = (word_rules.review() if r.json_schema else word_rules.story(r.messages[-1]["content"]))
            out.append(Completion(key=r.key, text=text, prompt_tokens=3, completion_tokens=len(text.split()),
                                  seconds=0.0))
        return out
'''
WORD_RULES = '''
import json


def story(prompt):
    return ("Once upon a time a small cat saw the big sea and was happy to swim in it all day. "
            "Then the cat met a kind old fish, and they played in the warm water until the sun went down "
            "and the stars came out over the quiet town. " + str(len(prompt)))


def review():
    return json.dumps({"creativity": 7, "coherence": 7, "grammar": 7, "age_appropriate": 7, "critique": "ok"})
'''


def rules_job(tmp_path, executor: dict, folder: str = "backend") -> Path:
    # a backend is registered under its reference once per process: a folder per test
    (tmp_path / folder).mkdir()
    (tmp_path / folder / "rules_backend.py").write_text(BACKEND)
    (tmp_path / folder / "word_rules.py").write_text(WORD_RULES)
    model = {"backend": f"{folder}/rules_backend.py:Rules", "model": "rules-v1"}
    job = {"name": "rules", "recipe": "tinystories", "num_samples": 2, "seed": 1, "reviewers": 1,
           "decision": {"truncated": "keep", "require_seed_words": False, "text_gates": "signal"},
           "roles": {r: dict(model) for r in ("generator", "reviewer", "adjudicator")}, "execution": executor}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


@pytest.mark.parametrize("ray_kind", ["started-here", "joined-by-address", "initialized-before"])
def test_a_backend_file_imports_its_neighbour_in_ray_actors(tmp_path, monkeypatch, ray_kind):
    """Started here: the folder is on the workers' PYTHONPATH (ray.init's runtime_env); joined
    by address (--address): uploaded as their working_dir; a Ray the caller initialized: on
    the engine actors' PYTHONPATH."""
    import sys

    import ray

    from factory import plugins

    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(plugins, "USER_DIRS", [])
    folder = "backend_" + ray_kind.replace("-", "_")
    spec = load_job(rules_job(tmp_path, {"executor": "ray", "engines": 1, "batch_size": 2}, folder))
    assert plugins.USER_DIRS == [str((tmp_path / folder).resolve())]
    cluster, address = None, None
    if ray_kind == "joined-by-address":
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        address = cluster.address
    elif ray_kind == "initialized-before":
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        db = tmp_path / "rules.duckdb"
        run_job(spec, db=db, address=address)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
    texts = [t for (t,) in rows(db, "SELECT text FROM samples")]
    assert len(texts) == 2 and all(t.startswith("Once upon a time") for t in texts)
    assert {json.loads(m)["model"] for (m,) in rows(db, "SELECT model FROM samples")} == {"rules-v1"}
