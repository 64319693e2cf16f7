"""The likelihood cache (table `likelihood_cache`): written by the step that measures it, in
its own transaction, as the completions cache is (a score is a pure function of the text
and the reference model). The per-sample `signals` rows are batch rows: they commit with
the batch's samples and done marks (stores/store.py TABLES_WRITTEN_PER_BATCH).
"""
from __future__ import annotations

from stores.insert import insert_rows
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
        insert_rows(con, "likelihood_cache", rows, "ON CONFLICT (score_key) DO NOTHING")
