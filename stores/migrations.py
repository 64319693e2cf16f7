"""Numbered schema migrations, recorded in schema_migrations (simonw/llm style).

Append a new function to MIGRATIONS; never edit one that has shipped.
"""
from __future__ import annotations

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


MIGRATIONS = [m001_initial, m002_verification]


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
        con.begin()
        try:
            migration(con)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, migration.__name__])
            con.commit()
        except Exception:
            con.rollback()
            raise
        applied.append(migration.__name__)
    return applied
