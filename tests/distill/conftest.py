import pytest

from factory.distill.spec import StudentSpec, TinyStudentSpec
from factory.distill.student import smollm2_tokenizer

# hidden 32, 1 layer: 1.6 M parameters (1.57 M of them the tied 49,152 x 32 embedding);
# a step of 8 short rows takes ~20 ms on 2 cores.
SMALL = StudentSpec(kind="tiny", tiny=TinyStudentSpec(hidden_size=32, layers=1, heads=2, intermediate_size=64))


@pytest.fixture(scope="session")
def student_cache(tmp_path_factory):
    """A cache dir shared by the session: the SmolLM2 tokenizer is read out of the GGUF once
    (~4-7 s) and reloaded from here (~0.3 s); the gguf test's fp32 conversion lands here too."""
    cache = tmp_path_factory.mktemp("student-cache")
    smollm2_tokenizer(cache)
    return cache


@pytest.fixture(scope="session")
def cached_smollm2_tokenizer(student_cache):
    return smollm2_tokenizer(student_cache)


MATH_ROLES = ("problem_writer", "generator", "long_solver", "short_solver", "reviewer", "adjudicator")


@pytest.fixture(scope="module")
def math_db(tmp_path_factory):
    """A fake-backend math job of 24 built-in problems: long and short solutions that give an
    answer (never the right one: the fake sums the question's numbers)."""
    from factory.pipeline import run_job
    from factory.spec import parse_job
    from conftest import fake_job  # tests/conftest.py (tests/ is on sys.path)

    db = tmp_path_factory.mktemp("distill") / "m.duckdb"
    spec = parse_job(fake_job(name="fake-math", recipe="math", num_samples=24,
                              math={"source": "builtin", "max_steps": 2, "programs": 1},
                              roles={r: {"backend": "fake", "model": "fake"} for r in MATH_ROLES}))
    run_job(spec, db=db)
    return db
