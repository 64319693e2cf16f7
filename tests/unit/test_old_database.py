"""A database written before this session's migrations (m001-m004 only, no role or
versions columns, the job under its old fingerprint) stays readable and its job continues."""
from __future__ import annotations

import duckdb
from support import fake_job, query

from factory.pipeline import run_job
from factory.spec import parse_job
from stores import Store
from stores.migrations import MIGRATIONS
from stores.stats import job_stats

OLD_TABLES = ("jobs", "seeds", "samples", "reviews", "verdicts", "drops", "completions", "done_seeds")


def old_database(tmp_path, spec):
    """The rows a run makes, in the schema the code had before m005, under the job's old fingerprint."""
    new = tmp_path / "new.duckdb"
    run_job(spec, db=new)
    old = tmp_path / "old.duckdb"
    legacy = spec.legacy_fingerprints()[-1]
    con = duckdb.connect(str(old))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
                "applied_at TIMESTAMP DEFAULT current_timestamp)")
    for version, migration in enumerate(MIGRATIONS[:4], start=1):
        migration(con)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, migration.__name__])
    con.execute(f"ATTACH '{new}' AS n (READ_ONLY)")
    for table in OLD_TABLES:
        columns = [r[0] for r in con.execute(f"SELECT column_name FROM information_schema.columns "
                                             f"WHERE table_catalog = 'old' AND table_name = '{table}'").fetchall()]
        picked = ", ".join(f"replace({c}, '{spec.fingerprint}', '{legacy}') AS {c}" if c in ("job", "fingerprint")
                           else c for c in columns)
        con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {picked} FROM n.{table}")
    con.execute("DETACH n")
    con.close()
    return old, legacy


def test_an_old_database_is_migrated_readable_and_its_job_continues(tmp_path):
    spec = parse_job(fake_job(num_samples=8))
    old, legacy = old_database(tmp_path, spec)
    assert query(old, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'role' "
                      "AND table_name = 'samples'") == [(0,)]
    with Store(old) as store:  # migrations m005.. apply
        stats = job_stats(store.con, None)
        assert stats["job"] == legacy and stats["funnel"]["seeds"] == 8
        assert set(stats["tokens"]) == {"generator", "reviewer", "adjudicator"}  # roles back-filled
    assert query(old, "SELECT DISTINCT role FROM reviews") == [("reviewer",)]
    grown = parse_job(fake_job(num_samples=12))
    result = run_job(grown, db=old)
    assert result.job == legacy and result.seeds_done_before == 8 and result.seeds_processed == 4
    assert query(old, "SELECT count(*), count(DISTINCT job) FROM done_seeds") == [(12, 1)]
