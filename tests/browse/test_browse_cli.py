"""`factory browse` refuses before serving: a bad port (exit 2), an unknown job or no
database (exit 1), each one line; nothing is created."""
from __future__ import annotations

from factory.cli import main


def test_bad_port_unknown_job_no_database(job_db, tmp_path, capsys):
    db, _ = job_db
    for argv, rc, says in ((["browse", "--db", str(db), "--port", "70000"], 2, "--port must be 1-65535"),
                           (["browse", "no-such-job", "--db", str(db)], 1, "no-such-job"),
                           (["browse", "--db", str(tmp_path / "none.duckdb")], 1, "no database at")):
        assert main(argv) == rc
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and says in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "none.duckdb").exists()
