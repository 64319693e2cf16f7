"""Token accounting: one GROUP BY role over every row a model call made.

Every model-made row carries the role that made it (migration m005), so a recipe's new
role, or a role of a user's recipe, is counted with no edit here; rows with no role
(seed-file problems, rule verdicts) made no call. A drop row always names a role, so a drop
counts when it carries a call's lineage (its request key): a math solver's or a preference
candidate's drop carries none, that call's tokens are on its solutions row. A usable
suggestion (math `source: harder`) has no row of its own: its lineage is in its seed row's
payload, and it is counted from there (so `factory stats` and the job's budget see it).
"""
from __future__ import annotations

# The tables whose rows are a model call's result. drops come apart: a drop can repeat the
# lineage of a row kept elsewhere (an unparseable adjudication is a drop row and a 'drop'
# verdict with the same lineage), and one call is counted once.
MODEL_MADE = ("samples", "reviews", "verdicts", "solutions")

# NOT MATERIALIZED: used twice, the CTE would be materialized whole (request keys included);
# inlined, the sums read only the token columns. Measured on the stats_1m bench store (1M
# samples, 4.3M model-made rows, 143k drops with lineage): 0.19 s materialized, 0.06 s
# inlined, 0.02 s for the CASE query this replaces (which had no drop de-duplication).
def made_cte(t=lambda table: table) -> str:
    """The `made` CTE: every model-made row's role, request key and tokens. t(table) names
    the relation holding a table's rows (the summaries read one batch's rows through it)."""
    rows = " UNION ALL ".join(f"""SELECT role, request_key, prompt_tokens, completion_tokens, seconds FROM {t(table)}
  WHERE job = $job AND role IS NOT NULL""" for table in MODEL_MADE)
    return f"made AS NOT MATERIALIZED ({rows})"


def calls_union(t=lambda table: table) -> str:
    """One row per model call (role, prompt and completion tokens, seconds), reading `made`."""
    return f"""SELECT role, prompt_tokens, completion_tokens, seconds FROM made
  UNION ALL
  -- a usable suggestion (math source: harder) lives in its seed row's payload with its lineage
  SELECT 'suggester', CAST(payload->>'$.suggester.prompt_tokens' AS BIGINT),
         CAST(payload->>'$.suggester.completion_tokens' AS BIGINT), CAST(payload->>'$.suggester.seconds' AS DOUBLE)
  FROM {t("seeds")} WHERE job = $job AND payload->>'$.suggester.request_key' IS NOT NULL
  UNION ALL
  SELECT role, prompt_tokens, completion_tokens, seconds FROM {t("drops")} d
  WHERE job = $job AND request_key IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM made m WHERE m.request_key = d.request_key)"""


TOKENS_SQL = f"""
WITH {made_cte()}, calls AS ({calls_union()})
SELECT role, count(*), sum(prompt_tokens), sum(completion_tokens), sum(seconds) FROM calls
GROUP BY role ORDER BY role
"""


def role_tokens(con, job: str) -> list[tuple[str, int, int, int, float | None]]:
    """(role, calls, prompt tokens, completion tokens, seconds) per role of the job's rows."""
    return [(role, calls, int(prompt or 0), int(completion or 0), seconds)
            for role, calls, prompt, completion, seconds in con.execute(TOKENS_SQL, {"job": job}).fetchall()]
