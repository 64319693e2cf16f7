"""Numbered schema migrations, recorded in schema_migrations (simonw/llm style).

Append a new function to MIGRATIONS; never edit one that has shipped.
"""
from __future__ import annotations

from stores.transaction import transaction

# Lineage columns carried by every row a model produced.
LINEAGE = """
    template VARCHAR, template_sha256 VARCHAR, role_version INTEGER,
    model JSON, sampling JSON, request_seed BIGINT, request_key VARCHAR,
    prompt_tokens INTEGER, completion_tokens INTEGER, seconds DOUBLE
"""


def m001_initial(con) -> None:
    con.execute("""CREATE TABLE jobs (
        fingerprint VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, recipe VARCHAR NOT NULL,
        spec JSON NOT NULL, decision_rule JSON NOT NULL, num_samples INTEGER NOT NULL,
        created_at TIMESTAMP DEFAULT current_timestamp)""")
    con.execute("""CREATE TABLE seeds (
        seed_id VARCHAR PRIMARY KEY, job VARCHAR NOT NULL, seed_index INTEGER NOT NULL,
        payload JSON NOT NULL)""")
    con.execute(f"""CREATE TABLE samples (
        sample_id VARCHAR PRIMARY KEY, job VARCHAR NOT NULL, seed_id VARCHAR NOT NULL,
        seed_index INTEGER NOT NULL, text VARCHAR NOT NULL, content_hash VARCHAR NOT NULL,
        duplicate_of VARCHAR, rule_checks JSON, payload JSON, {LINEAGE})""")
    con.execute(f"""CREATE TABLE reviews (
        review_id VARCHAR PRIMARY KEY, job VARCHAR NOT NULL, sample_id VARCHAR NOT NULL,
        reviewer_index INTEGER NOT NULL, scores JSON NOT NULL, overall DOUBLE NOT NULL,
        label VARCHAR, critique VARCHAR, {LINEAGE})""")
    # decision: accept | reject | drop; stage: which rule or role decided.
    con.execute(f"""CREATE TABLE verdicts (
        sample_id VARCHAR PRIMARY KEY, job VARCHAR NOT NULL, decision VARCHAR NOT NULL,
        stage VARCHAR NOT NULL, reason VARCHAR, mean_score DOUBLE, spread DOUBLE,
        n_reviews INTEGER, {LINEAGE})""")
    con.execute(f"""CREATE TABLE drops (
        drop_id VARCHAR PRIMARY KEY, job VARCHAR NOT NULL, seed_id VARCHAR NOT NULL,
        sample_id VARCHAR, role VARCHAR NOT NULL, reviewer_index INTEGER,
        reason VARCHAR NOT NULL, raw_text VARCHAR, {LINEAGE})""")
    con.execute("""CREATE TABLE completions (
        request_key VARCHAR PRIMARY KEY, model JSON, text VARCHAR NOT NULL,
        prompt_tokens INTEGER, completion_tokens INTEGER, seconds DOUBLE,
        finish_reason VARCHAR, created_at TIMESTAMP DEFAULT current_timestamp)""")
    # Resume markers: committed in the same transaction as the batch's rows.
    con.execute("""CREATE TABLE done_seeds (
        job VARCHAR NOT NULL, seed_index INTEGER NOT NULL, batch_id VARCHAR NOT NULL,
        PRIMARY KEY (job, seed_index))""")


def m002_verification(con) -> None:
    """Math: every solution attempt (program, long and short chain of thought) and the
    verification of each sample."""
    con.execute(f"""CREATE TABLE solutions (
        solution_id VARCHAR PRIMARY KEY, job VARCHAR NOT NULL, sample_id VARCHAR NOT NULL,
        kind VARCHAR NOT NULL, attempt INTEGER NOT NULL, text VARCHAR NOT NULL,
        answer VARCHAR, status VARCHAR NOT NULL, status_reason VARCHAR, correct BOOLEAN,
        {LINEAGE})""")
    con.execute("""CREATE TABLE verifications (
        sample_id VARCHAR PRIMARY KEY, job VARCHAR NOT NULL, verified BOOLEAN NOT NULL,
        reference_answer VARCHAR, reference_source VARCHAR NOT NULL,
        program_answer VARCHAR, programs_ok INTEGER NOT NULL, programs INTEGER NOT NULL,
        agreement DOUBLE, long_correct BOOLEAN, short_correct BOOLEAN, reason VARCHAR NOT NULL)""")


def m003_curation(con) -> None:
    """Curation results (replaced whole by each curation pass) and the accepted view."""
    con.execute("""CREATE TABLE embeddings (
        sample_id VARCHAR NOT NULL, model VARCHAR NOT NULL, embedding FLOAT[384] NOT NULL,
        PRIMARY KEY (sample_id, model))""")
    # method: near | semantic. Every member of a cluster of two or more; kept = the best-scored.
    con.execute("""CREATE TABLE dedup_clusters (
        job VARCHAR NOT NULL, method VARCHAR NOT NULL, cluster_id VARCHAR NOT NULL,
        sample_id VARCHAR NOT NULL, kept BOOLEAN NOT NULL, similarity DOUBLE,
        PRIMARY KEY (method, sample_id))""")
    con.execute("""CREATE TABLE contamination (
        job VARCHAR NOT NULL, sample_id VARCHAR NOT NULL, benchmark VARCHAR NOT NULL,
        benchmark_row INTEGER NOT NULL, ngram_size INTEGER NOT NULL, ngram VARCHAR NOT NULL,
        PRIMARY KEY (sample_id, benchmark, ngram_size))""")
    con.execute("""CREATE TABLE quality_scores (
        sample_id VARCHAR PRIMARY KEY, job VARCHAR NOT NULL, score DOUBLE NOT NULL,
        components JSON NOT NULL)""")
    con.execute("""CREATE TABLE curation_runs (
        job VARCHAR PRIMARY KEY, config JSON NOT NULL, summary JSON NOT NULL,
        curated_at TIMESTAMP DEFAULT current_timestamp)""")
    # What export and distillation read: accepted, not a duplicate, not contaminated.
    con.execute("""CREATE VIEW accepted AS
        SELECT s.*, q.score AS quality_score FROM samples s
        JOIN verdicts v ON v.sample_id = s.sample_id AND v.decision = 'accept'
        LEFT JOIN quality_scores q ON q.sample_id = s.sample_id
        WHERE s.duplicate_of IS NULL
          AND NOT EXISTS (SELECT 1 FROM dedup_clusters d WHERE d.sample_id = s.sample_id AND NOT d.kept)
          AND NOT EXISTS (SELECT 1 FROM contamination c WHERE c.sample_id = s.sample_id)""")


def m004_distill(con) -> None:
    """Distillation: each mixture and the rows it holds, and each finished run (data ->
    mixture -> student -> hyperparameters -> metrics -> checkpoint) with its per-item
    evaluation. A run's row and its evaluation rows commit together, only when it is done."""
    con.execute("""CREATE TABLE mixtures (
        mixture_id VARCHAR PRIMARY KEY, distill VARCHAR NOT NULL, name VARCHAR NOT NULL,
        data_fingerprint VARCHAR NOT NULL, parts JSON NOT NULL, counts JSON NOT NULL,
        rows INTEGER NOT NULL, selection JSON NOT NULL,
        created_at TIMESTAMP DEFAULT current_timestamp)""")
    # part: long | short | large_long | large_short | story; source_id: a solution or a sample.
    con.execute("""CREATE TABLE mixture_rows (
        mixture_id VARCHAR NOT NULL, position INTEGER NOT NULL, part VARCHAR NOT NULL,
        source_id VARCHAR NOT NULL, sample_id VARCHAR NOT NULL, PRIMARY KEY (mixture_id, position))""")
    # metric: accuracy (math, the verifier) | mean_review_score (stories, the reviewer rubric).
    con.execute("""CREATE TABLE runs (
        run_id VARCHAR PRIMARY KEY, distill VARCHAR NOT NULL, task VARCHAR NOT NULL,
        data_fingerprint VARCHAR NOT NULL, mixture_id VARCHAR NOT NULL, mixture VARCHAR NOT NULL,
        eval_set VARCHAR NOT NULL, student JSON NOT NULL, hyperparameters JSON NOT NULL,
        training JSON NOT NULL, metric VARCHAR NOT NULL, value DOUBLE, ci_low DOUBLE, ci_high DOUBLE,
        metrics JSON NOT NULL, checkpoint VARCHAR NOT NULL, started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP DEFAULT current_timestamp)""")
    con.execute("""CREATE TABLE run_evals (
        run_id VARCHAR NOT NULL, item_id VARCHAR NOT NULL, prompt VARCHAR NOT NULL,
        reference VARCHAR, output VARCHAR NOT NULL, answer VARCHAR, correct BOOLEAN, score DOUBLE,
        output_tokens DOUBLE, details JSON, PRIMARY KEY (run_id, item_id))""")


def m005_role_and_versions(con) -> None:
    """Every model-made row carries the role that made it (token accounting is one GROUP BY
    role; a new role is counted without edits) and the library versions that made it.
    Old rows get their role back from what used to imply it."""
    for table in ("samples", "reviews", "verdicts", "solutions", "drops"):
        if table != "drops":
            con.execute(f"ALTER TABLE {table} ADD COLUMN role VARCHAR")
        con.execute(f"ALTER TABLE {table} ADD COLUMN versions JSON")
    con.execute("""UPDATE samples SET role = CASE WHEN payload IS NOT NULL THEN 'problem_writer' ELSE 'generator' END
                   WHERE template IS NOT NULL""")
    con.execute("UPDATE reviews SET role = 'reviewer'")
    con.execute("UPDATE verdicts SET role = 'adjudicator' WHERE stage = 'adjudicator' AND template IS NOT NULL")
    con.execute("""UPDATE solutions SET role = CASE kind WHEN 'program' THEN 'generator' WHEN 'long' THEN 'long_solver'
                   ELSE 'short_solver' END""")


def m006_job_curation(con) -> None:
    """The curation settings of the job's latest YAML, so `factory curate NAME` curates as
    `factory curate job.yaml` does. Not part of the spec: curation settings are not
    fingerprinted (changing them continues the same job). NULL on jobs registered before."""
    con.execute("ALTER TABLE jobs ADD COLUMN curation JSON")


def m007_semantic_contamination(con) -> None:
    """Paraphrase-aware decontamination: each flag says how it was found (method ngram | semantic)
    and, for semantic flags, the cosine similarity. A semantic flag has ngram_size 0 (the primary
    key's columns cannot be NULL) and ngram = a snippet of the benchmark row. Old rows are n-gram
    flags. benchmark_embeddings caches each benchmark file's row embeddings by the file's SHA-256,
    the field read and the model, so a second pass embeds no benchmark row again."""
    con.execute("ALTER TABLE contamination ADD COLUMN method VARCHAR DEFAULT 'ngram'")
    con.execute("ALTER TABLE contamination ADD COLUMN similarity DOUBLE")
    con.execute("""CREATE TABLE benchmark_embeddings (
        file_sha256 VARCHAR NOT NULL, field VARCHAR NOT NULL, model VARCHAR NOT NULL, row INTEGER NOT NULL,
        embedding FLOAT[384] NOT NULL, PRIMARY KEY (file_sha256, field, model, row))""")


def m008_probe(con) -> None:
    """`factory probe`: each run (its job, settings and summary: pairwise accuracy and AUC
    per corruption kind and signal) and each scored text (kind 'original' or a corruption
    kind), with its per-signal scores and the lineage of the review calls that scored it."""
    con.execute("""CREATE TABLE probe_runs (
        run_id VARCHAR PRIMARY KEY, job VARCHAR NOT NULL, config JSON NOT NULL, summary JSON NOT NULL,
        created_at TIMESTAMP DEFAULT current_timestamp)""")
    con.execute("""CREATE TABLE probe_items (
        run_id VARCHAR NOT NULL, sample_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, text VARCHAR NOT NULL,
        scores JSON NOT NULL, lineage JSON NOT NULL, PRIMARY KEY (run_id, sample_id, kind))""")


def m009_signals(con) -> None:
    """Per-sample quality signals a step measured (the likelihood under a reference model,
    a truncated generation), one row per (sample, signal); and the likelihood cache, keyed
    by model file hash + text, so a rerun or another job scoring the same text pays nothing."""
    con.execute(f"""CREATE TABLE signals (
        sample_id VARCHAR NOT NULL, job VARCHAR NOT NULL, signal VARCHAR NOT NULL, value DOUBLE,
        details JSON, {LINEAGE}, role VARCHAR, versions JSON, PRIMARY KEY (sample_id, signal))""")
    con.execute("""CREATE TABLE likelihood_cache (
        score_key VARCHAR PRIMARY KEY, model JSON NOT NULL, mean_logprob DOUBLE NOT NULL,
        n_tokens INTEGER NOT NULL, seconds DOUBLE, created_at TIMESTAMP DEFAULT current_timestamp)""")


def m010_outside_duplicates(con) -> None:
    """Cross-job and corpus dedup (curation.against_jobs / against_corpus): a sample that
    duplicates a text outside its job is removed, and this row says which text: kind job (the
    other job's fingerprint and sample) or corpus (the file's path and row), the method
    (exact | near | semantic), the similarity and a snippet of the other text. One row per
    sample (the first method that matched); replaced whole by each pass, like dedup_clusters.
    The accepted view leaves these samples out; the outside texts are never changed."""
    con.execute("""CREATE TABLE outside_duplicates (
        sample_id VARCHAR PRIMARY KEY, job VARCHAR NOT NULL, method VARCHAR NOT NULL, kind VARCHAR NOT NULL,
        against VARCHAR NOT NULL, against_name VARCHAR NOT NULL, other_sample_id VARCHAR, other_row INTEGER,
        similarity DOUBLE NOT NULL, snippet VARCHAR NOT NULL)""")
    con.execute("""CREATE OR REPLACE VIEW accepted AS
        SELECT s.*, q.score AS quality_score FROM samples s
        JOIN verdicts v ON v.sample_id = s.sample_id AND v.decision = 'accept'
        LEFT JOIN quality_scores q ON q.sample_id = s.sample_id
        WHERE s.duplicate_of IS NULL
          AND NOT EXISTS (SELECT 1 FROM dedup_clusters d WHERE d.sample_id = s.sample_id AND NOT d.kept)
          AND NOT EXISTS (SELECT 1 FROM contamination c WHERE c.sample_id = s.sample_id)
          AND NOT EXISTS (SELECT 1 FROM outside_duplicates o WHERE o.sample_id = s.sample_id)""")


def m011_stats_summaries(con) -> None:
    """Per-job stats summaries (stores/summaries.py), kept in each batch's transaction so that
    `factory stats` reads counters, not every row: stats_summaries holds mergeable counters
    (name, key, value), stats_subsets the diversity subset (the accepted samples with the
    smallest hash, their word 3-gram hashes). Back-filled here from the rows of every job."""
    con.execute("""CREATE TABLE stats_summaries (
        job VARCHAR NOT NULL, name VARCHAR NOT NULL, key VARCHAR NOT NULL, value DOUBLE,
        PRIMARY KEY (job, name, key))""")
    con.execute("""CREATE TABLE stats_subsets (
        job VARCHAR NOT NULL, sample_id VARCHAR PRIMARY KEY, h UBIGINT NOT NULL, grams UBIGINT[] NOT NULL)""")
    from stores.summaries import rebuild_all

    rebuild_all(con)


def m012_labels(con) -> None:
    """Human labels (`factory browse`, `factory label import`): one row per (sample, labeller),
    a relabel replaces it. decision accept | reject; scores: an optional 1-10 per rubric axis;
    source: browse | the imported file's name. Never read by the decision, curation or export
    of samples: the judge is measured against these (`factory probe --gold`), not fed them."""
    con.execute("""CREATE TABLE labels (
        sample_id VARCHAR NOT NULL, job VARCHAR NOT NULL, labeller VARCHAR NOT NULL, decision VARCHAR NOT NULL,
        scores JSON, note VARCHAR, source VARCHAR NOT NULL, labelled_at TIMESTAMP DEFAULT current_timestamp,
        PRIMARY KEY (sample_id, labeller))""")


def m013_completion_messages(con) -> None:
    """The rendered chat messages of each cached completion (JSON: [{role, content}, ...]),
    so `factory explain` and `factory browse` show what each call sent. NULL on completions
    cached before: their request key still hashes those messages, which were not kept.
    Stored rather than re-rendered at explain time: a reviewer's or adjudicator's messages
    are rendered from what the steps built (the story, the other reviews, math's solutions),
    which only a rerun of the steps rebuilds, and an edited template could not be shown.
    Cost measured on a 300-seed tinystories job (fake backend, 1,055 completions): 733 KB of
    messages (695 B a completion) took the completions table from 537 KB to 799 KB on disk
    (+262 KB, ~250 B a completion after DuckDB's compression), 3.6% of the 7.35 MB database."""
    con.execute("ALTER TABLE completions ADD COLUMN messages JSON")


MIGRATIONS = [m001_initial, m002_verification, m003_curation, m004_distill, m005_role_and_versions,
              m006_job_curation, m007_semantic_contamination, m008_probe,
              m009_signals, m010_outside_duplicates,
              m011_stats_summaries, m012_labels, m013_completion_messages]


def migrate(con) -> list[str]:
    """Apply pending migrations, each in its own transaction; returns the names applied."""
    con.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,
        applied_at TIMESTAMP DEFAULT current_timestamp)""")
    done = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, migration in enumerate(MIGRATIONS, start=1):
        if version in done:
            continue
        with transaction(con):
            migration(con)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, migration.__name__])
        applied.append(migration.__name__)
    return applied
