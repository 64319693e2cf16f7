"""The row-level reads of `factory report` (the rest of the page is stores.stats.job_stats):
length, quality and review-spread counts for the charts, the largest duplicate clusters,
contamination hits."""
from __future__ import annotations

from stores.stats import PER_SAMPLE_SPREAD_SQL

# Exact duplicates (samples.duplicate_of, known before curation) as clusters beside the
# near/semantic ones that curation writes; the original is the kept member. Two members
# per cluster (the kept one first) are enough to show why they were called duplicates.
CLUSTERS_SQL = """
WITH c AS (
  SELECT method, cluster_id, sample_id, kept, similarity FROM dedup_clusters WHERE job = $job
  UNION ALL
  SELECT 'exact', coalesce(duplicate_of, sample_id), sample_id, duplicate_of IS NULL, 1.0 FROM samples
  WHERE job = $job AND (duplicate_of IS NOT NULL
                        OR sample_id IN (SELECT duplicate_of FROM samples WHERE job = $job))
), top AS (
  SELECT method, cluster_id, count(*) AS size FROM c GROUP BY ALL
  ORDER BY size DESC, method, cluster_id LIMIT $top
)
SELECT t.method, t.cluster_id, t.size, c.sample_id, c.kept, c.similarity, s.text
FROM top t JOIN c USING (method, cluster_id) JOIN samples s USING (sample_id)
QUALIFY row_number() OVER (PARTITION BY t.method, t.cluster_id
                           ORDER BY c.kept DESC, c.similarity DESC NULLS LAST, c.sample_id) <= 2
ORDER BY t.size DESC, t.method, t.cluster_id, c.kept DESC, c.sample_id
"""


def word_counts(con, job: str) -> list[tuple[int, int, int]]:
    """(words, samples with that many, of them in the accepted view), fewest words first.
    Words are \\w+ runs, as the diversity stat counts them."""
    return con.execute(
        r"""SELECT len(regexp_extract_all(s.text, '\w+')) AS n, count(*), count(a.sample_id)
            FROM samples s LEFT JOIN accepted a USING (sample_id) WHERE s.job = ? GROUP BY n ORDER BY n""",
        [job]).fetchall()


def quality_bins(con, job: str, bins: int) -> list[tuple[int, int, int]]:
    """(bin of the composite score in [0, 1], scored samples, of them accepted); a score of
    exactly 1 falls in the last bin."""
    return con.execute(
        """SELECT least(floor(q.score * $bins), $bins - 1)::INTEGER AS b, count(*), count(a.sample_id)
           FROM quality_scores q LEFT JOIN accepted a USING (sample_id) WHERE q.job = $job GROUP BY b""",
        {"job": job, "bins": bins}).fetchall()


def spread_bins(con, job: str) -> list[tuple[int, int]]:
    """(half-point bin of a sample's review spread, samples), for samples with 2+ reviews."""
    return con.execute(f"SELECT floor(s * 2)::INTEGER AS b, count(*) FROM ({PER_SAMPLE_SPREAD_SQL}) "
                       "GROUP BY b ORDER BY b", [job]).fetchall()


def largest_clusters(con, job: str, top: int) -> list[tuple]:
    """(method, cluster_id, size, sample_id, kept, similarity, text) of the top clusters' examples."""
    return con.execute(CLUSTERS_SQL, {"job": job, "top": top}).fetchall()


def contamination_rows(con, job: str, limit: int) -> tuple[int, list[tuple]]:
    """(how many hits, the first `limit` as (benchmark, benchmark_row, match, sample_id, ngram)); match
    is "8-gram" / "13-gram", or "paraphrase (cosine 0.87)" for a semantic hit."""
    total = con.execute("SELECT count(*) FROM contamination WHERE job = ?", [job]).fetchone()[0]
    rows = con.execute(
        """SELECT benchmark, benchmark_row,
                  CASE WHEN coalesce(method, 'ngram') = 'ngram' THEN ngram_size || '-gram'
                       ELSE 'paraphrase (cosine ' || round(similarity, 2) || ')' END, sample_id, ngram
           FROM contamination WHERE job = ? ORDER BY benchmark, sample_id, ngram_size LIMIT ?""",
        [job, limit]).fetchall()
    return total, rows
