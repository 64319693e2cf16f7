"""What `factory explain SAMPLE_ID` reads: every row about one sample, from its seed to the
accepted view. Rows come back as dicts, JSON columns still as text."""
from __future__ import annotations

from stores.rows import dict_rows

# section -> the rows about one sample (bound to its sample_id), in the order explain shows them.
SAMPLE_SECTIONS = {
    "reviews": """SELECT reviewer_index, scores, overall, label, critique, template, model->>'model' AS model
                  FROM reviews WHERE sample_id = ? ORDER BY reviewer_index""",
    "dropped_outputs": "SELECT role, reviewer_index, reason, raw_text FROM drops WHERE sample_id = ?",
    "verdict": "SELECT decision, stage, reason, mean_score, spread, n_reviews FROM verdicts WHERE sample_id = ?",
    "verification": "SELECT * EXCLUDE (sample_id, job) FROM verifications WHERE sample_id = ?",
    "solutions": """SELECT kind, attempt, status, status_reason, answer, correct, text FROM solutions
                    WHERE sample_id = ? ORDER BY kind, attempt""",
    "dedup": "SELECT method, cluster_id, kept, similarity FROM dedup_clusters WHERE sample_id = ?",
    "contamination": "SELECT benchmark, benchmark_row, ngram_size, ngram, method, similarity FROM contamination "
                     "WHERE sample_id = ?",
    "quality": "SELECT score, components FROM quality_scores WHERE sample_id = ?",
    "outside_duplicate": """SELECT method, kind, against, against_name, other_sample_id, other_row, similarity, snippet
                            FROM outside_duplicates WHERE sample_id = ?""",
    "signals": """SELECT signal, value, details, model->>'model' AS model, request_key FROM signals
                  WHERE sample_id = ? ORDER BY signal""",
}


# Sections whose table a later migration made: a database written before it, read read-only
# (not migrated), has none of those rows.
LATER_TABLES = {"signals": "signals", "outside_duplicate": "outside_duplicates"}


def _has_table(con, section: str) -> bool:
    table = LATER_TABLES.get(section)
    return table is None or bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchone()[0])


# Every model call behind one sample, with what it sent (the rendered messages, from the
# completions cache: m013) and what came back. A call shared by two samples (the same
# request) is one cached completion, shown under each.
CALLS = """
    WITH p AS (SELECT ?::VARCHAR AS sid),
    k AS (SELECT 1 AS n, 'generation' AS call, s.request_key FROM samples s, p WHERE s.sample_id = p.sid
          UNION ALL SELECT 2, 'review ' || r.reviewer_index, r.request_key FROM reviews r, p WHERE r.sample_id = p.sid
          UNION ALL SELECT 3, 'dropped ' || d.role || coalesce(' ' || d.reviewer_index, ''), d.request_key
                    FROM drops d, p WHERE d.sample_id = p.sid
          UNION ALL SELECT 4, 'adjudication', v.request_key FROM verdicts v, p WHERE v.sample_id = p.sid
          UNION ALL SELECT 5, 'solution ' || o.kind || ' ' || o.attempt, o.request_key
                    FROM solutions o, p WHERE o.sample_id = p.sid)
    SELECT k.call, k.request_key, c.finish_reason, c.prompt_tokens, c.completion_tokens, {messages} AS messages,
           c.text AS raw_output
    FROM k JOIN completions c ON c.request_key = k.request_key ORDER BY k.n, k.call"""


def calls(con, sample_id: str) -> list[dict]:
    """Each call behind the sample: its name (generation, review k, dropped reviewer k,
    adjudication, solution kind k), request key, finish reason, tokens, messages (a JSON
    list of {role, content}; None when cached before m013) and raw output."""
    has_messages = con.execute("""SELECT count(*) FROM information_schema.columns
                                  WHERE table_name = 'completions' AND column_name = 'messages'""").fetchone()[0]
    return dict_rows(con, CALLS.format(messages="c.messages" if has_messages else "NULL"), [sample_id])


def samples_starting_with(con, prefix: str) -> list[str]:
    """The ids of the samples whose id starts with prefix (a whole id matches itself)."""
    return [r[0] for r in con.execute("SELECT sample_id FROM samples WHERE sample_id LIKE ? || '%'",
                                      [prefix]).fetchall()]


def sample_rows(con, sample_id: str) -> dict:
    """The sample's row, its seed's, its job's, each of SAMPLE_SECTIONS' row lists, and
    whether the accepted view holds it."""
    sample = dict_rows(con, "SELECT * FROM samples WHERE sample_id = ?", [sample_id])[0]
    return {
        "sample": sample,
        "seed": dict_rows(con, "SELECT seed_index, payload FROM seeds WHERE seed_id = ?", [sample["seed_id"]])[0],
        "job": dict_rows(con, "SELECT fingerprint, name, recipe FROM jobs WHERE fingerprint = ?", [sample["job"]])[0],
        "decision_rule": con.execute("SELECT decision_rule FROM jobs WHERE fingerprint = ?",
                                     [sample["job"]]).fetchone()[0],
        **{section: dict_rows(con, sql, [sample_id]) if _has_table(con, section) else []
           for section, sql in SAMPLE_SECTIONS.items()},
        "calls": calls(con, sample_id),
        "in_accepted_view": bool(con.execute("SELECT count(*) FROM accepted WHERE sample_id = ?",
                                             [sample_id]).fetchone()[0]),
    }
