"""The likelihood cache (table `likelihood_cache`): written by the step that measures it, in
its own transaction, as the completions cache is (a score is a pure function of the text
and the reference model). The per-sample `signals` rows are batch rows: they commit with
the batch's samples and done marks (stores/store.py TABLES_WRITTEN_PER_BATCH); a review's
expected scores are read back from them by request key (cached_expected_scores).
"""
from __future__ import annotations

import json

from stores.handle import takes_store
from stores.insert import insert_rows
from stores.transaction import transaction


@takes_store
def cached_likelihoods(con, keys: list[str]) -> dict[str, tuple[float, int, float]]:
    """score key -> (mean log-probability, tokens scored, seconds it took)."""
    if not keys:
        return {}
    rows = con.execute("""SELECT score_key, mean_logprob, n_tokens, seconds FROM likelihood_cache
                          WHERE score_key IN (SELECT unnest(?))""", [list(keys)]).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


@takes_store
def put_likelihoods(con, rows: list[dict]) -> None:
    """rows: score_key, model (identity dict), mean_logprob, n_tokens, seconds."""
    with transaction(con):
        insert_rows(con, "likelihood_cache", rows, "ON CONFLICT (score_key) DO NOTHING")


def cached_expected_scores(con, role: str, keys: list[str]) -> dict[str, dict]:
    """request key -> {axis: {value: probability}} from the signals rows of `role` (the
    expected review scores, steps/review.py) keyed by those request keys."""
    if not keys:
        return {}
    rows = con.execute("""SELECT request_key, any_value(details) FROM signals
                          WHERE role = ? AND request_key IN (SELECT unnest(?)) GROUP BY request_key""",
                       [role, list(keys)]).fetchall()
    out = {}
    for key, details in rows:
        probabilities = json.loads(details)["probabilities"]
        out[key] = {axis: {int(v): p for v, p in dist.items()} for axis, dist in probabilities.items()}
    return out
