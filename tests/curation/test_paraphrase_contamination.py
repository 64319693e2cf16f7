"""Paraphrase-aware decontamination on planted data: 30 hand-written paraphrases of GSM8K
train questions (tests/data/paraphrases.jsonl), 20 clean problems of the math recipe and one
verbatim copy, curated against a 230-row subset of GSM8K train. The paraphrases share no
8-gram with their source, so only the embedding check can flag them.

At the default threshold (0.80, bench/paraphrase_contamination.py against all of GSM8K
train: 23/30 recalled, 2/100 clean problems flagged on this tuning split; 17/30 and 3/100 on
the held-out split, tests/data/paraphrases_heldout.jsonl) the subset gives 23 of 30 paraphrases
(their source-row cosines run 0.73-0.94) and no clean problem (their closest-row cosines
run 0.45-0.75)."""
import json
from pathlib import Path

import duckdb
import pytest

from factory.curation import semantic_dedup
from factory.curation.resolve import curate_job
from factory.curation.run import curate
from factory.keys import content_hash
from factory.recipes.math_problems import generate_problem
from factory.spec import CurationSpec
from stores import Store
from stores.migrations import MIGRATIONS, migrate

DATA = Path(__file__).resolve().parent.parent / "data"
SUBSET = DATA / "gsm8k_train_subset.jsonl"
JOB = "jp"
BENCH = "gsm8k-train"
CLEAN = 20
PLANTED = [json.loads(line) for line in (DATA / "paraphrases.jsonl").read_text().splitlines()]
SUBSET_QUESTIONS = [json.loads(line)["question"] for line in SUBSET.read_text().splitlines()]
# A copy with a preamble: the n-gram check's case; the embedding check finds it too.
COPY = "Solve this one: " + SUBSET_QUESTIONS[1]


def samples() -> dict[str, str]:
    texts = {f"para{p['train_row']}": p["text"] for p in PLANTED}
    texts |= {f"clean{i}": generate_problem(0, i).question for i in range(CLEAN)}
    texts["copy"] = COPY
    return texts


def build(db) -> None:
    """One accepted math sample per text, as the pipeline would have stored them."""
    with Store(db) as store:
        con = store.con
        con.execute("INSERT INTO jobs (fingerprint, name, recipe, spec, decision_rule, num_samples) "
                    "VALUES (?, 'paraphrased', 'math', '{}', '{}', ?)", [JOB, len(samples())])
        for i, (sid, text) in enumerate(samples().items()):
            con.execute("INSERT INTO seeds VALUES (?, ?, ?, '{}')", [f"seed{i}", JOB, i])
            con.execute("""INSERT INTO samples (sample_id, job, seed_id, seed_index, text, content_hash)
                           VALUES (?, ?, ?, ?, ?, ?)""", [sid, JOB, f"seed{i}", i, text, content_hash(text)])
            con.execute("INSERT INTO verdicts (sample_id, job, decision, stage, reason) "
                        "VALUES (?, ?, 'accept', 'verifier', 'verified')", [sid, JOB])


@pytest.fixture
def embed_calls(monkeypatch):
    """Every call of the embedding model, as the number of texts it embedded."""
    calls = []
    real = semantic_dedup.embed

    def counting(texts, *args, **kwargs):
        calls.append(len(texts))
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(semantic_dedup, "embed", counting)
    return calls


def flags(con) -> list[tuple]:
    return con.execute("""SELECT sample_id, benchmark, benchmark_row, ngram_size, ngram, method, similarity
                          FROM contamination WHERE job = ? ORDER BY ALL""", [JOB]).fetchall()


@pytest.mark.model  # all-MiniLM-L6-v2 (sentence-transformers) embeds the texts
def test_paraphrases_are_flagged_clean_problems_are_not_and_the_cache_is_reused(tmp_path, embed_calls):
    db = tmp_path / "p.duckdb"
    build(db)
    # Dedup off: decontamination still needs the sample embeddings, and computes them.
    config = CurationSpec(semantic=False, decontaminate=[{"path": str(SUBSET), "name": BENCH}])
    assert config.semantic_contamination and config.contamination_similarity == 0.80
    with Store(db) as store:
        con = store.con
        summary = curate(con, JOB, "math", config, store_with_job=True)
        assert embed_calls == [len(samples()), len(SUBSET_QUESTIONS)]  # the samples once, the benchmark once
        first = flags(con)
        semantic = {f[0]: f for f in first if f[5] == "semantic"}
        source_row = {f"para{p['train_row']}": SUBSET_QUESTIONS.index(p["benchmark_question"]) for p in PLANTED}
        paraphrases = {sid for sid in semantic if sid.startswith("para")}
        # every flagged paraphrase points at its own source row, with its similarity and the row's text
        for sid in paraphrases:
            _, bench, row, size, snippet, _, similarity = semantic[sid]
            assert (bench, row, size) == (BENCH, source_row[sid], 0)
            assert 0.80 <= similarity <= 1.0 and SUBSET_QUESTIONS[row].startswith(snippet)
        assert len(paraphrases) >= 20, sorted(set(source_row) - paraphrases)  # measured: 23 of 30
        assert not [sid for sid in semantic if sid.startswith("clean")]
        assert semantic["copy"][2] == 1 and semantic["copy"][6] > 0.95
        ngram = [f for f in first if f[5] == "ngram"]
        assert {(f[0], f[2], f[3]) for f in ngram} == {("copy", 1, 8), ("copy", 1, 13)}
        assert all(f[6] is None for f in ngram)  # similarity belongs to semantic flags only
        assert summary["semantic_contaminated"] == len(paraphrases) + 1
        assert summary["contaminated"] == len(paraphrases) + 1 and summary["semantic_clusters"] == 0

        accepted = {r[0] for r in con.execute("SELECT sample_id FROM accepted").fetchall()}
        assert accepted == set(samples()) - paraphrases - {"copy"}
        # sample vectors are stored though dedup is off; benchmark vectors are cached by file hash
        assert con.execute("SELECT count(*) FROM embeddings").fetchone()[0] == len(samples())
        cached = con.execute("SELECT count(*), count(DISTINCT file_sha256), any_value(field) "
                             "FROM benchmark_embeddings").fetchone()
        assert cached == (len(SUBSET_QUESTIONS), 1, "question")

        embed_calls.clear()
        curate(con, JOB, "math", config)
        assert embed_calls == [] and flags(con) == first  # the second pass embeds nothing

    # By name: the settings stored with the job give the same flags, still without embedding.
    result = curate_job("paraphrased", db)
    assert result["settings"] == "stored with the job" and embed_calls == []
    with Store(db) as store:
        assert flags(store.con) == first


@pytest.mark.model  # all-MiniLM-L6-v2 (sentence-transformers) embeds the texts
def test_a_changed_benchmark_file_is_embedded_again_and_off_means_no_embedding(tmp_path, embed_calls):
    db = tmp_path / "p.duckdb"
    build(db)
    bench = tmp_path / "bench.jsonl"
    lines = SUBSET.read_text().splitlines()[:3]
    bench.write_text("\n".join(lines) + "\n")
    config = CurationSpec(semantic=False, decontaminate=[{"path": str(bench), "name": BENCH}])
    with Store(db) as store:
        off = config.model_copy(update={"semantic_contamination": False})
        summary = curate(store.con, JOB, "math", off)
        assert embed_calls == [] and summary["semantic_contaminated"] == 0  # neither check asked for vectors

        curate(store.con, JOB, "math", config)
        assert embed_calls == [len(samples()), 3]
        # The same path, other contents: a new hash, so the new rows are embedded (the samples are not).
        bench.write_text("\n".join(lines[:2]) + "\n")
        embed_calls.clear()
        curate(store.con, JOB, "math", config)
        assert embed_calls == [2]
        hashes = store.con.execute("SELECT file_sha256, count(*) FROM benchmark_embeddings GROUP BY 1").fetchall()
        assert sorted(n for _, n in hashes) == [2, 3]


def test_old_contamination_rows_become_ngram_flags(tmp_path):
    """A database from before m007 keeps its flags, read as n-gram flags without a similarity."""
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    names = [m.__name__ for m in MIGRATIONS]
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
                "applied_at TIMESTAMP DEFAULT current_timestamp)")
    for version, migration in enumerate(MIGRATIONS[:names.index("m007_semantic_contamination")], start=1):
        migration(con)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, migration.__name__])
    con.execute("INSERT INTO contamination VALUES ('j', 's', 'gsm8k', 3, 8, 'she sold half as many clips in may')")
    assert "m007_semantic_contamination" in migrate(con)
    assert con.execute("SELECT ngram_size, method, similarity FROM contamination").fetchall() == [(8, "ngram", None)]
    con.close()


def test_the_tuning_and_held_out_paraphrases_share_no_row_and_no_text():
    """bench/paraphrase_contamination.py chooses the threshold on paraphrases.jsonl and reports it
    on paraphrases_heldout.jsonl: the held-out split must reword other GSM8K rows, in other words."""
    heldout = [json.loads(line) for line in (DATA / "paraphrases_heldout.jsonl").read_text().splitlines()]
    assert len(heldout) == 30 and all(set(p) == {"text", "train_row", "benchmark_question"} for p in heldout)
    assert len({p["train_row"] for p in heldout}) == 30
    assert not {p["train_row"] for p in PLANTED} & {p["train_row"] for p in heldout}
    assert not {p["text"] for p in PLANTED} & {p["text"] for p in heldout}
    assert not {p["benchmark_question"] for p in PLANTED} & {p["benchmark_question"] for p in heldout}
