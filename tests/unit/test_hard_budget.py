"""Token budgets are hard caps (issue 15): a request is sent only when its worst case fits
what is neither spent nor reserved, so the spend never passes a cap, whatever the
concurrency (remote thread pool, Ray actors, a batching engine's chunks, the local loop)."""
import re

import pytest
import yaml

import fakes
from support import fake_job, query
from factory import backends
from factory.backends import Request, register
from factory.calls import Budget, BudgetExceeded
from factory.cli import main
from factory.pipeline import run_job
from factory.spec import parse_job
from stores import Store

SPENT = re.compile(r"^error: stopped: job token budget reached: ([\d,]+) of ([\d,]+) tokens spent; "
                   r"the next request needs up to ([\d,]+); committed batches are kept")


@pytest.fixture
def registry(monkeypatch):
    """Backends registered by a test go away after it."""
    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))


def remote_job(cap: int, concurrency: int = 16, n: int = 48, **kw) -> dict:
    """A remote fake ("fake-slow": 0.05 s a request, so up to `concurrency` are in flight)."""
    job = fake_job(num_samples=n, max_tokens_budget=cap, execution={"executor": "local", "batch_size": 16}, **kw)
    for role in job["roles"].values():
        role.update(backend="fake-remote", model="fake-slow",
                    endpoint={"base_url": "http://127.0.0.1:1/v1", "max_concurrency": concurrency})
    return job


def register_remote():
    register("fake-remote", fakes.fake_identity, lambda ref, threads=1: fakes.FakeBackend(ref.model), remote=True)


def spend(db, job: str) -> tuple[int, int]:
    """(tokens of the completions cache, tokens of the job's committed rows)."""
    cache = query(db, "SELECT coalesce(sum(prompt_tokens + completion_tokens), 0) FROM completions")[0][0]
    with Store(db) as store:
        rows = sum(store.tokens_spent(job).values())
    return int(cache), rows


def cache_rows(db) -> list[tuple]:
    return query(db, "SELECT request_key, prompt_tokens, completion_tokens FROM completions ORDER BY 1")


def test_the_message_states_the_real_spend_and_the_need():
    budget = Budget(3000, {}, spent={"generator": 2950})
    assert budget.refusal("generator", 410) == ("job token budget reached: 2,950 of 3,000 tokens spent; "
                                                "the next request needs up to 410")
    roles = Budget(None, {"reviewer": 500}, spent={"reviewer": 480, "generator": 9000})
    assert roles.refusal("reviewer", 60) == ("token budget of role reviewer reached: 480 of 500 tokens spent; "
                                             "the next request needs up to 60")


def test_reservations_count_until_settled_and_both_caps_apply():
    budget = Budget(1000, {"reviewer": 300})
    assert budget.reserve("generator", 600) and not budget.reserve("generator", 401)  # 600 held of 1000
    assert budget.reserve("reviewer", 300) and not budget.reserve("reviewer", 1)      # the role cap
    budget.settle("generator", 600, 150)  # arrived: 450 of its reservation comes back
    assert budget.spent == {"generator": 150} and budget.reserve("generator", 550)
    budget.release("generator", 550)      # never arrived: nothing spent
    assert budget.reserved == {"generator": 0, "reviewer": 300} and budget.spent == {"generator": 150}


@pytest.mark.parametrize("content", ["plain words", "\x00\x01\x1f" * 50, "line\nbreaks\t'quotes\"" * 20,
                                     "\u2028\U000e0001 emoji 🎉 日本語" * 30, ""])
def test_the_bound_covers_the_fake_backends_count(content):
    """FakeBackend counts len(str(messages)) // 4 prompt tokens: repr escapes a control
    byte to 4 characters, so its count can reach the byte length (plus the dict's text)."""
    messages = ({"role": "system", "content": content}, {"role": "user", "content": content * 2})
    request = Request(key="k", messages=messages, sampling={"max_tokens": 0}, seed=0)
    (done,) = fakes.FakeBackend("fake").generate([request])
    assert done.prompt_tokens <= Budget.need(request)


def test_remote_at_concurrency_16_stops_under_the_cap_and_a_higher_cap_resumes(tmp_path, capsys, registry):
    register_remote()
    path, db = tmp_path / "job.yaml", tmp_path / "b.duckdb"
    path.write_text(yaml.safe_dump(remote_job(cap=20_000)))
    assert main(["run", str(path), "--db", str(db), "--quiet"]) == 3
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    said, cap, need = (int(x.replace(",", "")) for x in SPENT.match(lines[0]).groups())
    job = parse_job(remote_job(cap=20_000)).fingerprint
    cache, rows = spend(db, job)
    # every token generated is in the cache (nothing committed before this run): the message
    # states exactly that spend, it is under the cap, and the refused request would pass it
    assert said == cache and rows <= cache <= cap == 20_000 and said + need > cap
    assert 0 < query(db, "SELECT count(*) FROM done_seeds")[0][0] < 48
    first = {key for key, _, _ in cache_rows(db)}

    fakes.CALLS.clear()
    path.write_text(yaml.safe_dump(remote_job(cap=10**9)))
    assert main(["run", str(path), "--db", str(db), "--quiet"]) == 0
    assert query(db, "SELECT count(*) FROM done_seeds")[0][0] == 48
    assert not first & {r.key for r in fakes.CALLS}  # what the stopped run generated is not asked again


def test_the_stopping_point_does_not_depend_on_concurrency(tmp_path, registry):
    """A request is admitted iff the real spend of those before it plus its worst case fits,
    whatever is in flight: 16 at a time stop at exactly the requests one at a time stop at."""
    register_remote()
    outcomes = []
    for concurrency in (16, 1):
        db = tmp_path / f"c{concurrency}.duckdb"
        with pytest.raises(BudgetExceeded) as stopped:
            run_job(parse_job(remote_job(cap=12_000, concurrency=concurrency, n=32)), db=db)
        outcomes.append((str(stopped.value), cache_rows(db)))
    assert outcomes[0] == outcomes[1]


@pytest.fixture(scope="module")
def ray_running():
    """One Ray for this file's Ray tests (~10 s a start on 2 cores); the executors leave a
    Ray they did not start running."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_ray_engines_stop_under_the_cap(tmp_path, ray_running):
    job = fake_job(num_samples=24, max_tokens_budget=9_000,
                   execution={"executor": "ray", "engines": 2, "batch_size": 8})
    db = tmp_path / "ray.duckdb"
    with pytest.raises(BudgetExceeded, match="job token budget reached") as stopped:
        run_job(parse_job(job), db=db)
    said = int(re.search(r"reached: ([\d,]+) of", str(stopped.value)).group(1).replace(",", ""))
    cache, rows = spend(db, parse_job(job).fingerprint)
    assert said == cache and rows <= cache <= 9_000


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_batching_engine_gets_only_chunks_that_fit(tmp_path, registry, executor, request):
    """vLLM-style engines get many requests per call: each request of a chunk is reserved
    before the chunk is sent."""
    if executor == "ray":
        request.getfixturevalue("ray_running")
    register("fake-batching", fakes.fake_identity, lambda ref, threads=1: fakes.FakeBackend(ref.model), batching=True)
    job = fake_job(num_samples=24, max_tokens_budget=9_000,
                   execution={"executor": executor, "engines": 2, "batch_size": 12})
    for role in job["roles"].values():
        role["backend"] = "fake-batching"
    db = tmp_path / "chunks.duckdb"
    with pytest.raises(BudgetExceeded, match="job token budget reached"):
        run_job(parse_job(job), db=db)
    cache, rows = spend(db, parse_job(job).fingerprint)
    assert rows <= cache <= 9_000


def test_local_role_cap_and_job_cap_both_hold(tmp_path):
    job = fake_job(num_samples=16, max_tokens_budget=50_000)
    job["roles"]["reviewer"]["max_tokens_budget"] = 3_000
    db = tmp_path / "roles.duckdb"
    with pytest.raises(BudgetExceeded, match=r"^token budget of role reviewer reached: [\d,]+ of 3,000 tokens"):
        run_job(parse_job(job), db=db)
    reviews = query(db, "SELECT coalesce(sum(prompt_tokens + completion_tokens), 0) FROM completions "
                        "WHERE text LIKE '%\"critique\"%'")[0][0]  # the reviewer's rubric
    assert 0 < reviews <= 3_000 and spend(db, parse_job(job).fingerprint)[0] <= 50_000


@pytest.mark.model
def test_real_llama_cpp_server_at_concurrency_16_stays_under_the_cap(tmp_path, monkeypatch):
    """llama.cpp's server on the packaged SmolLM2 GGUF: its own tokenizer counts the prompt
    (chat template, default system message), and every request's count is within the bound
    reserved for it."""
    from backends.test_openai_backend import free_port, start_server

    needs = {}
    bound = Budget.need

    def recorded(request):
        needs[request.key] = bound(request)
        return needs[request.key]

    monkeypatch.setattr(Budget, "need", staticmethod(recorded))
    port = free_port()
    server = start_server(port)
    try:
        endpoint = {"base_url": f"http://127.0.0.1:{port}/v1", "schema_format": "json_object", "max_concurrency": 16,
                    "timeout_s": 120, "max_retries": 1}
        # 8 tokens a story: the generator's requests alone reach the cap (~27 of them, ~1 s
        # each on 2 cores); a request reserves 580-670 (~470 prompt bytes + 128 + 8) and
        # costs 121-141 (measured), so 6 go out at once, then fewer as the cap nears.
        job = fake_job(num_samples=32, reviewers=2, max_tokens_budget=4_000,
                       execution={"executor": "local", "batch_size": 32})
        for role in job["roles"].values():
            role.update(backend="openai", model="smollm2", endpoint=endpoint, sampling={"max_tokens": 8})
        db = tmp_path / "real.duckdb"
        with pytest.raises(BudgetExceeded, match="job token budget reached") as stopped:
            run_job(parse_job(job), db=db)
    finally:
        server.kill()
        server.wait()
    said = int(re.search(r"reached: ([\d,]+) of", str(stopped.value)).group(1).replace(",", ""))
    cache, rows = spend(db, parse_job(job).fingerprint)
    assert said == cache and rows <= cache <= 4_000
    used = {key: p + c for key, p, c in cache_rows(db)}
    assert used and all(used[key] <= needs[key] for key in used)
