"""Textbook-style recipe on the fake backend: seeds, rule signals, additive reviews."""
import json

import duckdb

from support import fake_job
from factory.pipeline import run_job
from factory.recipes.text_checks import repeated_ngram_ratio
from factory.recipes.textbook import Textbook
from factory.spec import parse_job

ROLES = {r: {"backend": "fake", "model": "fake"} for r in ("generator", "reviewer", "adjudicator")}


def textbook_job(**options):
    return parse_job(fake_job(recipe="textbook", textbook={"min_words": 20, **options}, roles=ROLES))


def test_seeds_walk_the_shipped_topics_deterministically():
    recipe = Textbook(textbook_job())
    seeds = [recipe.make_seed(i) for i in range(40)]
    assert seeds == [Textbook(textbook_job()).make_seed(i) for i in range(40)]
    assert len({s["topic"] for s in seeds}) == 40  # a permutation: no repeats before the list is used up
    assert len(recipe.topic_lines) >= 300
    assert {s["audience"] for s in seeds} <= {"young children", "high school students", "college students", "researchers"}


def test_repeated_ngrams_catch_loops():
    prose = "the cat sat on the mat and then the dog ran to the park to play".split()
    assert repeated_ngram_ratio(prose) == 0.0
    assert repeated_ngram_ratio(("a b c d e f " * 10).split()) > 0.8


def test_textbook_job_writes_rows_with_additive_scores(tmp_path):
    db = tmp_path / "t.duckdb"
    run_job(textbook_job(), db=db)
    con = duckdb.connect(str(db), read_only=True)
    checks = json.loads(con.execute("SELECT rule_checks FROM samples LIMIT 1").fetchone()[0])
    assert {"words", "paragraphs", "repeated_5gram_ratio", "has_example_or_exercise"} <= set(checks)
    overall = {o for (o,) in con.execute("SELECT DISTINCT overall FROM reviews").fetchall()}
    assert overall <= {0.0, 1.0, 2.0, 3.0, 4.0, 5.0} and overall
    for decision, mean in con.execute("SELECT decision, mean_score FROM verdicts WHERE stage = 'reviewers'").fetchall():
        assert (decision == "accept" and mean >= 3) or (decision == "reject" and mean < 2)
    assert con.execute("SELECT DISTINCT template FROM reviews").fetchall() == [("textbook/reviewer@1",)]


def test_user_topics_file_with_a_bad_line_drops_that_seed(tmp_path):
    topics = tmp_path / "topics.jsonl"
    topics.write_text('{"topic": "Tides", "extract": "The moon pulls the sea."}\n{"title": "no topic"}\nVolcanoes\n')
    db = tmp_path / "t.duckdb"
    run_job(parse_job(fake_job(recipe="textbook", num_samples=3, textbook={"topics_file": str(topics), "min_words": 20},
                               roles=ROLES)), db=db)
    con = duckdb.connect(str(db), read_only=True)
    drops = con.execute("SELECT reason FROM drops WHERE role = 'seed'").fetchall()
    assert drops == [(f"{topics}:2: missing or empty field(s) topic; fields present: title",)]
    payloads = [json.loads(p) for (p,) in con.execute("SELECT payload FROM seeds ORDER BY seed_index").fetchall()]
    assert {p.get("topic") for p in payloads} == {"Tides", "Volcanoes", None}
