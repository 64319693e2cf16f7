"""`factory explain` shows what every call of a sample sent: the rendered messages are
kept with each cached completion (m013) and are exactly the messages the backend received."""
from __future__ import annotations

import duckdb
import fakes
from support import fake_job

from factory.explain import explain
from factory.pipeline import run_job
from factory.render import explain_view
from factory.spec import parse_job


def _story(db, sample_id):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return explain(con, sample_id)
    finally:
        con.close()


def _text(tree) -> str:
    from rich.console import Console

    console = Console(width=400, record=True)
    console.print(tree)
    return console.export_text()


def test_explain_shows_the_messages_each_call_sent(tmp_path):
    db = tmp_path / "f.duckdb"
    run_job(parse_job(fake_job(num_samples=8)), db=db)
    sent = {r.key: [dict(m) for m in r.messages] for r in fakes.CALLS}
    con = duckdb.connect(str(db), read_only=True)
    sample_id, text = con.execute("""SELECT s.sample_id, s.text FROM samples s JOIN reviews r USING (sample_id)
                                     ORDER BY s.seed_index LIMIT 1""").fetchone()
    con.close()
    story = _story(db, sample_id)
    calls = {c["call"]: c for c in story["calls"]}
    assert "generation" in calls and sum(name.startswith("review ") for name in calls) == len(story["reviews"]) > 0
    for c in story["calls"]:
        assert c["messages"] == sent[c["request_key"]]  # what the backend was sent, not a re-rendering
    for name in ("generation", "review 0"):
        assert [m["role"] for m in calls[name]["messages"]] == ["system", "user"]
    assert text in calls["review 0"]["messages"][1]["content"]  # the reviewer was shown the story
    shown = _text(explain_view(story))
    assert calls["review 0"]["messages"][0]["content"].splitlines()[0] in shown
    assert "[output] " + calls["generation"]["raw_output"].splitlines()[0] in shown


def test_completions_cached_before_messages_were_kept(tmp_path):
    """A database whose completions table has no messages column (read as it is, not
    migrated): explain still shows each call, saying its messages were not stored."""
    db = tmp_path / "f.duckdb"
    run_job(parse_job(fake_job(num_samples=4)), db=db)
    con = duckdb.connect(str(db))
    con.execute("ALTER TABLE completions DROP COLUMN messages")
    con.execute("DELETE FROM schema_migrations WHERE name = 'm013_completion_messages'")
    sample_id = con.execute("SELECT sample_id FROM samples ORDER BY seed_index LIMIT 1").fetchone()[0]
    con.close()
    story = _story(db, sample_id)
    assert story["calls"] and all(c["messages"] is None for c in story["calls"])
    assert "messages: not stored" in _text(explain_view(story))
