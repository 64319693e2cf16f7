"""The SQL of per-job stats summaries: one query that turns a job's rows into mergeable
counters (name, key, value), run over a whole job (a back-fill) or over one batch's rows.

Every counter merges by a sum, except names ending ':min' / ':max'. So a batch's counters
added to the job's give the job's counters, provided that everything one sample (or seed)
makes lands in one batch: its reviews, verdict, drops, solutions and signals. That holds:
a batch is a set of seeds written whole with its done-marks (stores/store.py), and request
keys carry the seed index (factory/keys.py request_seed), so a drop repeats the request
key of a row of its own batch only. tests/unit/test_stats_summaries.py checks the result
against the exact path (stores/stats.py) on resumed jobs.

The expressions (the 3-gram hash, the score cast, the failure-reason pattern, the token
de-duplication) are those of stores/stats.py, stores/curation_stats.py and stores/tokens.py.
"""
from __future__ import annotations

from stores.tokens import MODEL_MADE, calls_union, made_cte

# Tables whose per-job row counts are kept: the read path compares them with count(*) (one
# zone-map scan each, ~1 ms at 1M rows) and recomputes from rows when a table was written
# outside write_batch (a summary that does not match its rows is never served).
COUNTED = ("seeds", "samples", "reviews", "verdicts", "drops", "solutions", "verifications", "signals")

# The diversity subset: stores/curation_stats.py takes the 20k accepted samples with the
# smallest hash(sample_id). Kept here: the SUBSET_KEPT accepted, not-duplicate samples with
# the smallest hash, with their 3-gram hashes. Curation can remove some of them from the
# accepted view; the 20k are still among the kept ones unless it removes more than half
# (20k of 40k), and the read path checks that. 40k x ~150 3-grams x 8 bytes = 48 MB per job
# at most (real stories are ~150 words).
DIVERSITY_SUBSET = 20_000
SUBSET_KEPT = 2 * DIVERSITY_SUBSET
GRAMS = r"[hash(ws[i], ws[i + 1], ws[i + 2]) FOR i IN range(1, len(ws) - 1)]"
WORDS = r"regexp_extract_all(lower(text), '[\pL\pN_]+')"


def counters_sql(t) -> str:
    """(name, key, value) rows of job $job; t(table) names the relation that holds the rows."""
    backends = " UNION ALL ".join(f"SELECT role, model FROM {t(x)} WHERE job = $job" for x in MODEL_MADE)
    counts = " UNION ALL ".join(f"SELECT 'rows', '{x}', count(*) FROM {t(x)} WHERE job = $job" for x in COUNTED)
    S, R, V, D = t("samples"), t("reviews"), t("verdicts"), t("drops")
    return f"""
WITH {made_cte(t)},
tok AS (
  SELECT role, count(*) AS calls, sum(prompt_tokens) AS p, sum(completion_tokens) AS c, sum(seconds) AS sec FROM (
    {calls_union(t)}
  ) GROUP BY role),
decided AS (SELECT decision, stage FROM {V} WHERE job = $job),
units AS (SELECT count(*) AS m, var_pop(overall) * count(*) AS ss, max(overall) - min(overall) AS spread,
                 sum(overall) AS xs, sum(overall * overall) AS xss
          FROM {R} WHERE job = $job GROUP BY sample_id HAVING count(*) >= 2),
judged AS (SELECT coalesce(s.template, '(seed)') AS template, coalesce(s.model->>'model', '(seed)') AS model,
                  v.decision = 'accept' AS accepted, s.duplicate_of IS NULL AS unique_
           FROM {S} s JOIN {V} v USING (sample_id) WHERE s.job = $job),
by_signal AS (SELECT regexp_replace(signal, '[.][0-9]+$', '') AS name, count(DISTINCT sample_id) AS n_samples,
                   count(value) AS n, sum(value) AS s, min(value) AS lo, max(value) AS hi
            FROM {t("signals")} WHERE job = $job GROUP BY name),
attempts AS (SELECT json_array(kind, status)::VARCHAR AS k, count(*) AS n, count(*) FILTER (correct) AS c
             FROM {t("solutions")} WHERE job = $job GROUP BY ALL),
parts (name, key, value) AS (
  {counts}
  UNION ALL SELECT 'exact_duplicates', '', count(*) FROM {S} WHERE job = $job AND duplicate_of IS NOT NULL
  UNION ALL SELECT 'reviewed', '', count(DISTINCT sample_id) FROM {R} WHERE job = $job
  UNION ALL SELECT 'decision', decision, count(*) FROM decided GROUP BY decision
  UNION ALL SELECT 'stage', stage, count(*) FROM decided GROUP BY stage
  UNION ALL SELECT 'reject_stage', stage, count(*) FROM decided WHERE decision = 'reject' GROUP BY stage
  UNION ALL SELECT 'drop_reason', 'verdict: ' || stage, count(*) FROM decided WHERE decision = 'drop' GROUP BY stage
  UNION ALL SELECT 'drop_reason', role || ': ' || reason, count(*) FROM {D} WHERE job = $job GROUP BY ALL
  UNION ALL SELECT 'drops_without_sample', '', count(*) FROM {D} WHERE job = $job AND sample_id IS NULL
  UNION ALL SELECT 'axis', json_array(j.key, j.value::INTEGER)::VARCHAR, count(*) FROM {R} r, json_each(r.scores) j
            WHERE r.job = $job GROUP BY ALL
  UNION ALL SELECT 'overall_n', '', count(overall) FROM {R} WHERE job = $job
  UNION ALL SELECT 'overall_sum', '', sum(overall) FROM {R} WHERE job = $job
  UNION ALL SELECT 'overall_sumsq', '', sum(overall * overall) FROM {R} WHERE job = $job
  UNION ALL SELECT 'overall:min', '', min(overall) FROM {R} WHERE job = $job
  UNION ALL SELECT 'overall:max', '', max(overall) FROM {R} WHERE job = $job
  UNION ALL SELECT 'spread', printf('%.17g', spread), count(*) FROM units GROUP BY spread
  UNION ALL SELECT 'pairs', '', count(*) FROM {R} a JOIN {R} b
            ON a.sample_id = b.sample_id AND a.reviewer_index < b.reviewer_index WHERE a.job = $job
  UNION ALL SELECT 'pairs_within_1', '', count(*) FILTER (abs(a.overall - b.overall) <= 1) FROM {R} a JOIN {R} b
            ON a.sample_id = b.sample_id AND a.reviewer_index < b.reviewer_index WHERE a.job = $job
  UNION ALL SELECT 'alpha_within', '', sum(m * ss / (m - 1)) FROM units
  UNION ALL SELECT 'alpha_n', '', sum(m) FROM units
  UNION ALL SELECT 'alpha_sum', '', sum(xs) FROM units
  UNION ALL SELECT 'alpha_sumsq', '', sum(xss) FROM units
  UNION ALL SELECT 'tokens_calls', role, calls FROM tok
  UNION ALL SELECT 'tokens_prompt', role, p FROM tok
  UNION ALL SELECT 'tokens_completion', role, c FROM tok
  UNION ALL SELECT 'tokens_seconds', role, sec FROM tok
  UNION ALL SELECT DISTINCT 'scripted:max', role, 1 FROM ({backends})
            WHERE json_extract_string(model, '$.backend') = 'reference'
  UNION ALL SELECT 'by_template_samples', template, count(*) FROM judged GROUP BY template
  UNION ALL SELECT 'by_template_accepted', template, count(*) FILTER (accepted) FROM judged GROUP BY template
  UNION ALL SELECT 'by_model_samples', model, count(*) FROM judged GROUP BY model
  UNION ALL SELECT 'by_model_accepted', model, count(*) FILTER (accepted) FROM judged GROUP BY model
  UNION ALL SELECT 'accepted_unique', '', count(*) FILTER (accepted AND unique_) FROM judged
  UNION ALL SELECT 'verified', '', count(*) FILTER (verified) FROM {t("verifications")} WHERE job = $job
  UNION ALL SELECT 'verify_failure', regexp_replace(reason, '[-0-9./]+', 'N', 'g'), count(*)
            FROM {t("verifications")} WHERE job = $job AND NOT verified GROUP BY ALL
  UNION ALL SELECT 'verify_source', reference_source, count(*) FROM {t("verifications")} WHERE job = $job GROUP BY ALL
  UNION ALL SELECT 'attempts', k, n FROM attempts
  UNION ALL SELECT 'attempts_correct', k, c FROM attempts
  UNION ALL SELECT 'signal_samples', name, n_samples FROM by_signal
  UNION ALL SELECT 'signal_n', name, n FROM by_signal
  UNION ALL SELECT 'signal_sum', name, s FROM by_signal
  UNION ALL SELECT 'signal:min', name, lo FROM by_signal
  UNION ALL SELECT 'signal:max', name, hi FROM by_signal
)
-- zero counters are left out (a missing counter reads 0); one row per (name, key) whatever
-- the parts above produce (the merge upserts each key once)
SELECT name, key, merged AS value FROM (
  SELECT name, key, CASE WHEN suffix(name, ':min') THEN min(value) WHEN suffix(name, ':max') THEN max(value)
                         ELSE sum(value) END::DOUBLE AS merged
  FROM parts WHERE key IS NOT NULL AND value IS NOT NULL GROUP BY name, key)
WHERE merged <> 0 OR suffix(name, ':min') OR suffix(name, ':max')"""


def subset_sql(t, limit: int | None) -> str:
    """The job's accepted, not-duplicate samples with their hash and 3-gram hashes; the
    `limit` with the smallest hash (a back-fill), or all of them (a batch's rows)."""
    top = f"ORDER BY hash(s.sample_id) LIMIT {limit}" if limit else ""
    # the words of the chosen rows only: the top-N first, the regexp after (at 1M: 40k texts, not 700k)
    return f"""SELECT sample_id, hash(sample_id) AS h, {GRAMS} AS grams FROM (
                 SELECT sample_id, {WORDS} AS ws FROM (
                   SELECT s.sample_id, s.text FROM {t("samples")} s
                   JOIN {t("verdicts")} v ON v.sample_id = s.sample_id AND v.decision = 'accept'
                   WHERE s.job = $job AND s.duplicate_of IS NULL {top}))"""


# Samples out of the accepted view by curation: the view's own NOT EXISTS (m003, m010: any
# job's rows, as the view has no job filter).
REMOVED = """SELECT sample_id FROM dedup_clusters WHERE NOT kept UNION SELECT sample_id FROM contamination
             UNION SELECT sample_id FROM outside_duplicates"""

# What the curation-state values (removed count, embedding distance) depend on: the curation
# tables' sizes, the embeddings and the latest pass. A curation pass (stores/curation.py
# write_curation) refreshes every job's values in its transaction; a write elsewhere changes
# this stamp and the values are then computed from rows on reading.
REMOVAL_STAMP = """SELECT (SELECT count(*) FROM dedup_clusters) || '/' || (SELECT count(*) FROM contamination)
                          || '/' || (SELECT count(*) FROM outside_duplicates)
                          || '/' || (SELECT count(*) FROM embeddings)
                          || '/' || coalesce((SELECT max(curated_at)::VARCHAR FROM curation_runs), '-')"""

REMOVED_ACCEPTED = f"""SELECT v.job, count(*) FROM ({REMOVED}) r JOIN verdicts v USING (sample_id)
                        JOIN samples s USING (sample_id)
                        WHERE v.decision = 'accept' AND s.duplicate_of IS NULL GROUP BY v.job"""

# stores/curation_stats.py diversity's embedding half. Only a curation pass writes embeddings,
# and a sample without one drops out of this join, so batches written after the pass leave
# its result as it was: it is a value of the curation state.
DIVERSITY_EMBEDDINGS = """SELECT e.embedding FROM embeddings e JOIN accepted a USING (sample_id)
                          WHERE a.job = ? ORDER BY hash(a.sample_id) LIMIT 2000"""
