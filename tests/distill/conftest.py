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
