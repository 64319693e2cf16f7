"""A tokenizer trained on the distillation's rows (issue 22, item 1): digits are single tokens,
every training row round-trips exactly, the same rows give the same tokenizer (hash) and the
same run ids, a resumed run reloads it, and a vocab_size the rows cannot support (or a KD
method, whose teacher needs the student's tokenizer) is one line, exit 2, nothing written.
The distillation test trains a real tiny student on it through `run_distill`."""
from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from support import REPO, query
from factory.backends.reference import long_solution, short_solution
from factory.cli import main
from factory.distill.eval_sets import EvalItem
from factory.distill.format import math_prompt, math_target
from factory.distill.run import _trained_tokenizer, run_distill
from factory.distill.spec import DistillSpec, StudentSpec, load_distill
from factory.distill.tokenizer import DIGITS, UNK, TokenizerError, tokenizer_key, trained_tokenizer, unknown_chars
from factory.distill.train import encode_row
from factory.pipeline import run_job
from factory.recipes.math_problems import generate_problem
from factory.spec import parse_job
from .test_reference_teacher import math_job
from .test_train import Killed

TINY = {"hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64}


def math_rows(n: int, seed: int = 5) -> list[tuple[str, str]]:
    problems = [generate_problem(seed, i) for i in range(n)]
    return [(math_prompt(p.question), math_target(w(p))) for p in problems for w in (long_solution, short_solution)]


def texts_of(rows) -> list[str]:
    return [t for row in rows for t in row]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return trained_tokenizer(texts_of(math_rows(300)), 512, tmp_path_factory.mktemp("tok"))


def test_digits_are_single_tokens_and_every_training_row_round_trips(trained):
    tok = trained.tokenizer
    assert len(tok) == 512 and all(d in tok.get_vocab() for d in DIGITS)
    # no token but the ten digits holds a digit: numbers are spelled one digit a token
    assert {t for t in tok.get_vocab() if any(c.isdigit() for c in t)} == set(DIGITS)
    for prompt, target in math_rows(300):
        for text in (prompt, target):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            assert tok.unk_token_id not in ids and tok.decode(ids) == text, text
        # the training path: prompt and target apart, then the EOS
        row = encode_row(tok, prompt, target, 10_000)["input_ids"]
        assert row[-1] == tok.eos_token_id and tok.decode(row[:-1]) == prompt + target
    assert tok.tokenize("Final answer: 1234") [-4:] == ["1", "2", "3", "4"]


def test_the_same_rows_give_the_same_tokenizer_in_any_order_and_process(trained, tmp_path):
    texts = texts_of(math_rows(300))
    shuffled = list(texts)
    random.Random(1).shuffle(shuffled)
    again = trained_tokenizer(shuffled, 512, tmp_path / "a")
    assert not again.meta["reloaded"] and again.sha256 == trained.sha256
    assert again.path.name == trained.path.name == tokenizer_key(texts, 512)
    # another process (the BPE trainer's own threads and hash seeds) trains the same bytes
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    code = ("import json, sys; from pathlib import Path; from factory.distill.tokenizer import trained_tokenizer; "
            "texts = json.loads(Path(sys.argv[1]).read_text()); "
            "print(trained_tokenizer(texts, 512, Path(sys.argv[2])).sha256)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "texts.json"), str(tmp_path / "b")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == trained.sha256
    # a saved one is reloaded, not retrained; other rows make another tokenizer
    assert trained_tokenizer(texts, 512, tmp_path / "a").meta["reloaded"]
    other = trained_tokenizer(texts_of(math_rows(300, seed=6)), 512, tmp_path / "a")
    assert other.sha256 != trained.sha256


def test_characters_no_row_has_are_unknown_and_counted(trained):
    tok = trained.tokenizer
    assert "é" not in tok.get_vocab()
    assert tok.convert_ids_to_tokens(tok("é", add_special_tokens=False)["input_ids"]) == [UNK]
    assert unknown_chars(trained, ["Café au lait", "plain"]) == 1


def test_the_tokenizer_is_trained_on_every_mixture_and_never_on_evaluation_items(tmp_path):
    rows = math_rows(150)
    cand = lambda p, t: SimpleNamespace(prompt=p, target=t)  # noqa: E731
    plan = SimpleNamespace(mixtures=[SimpleNamespace(rows=[("long", cand(*r)) for r in rows[::2]]),
                                     SimpleNamespace(rows=[("short", cand(*r)) for r in rows[1::2]])],
                           items=[EvalItem("e1", "Zoë has 3 apples. How many?", "3")])
    spec = DistillSpec.model_validate({"name": "t", "source": {"job": "j"}, "output_dir": str(tmp_path),
                                       "student": {"tokenizer": {"kind": "trained", "vocab_size": 400}}})
    got = _trained_tokenizer(spec, plan)
    assert got.path == tmp_path / "tokenizers" / tokenizer_key(texts_of(rows), 400)
    assert got.meta["eval_unknown_chars"] == 1  # the ë: no training row has it


def test_a_vocab_size_the_rows_cannot_support_is_one_line_and_writes_nothing(tmp_path):
    texts = texts_of(math_rows(20))
    with pytest.raises(TokenizerError, match=r"vocab_size: 30 is below what the rows need: \d+ distinct characters"):
        trained_tokenizer(texts, 30, tmp_path / "low")
    with pytest.raises(TokenizerError, match=r"vocab_size: 50000 is above what the rows can fill: .* at most \d+"):
        trained_tokenizer(texts, 50_000, tmp_path / "high")
    assert not (tmp_path / "low").exists() and not (tmp_path / "high").exists()


def test_the_spec_keeps_old_ids_and_refuses_what_cannot_work():
    assert "tokenizer" not in StudentSpec().identity()  # smollm2 (default): ids made before stand
    assert StudentSpec(tokenizer={"kind": "trained"}).tokenizer.vocab_size == 512
    with pytest.raises(ValueError, match="vocab_size is read only when kind is 'trained'"):
        StudentSpec(tokenizer={"kind": "smollm2", "vocab_size": 512})
    with pytest.raises(ValueError, match="tokenizer kind 'trained' is for kind 'tiny'"):
        StudentSpec(kind="smollm2-gguf", tokenizer={"kind": "trained"})


# --- the real path: a reference-teacher job, a distillation with a trained tokenizer -----

@pytest.fixture(scope="module")
def ref_db(tmp_path_factory):
    """60 built-in problems solved by the scripted reference teacher (every solution right)."""
    db = tmp_path_factory.mktemp("ref") / "r.duckdb"
    run_job(parse_job(math_job(db, num_samples=60)), db=db)
    return db


def spec_file(tmp_path: Path, db: Path, vocab_size: int = 300, **over) -> Path:
    spec = {"name": "tok", "db": str(db), "source": {"job": "reference", "use": "all"},
            "mixtures": ["short", "long"], "rows": 20,
            "student": {"kind": "tiny", "tiny": TINY, "tokenizer": {"kind": "trained", "vocab_size": vocab_size}},
            "training": {"epochs": 2, "batch_size": 4, "checkpoint_every": 2, "max_length": 256},
            "evaluation": {"source": "held_out", "problems": 6, "max_new_tokens": 24},
            "output_dir": str(tmp_path / "runs"), **over}
    path = tmp_path / "distill.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


class Stages:
    def __init__(self, stop_at: int | None = None):
        self.lines, self.stop_at = [], stop_at

    def stage(self, text):
        self.lines.append(text)

    def step(self, step, total, loss):
        if self.stop_at is not None and step >= self.stop_at:
            raise Killed  # after the step-2 checkpoint

    def done(self):
        pass


def test_a_distillation_trains_on_it_resumes_with_it_and_reruns_to_the_same_ids(tmp_path, ref_db, student_cache,
                                                                                 monkeypatch):
    monkeypatch.setenv("FACTORY_CACHE", str(student_cache))
    db = tmp_path / "r.duckdb"
    db.write_bytes(ref_db.read_bytes())
    spec = load_distill(spec_file(tmp_path, db))
    with pytest.raises(Killed):
        run_distill(spec, progress=Stages(stop_at=3))
    (saved,) = (tmp_path / "runs" / "tokenizers").iterdir()
    assert list((tmp_path / "runs").glob("*/checkpoints/step-000002"))

    stages = Stages()
    summaries = run_distill(spec, progress=stages)
    assert any(line.startswith("tokenizer: 300 tokens") and f"reloaded from {saved}" in line for line in stages.lines)
    assert [s.status for s in summaries] == ["trained", "trained"]
    sha = hashlib.sha256((saved / "tokenizer.json").read_bytes()).hexdigest()
    runs = query(db, "SELECT run_id, student, training, checkpoint, metrics FROM runs WHERE distill = 'tok' "
                     "ORDER BY mixture")
    resumed = []
    for run_id, student, training, checkpoint, metrics in runs:
        student, training = json.loads(student), json.loads(training)
        # the run's own copy of the tokenizer is the one it trained with, byte for byte
        assert hashlib.sha256((Path(checkpoint) / "tokenizer.json").read_bytes()).hexdigest() == sha
        assert student["tokenizer"] == {"kind": "trained", "vocab_size": 300, "sha256": sha}
        assert student["tokenizer_report"]["eval_unknown_chars"] == 0
        config = json.loads((Path(checkpoint) / "config.json").read_text())
        assert config["vocab_size"] == 300 and student["parameters"] < 100_000  # 300 x 32 tied embedding
        assert json.loads(metrics)["n"] >= 1 and training["steps"] >= 4
        resumed.append(training["resumed_from_step"])
    assert max(resumed) >= 2  # the interrupted run went on from its checkpoint

    # the same rows from scratch elsewhere: the same tokenizer, so the same run ids (already done)
    fresh = Stages()
    again = run_distill(spec.model_copy(update={"output_dir": str(tmp_path / "elsewhere")}), progress=fresh)
    assert any("saved to" in line for line in fresh.lines)
    assert [s.status for s in again] == ["already done"] * 2
    assert sorted(s.run_id for s in again) == sorted(r[0] for r in runs)


@pytest.mark.parametrize("vocab_size, says", [(20, "is below what the rows need"),
                                              (100_000, "is above what the rows can fill")])
def test_a_bad_vocab_size_exits_2_with_nothing_written(tmp_path, ref_db, student_cache, monkeypatch, capsys,
                                                         vocab_size, says):
    monkeypatch.setenv("FACTORY_CACHE", str(student_cache))
    db = tmp_path / "r.duckdb"
    db.write_bytes(ref_db.read_bytes())
    before = query(db, "SELECT count(*) FROM mixtures")
    assert main(["distill", str(spec_file(tmp_path, db, vocab_size)), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "student.tokenizer.vocab_size" in err and len(err.splitlines()) == 1, err
    assert query(db, "SELECT count(*) FROM mixtures") == before and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("method", ["kd", "gkd"])
def test_a_trained_tokenizer_with_kd_exits_2(tmp_path, ref_db, capsys, method):
    path = spec_file(tmp_path, ref_db, training={"method": method})
    assert main(["distill", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"a trained tokenizer cannot train with method {method}" in err and len(err.splitlines()) == 1, err
