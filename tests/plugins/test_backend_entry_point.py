"""Issue 24 item 7, the entry-point form of a backend: docs/backends.md's rule-based backend,
written from the page into a package as pip would install it (the module and a .dist-info
whose entry_points.txt declares `[factory.backends] rules = ...`), is named `backend: rules`
by a job and answers every role under the local executor."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "backends.md"


def _block(after: str, language: str) -> str:
    """The first ```language block after the line `after` in docs/backends.md."""
    text = DOC.read_text()
    return re.search(rf"{re.escape(after)}\n+```{language}\n(.*?)```", text, re.S).group(1)


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """A site folder holding rules_pkg (the page's backend) and its .dist-info, on sys.path."""
    from factory import backends

    site = tmp_path / "site"
    (site / "rules_pkg").mkdir(parents=True)
    (site / "rules_pkg" / "__init__.py").write_text("")
    (site / "rules_pkg" / "backends.py").write_text(_block("`rules_backend.py`:", "python"))
    info = site / "rules_pkg-0.1.dist-info"
    info.mkdir()
    info.joinpath("METADATA").write_text("Metadata-Version: 2.1\nName: rules-pkg\nVersion: 0.1\n")
    info.joinpath("entry_points.txt").write_text("[factory.backends]\nrules = rules_pkg.backends:RulesBackend\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))  # "rules" is found, then forgotten
    return site


def test_a_job_names_an_entry_point_backend_and_it_runs_locally(installed, tmp_path):
    import duckdb

    from factory import backends
    from factory.pipeline import run_job
    from factory.plugins import entry_point_names
    from factory.spec import parse_job

    job = yaml.safe_load(_block("this process):", "yaml"))
    for role in job["roles"].values():
        assert role["backend"] == "rules_backend.py:RulesBackend"
        role["backend"] = "rules"  # the entry point's name instead of the file
    assert job["execution"] == {"executor": "local"}
    assert "rules" not in backends._REGISTRY and "rules" in entry_point_names("factory.backends")
    db = tmp_path / "rules.duckdb"
    result = run_job(parse_job(job, "job.yaml", str(tmp_path)), db=db)
    con = duckdb.connect(str(db), read_only=True)
    try:
        models = con.execute("SELECT DISTINCT role, model->>'backend', model->>'file_sha256' FROM samples "
                             "UNION SELECT DISTINCT role, model->>'backend', model->>'file_sha256' FROM reviews "
                             "ORDER BY 1").fetchall()
        accepted = con.execute("SELECT count(*) FROM verdicts WHERE decision = 'accept'").fetchone()[0]
    finally:
        con.close()
    code = hashlib.sha256((installed / "rules_pkg" / "backends.py").read_bytes()).hexdigest()
    assert models == [("generator", "rules", code), ("reviewer", "rules", code)]  # the identity the class gave
    assert result.seeds_processed == job["num_samples"] == accepted == 4  # as the page's run: every sample accepted
