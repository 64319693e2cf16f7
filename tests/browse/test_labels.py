"""Human labels: the labels table (m012), `factory label import` (CSV and JSONL, all or
none) and `factory export --labels`, on a real job's DuckDB file."""
from __future__ import annotations

import json

import pytest

from factory.cli import main
from stores.labels import LabelError, checked, put_labels


def test_import_jsonl_and_csv_then_export_round_trips(job_db, ids, query, tmp_path, capsys):
    db, job = job_db
    verdicts = query(db, "SELECT * FROM verdicts ORDER BY sample_id")
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(json.dumps({"sample_id": ids[0], "labeller": "ann", "decision": "accept",
                                 "scores": {"grammar": 8}, "note": "fine"}) + "\n"
                     + json.dumps({"sample_id": ids[1], "decision": "REJECT"}) + "\n")
    assert main(["label", "import", str(jsonl), "--db", str(db), "--labeller", "bob"]) == 0
    csv_file = tmp_path / "b.csv"
    csv_file.write_text(f"sample_id,labeller,decision,score_grammar,note\n{ids[2]},cy,reject,3,too short\n")
    assert main(["label", "import", str(csv_file), "--db", str(db)]) == 0
    rows = query(db, "SELECT sample_id, labeller, decision, scores, note, source, job FROM labels ORDER BY sample_id")
    assert sorted((r[0], r[1], r[2]) for r in rows) == sorted(
        [(ids[0], "ann", "accept"), (ids[1], "bob", "reject"), (ids[2], "cy", "reject")])
    by_id = {r[0]: r for r in rows}
    assert json.loads(by_id[ids[2]][3]) == {"grammar": 3.0} and by_id[ids[2]][4] == "too short"
    assert {r[5] for r in rows} == {"a.jsonl", "b.csv"} and {r[6] for r in rows} == {job}
    # the model's verdicts are untouched by labels
    assert query(db, "SELECT * FROM verdicts ORDER BY sample_id") == verdicts

    out = tmp_path / "out"
    assert main(["export", "--labels", "--db", str(db), "-o", str(out)]) == 0
    exported = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert len(exported) == 3 and {e["labeller"] for e in exported} == {"ann", "bob", "cy"}
    assert main(["export", "browse-job", "--labels", "--format", "csv", "--db", str(db), "-o", str(out)]) == 0
    header = (out / "labels.csv").read_text().splitlines()[0]
    assert header.startswith("sample_id,job,labeller,decision") and "score_grammar" in header
    # what export wrote, import reads back (a second database copy: same rows)
    again = tmp_path / "again.duckdb"
    again.write_bytes(db.read_bytes())
    assert main(["label", "import", str(out / "labels.csv"), "--db", str(again)]) == 0
    assert query(again, "SELECT count(*) FROM labels") == [(3,)]


def test_relabel_replaces_the_labellers_row(job_db, ids, query):
    db, _ = job_db
    put_labels(db, [checked(ids[0], "ann", "accept")], source="browse")
    put_labels(db, [checked(ids[0], "ann", "reject", note="changed my mind")], source="browse")
    put_labels(db, [checked(ids[0], "bob", "accept")], source="browse")
    assert query(db, "SELECT labeller, decision, note FROM labels ORDER BY labeller") == [
        ("ann", "reject", "changed my mind"), ("bob", "accept", None)]


@pytest.mark.parametrize("content, says", [
    ('{"sample_id": "%s", "labeller": "a", "decision": "maybe"}', "decision must be accept or reject"),
    ('{"sample_id": "%s", "labeller": "a", "decision": "accept", "scores": {"grammar": 11}}', "within 1-10"),
    ('{"sample_id": "%s", "decision": "accept"}', "labeller is missing"),
    ('{"sample_id": "no-such-sample", "labeller": "a", "decision": "accept"}', "name no sample"),
    ('not json %s', "not JSON"),
])
def test_a_bad_label_file_exits_2_and_stores_nothing(job_db, ids, query, tmp_path, capsys, content, says):
    db, _ = job_db
    bad = tmp_path / "bad.jsonl"
    good = json.dumps({"sample_id": ids[0], "labeller": "a", "decision": "accept"})
    bad.write_text(good + "\n" + (content % ids[1] if "%s" in content else content) + "\n")
    assert main(["label", "import", str(bad), "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and says in err and len(err.splitlines()) == 1
    tables = query(db, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'labels'")[0][0]
    assert tables == 0 or query(db, "SELECT count(*) FROM labels") == [(0,)]


def test_no_database_is_made_for_labels(tmp_path, capsys):
    f = tmp_path / "l.jsonl"
    f.write_text('{"sample_id": "x", "labeller": "a", "decision": "accept"}\n')
    assert main(["label", "import", str(f), "--db", str(tmp_path / "none.duckdb")]) == 2
    assert not (tmp_path / "none.duckdb").exists()


def test_checked_refuses_a_non_number_score():
    with pytest.raises(LabelError, match="must be a number"):
        checked("s", "a", "accept", {"grammar": "good"})
