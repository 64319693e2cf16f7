"""Per-sample signals (table `signals`) and the likelihood cache (table `likelihood_cache`).

Both are written by the step that measures them, in their own transaction, as the
completions cache is: a signal is a pure function of (sample text, reference model) or of
the cached completion, so a batch that is killed before it commits leaves rows a rerun
recreates identically (same sample id, same value; ON CONFLICT DO NOTHING). Readers join
them to `samples`, so a row of an uncommitted sample is never shown.
"""
from __future__ import annotations

from stores.store import _insert
from stores.transaction import transaction


def cached_likelihoods(con, keys: list[str]) -> dict[str, tuple[float, int, float]]:
    """score key -> (mean log-probability, tokens scored, seconds it took)."""
    if not keys:
        return {}
    rows = con.execute("""SELECT score_key, mean_logprob, n_tokens, seconds FROM likelihood_cache
                          WHERE score_key IN (SELECT unnest(?))""", [list(keys)]).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def put_likelihoods(con, rows: list[dict]) -> None:
    """rows: score_key, model (identity dict), mean_logprob, n_tokens, seconds."""
    with transaction(con):
        _insert(con, "likelihood_cache", rows, "ON CONFLICT (score_key) DO NOTHING")


def put_signals(con, rows: list[dict]) -> None:
    """rows: sample_id, job, signal, value, details (dict) and the lineage columns."""
    with transaction(con):
        _insert(con, "signals", rows, "ON CONFLICT (sample_id, signal) DO NOTHING")
