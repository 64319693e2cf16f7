"""Whether a job was curated, and the warning when a reader of the accepted view finds it
was not: without `factory curate` the view holds the accepted samples minus exact
duplicates only (no near or semantic dedup, no decontamination)."""
from __future__ import annotations

import warnings

from stores.handle import takes_store


class UncuratedWarning(UserWarning):
    """The accepted view of a job that has no curation run was read."""


def was_curated(con, job: str) -> bool:
    """True when `factory curate` finished on the job (a failing pass writes no row)."""
    return con.execute("SELECT count(*) FROM curation_runs WHERE job = ?", [job]).fetchone()[0] > 0


def uncurated_message(ref: str) -> str:
    return (f"job {ref} was never curated: the accepted view has no near/semantic dedup or decontamination; "
            f"run `factory curate {ref}` first")


@takes_store
def warn_if_uncurated(con, job: str, ref: str) -> bool:
    """warnings.warn(UncuratedWarning) when the job (a fingerprint) was never curated; ref is
    how the caller named it (a name or a fingerprint), shown in the advice. True if warned."""
    if was_curated(con, job):
        return False
    warnings.warn(uncurated_message(ref), UncuratedWarning, stacklevel=2)
    return True
