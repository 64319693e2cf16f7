"""`factory browse`: serve app.py on 127.0.0.1 only, print the URL, run until Ctrl-C."""
from __future__ import annotations

import getpass
from pathlib import Path

from stores.snapshot import open_for_reading
from stores.stats import resolve_job


def checked_job(db: str | Path, job: str | None) -> str | None:
    """The job's fingerprint (None: every job), or UnknownJob / StoreError before serving."""
    con = open_for_reading(db)
    try:
        return None if job is None else resolve_job(con, job)
    finally:
        con.close()


def serve(db: str | Path, job: str | None = None, port: int = 8765, labeller: str | None = None, say=print) -> int:
    import uvicorn

    from factory.browse.app import make_app

    fingerprint = checked_job(db, job)
    labeller = labeller or getpass.getuser() or "me"
    app = make_app(db, fingerprint, port=port, labeller=labeller)
    line = f"factory browse: http://127.0.0.1:{port}/ (database {db}, labels as {labeller}; Ctrl-C stops)"

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            if self.started:  # listening: the URL line means the page answers now (a test waits on it)
                say(line)

    server = Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    server.run()
    return 0 if server.started else 1
