"""`factory probe --gold`: agreement, Cohen's kappa and Spearman on hand-computed cases, then
the whole verb on a real job's database with imported labels."""
from __future__ import annotations

import json

import pytest

from factory.cli import main
from factory.probing.gold import compare, kappa, spearman


def _label(sid, decision, labeller="ann", **scores):
    return {"sample_id": sid, "labeller": labeller, "decision": decision, "scores": scores, "note": None}


def _side(decision, overall=None, **axes):
    return {"axes": axes, "overall": overall, "signals": {}, "rules": [], "n_tokens": None, "decision": decision,
            "stage": "reviewers", "text": "t"}


def test_kappa_by_hand():
    # agree on 8 of 10; each rater says accept 5 times: chance 0.5*0.5 + 0.5*0.5 = 0.5,
    # kappa = (0.8 - 0.5) / (1 - 0.5) = 0.6
    model = [1, 1, 1, 1, 0, 0, 0, 0, 1, 0]
    people = [1, 1, 1, 0, 0, 0, 0, 1, 1, 0]
    assert kappa(model, people) == pytest.approx(0.6)
    # model accepts 3 of 4, people 1 of 4, agree on 2: po 0.5, pe 0.75*0.25 + 0.25*0.75 = 0.375,
    # kappa = 0.125 / 0.625 = 0.2
    assert kappa([1, 1, 1, 0], [1, 0, 0, 0]) == pytest.approx(0.2)
    assert kappa([1, 1], [1, 1]) == 1.0 and kappa([], []) is None


def test_spearman_by_hand():
    # ranks 1 2 3 4 against 1 3 2 4: sum d^2 = 2, rho = 1 - 6*2 / (4*15) = 0.8
    assert spearman([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8)
    # ties take average ranks: x ranks 1.5 1.5 3 4 against 1 2 3 4: Pearson of ranks = 0.9487
    assert spearman([5, 5, 6, 7], [1, 2, 3, 4]) == pytest.approx(0.948683, abs=1e-6)
    assert spearman([1, 2], [1, 2]) is None and spearman([1, 1, 1], [1, 2, 3]) is None


def test_compare_by_hand():
    # 4 samples; s4 labelled by two people who disagree with each other
    model = {"s1": _side("accept", 8.0, grammar=8.0), "s2": _side("accept", 6.0, grammar=5.0),
             "s3": _side("reject", 2.0, grammar=2.0), "s4": _side("drop", 4.0, grammar=4.0)}
    labels = [_label("s1", "accept", grammar=9), _label("s2", "reject", grammar=3), _label("s3", "reject", grammar=2),
              _label("s4", "reject", grammar=6), _label("s4", "accept", "bob")]
    g = compare(labels, model)
    v = g["verdict"]
    # verdict accept/accept/reject/reject(drop)/reject(drop) vs people A R R R A: agree 3 of 5
    assert v["agreement"] == pytest.approx(0.6) and v["labels"] == 5 and v["samples"] == 4
    # model accepts 2/5, people 2/5: pe = 0.4*0.4 + 0.6*0.6 = 0.52, kappa = (0.6 - 0.52) / 0.48 = 1/6
    assert v["kappa"] == pytest.approx(1 / 6, abs=1e-4)
    assert v["counts"] == {"model_accept_people_accept": 1, "model_accept_people_reject": 1,
                           "model_reject_people_accept": 1, "model_reject_people_reject": 2}
    assert {(d["sample_id"], d["labeller"]) for d in v["disagreements"]} == {("s2", "ann"), ("s4", "bob")}
    assert 0 <= v["agreement_ci"][0] <= 0.6 <= v["agreement_ci"][1] <= 1
    # overall: people's accepts score 8 and 4, rejects 6, 2, 4: pairs 8>6 8>2 8>4 4<6 4>2 4=4 -> 4.5 / 6
    assert g["scores"]["reviewers.overall"]["auc"] == pytest.approx(0.75)
    assert g["scores"]["decision_score"]["auc"] == pytest.approx(0.75)  # decision.score reviewers: the overall
    # grammar, people scored 4 labels: model 8 5 2 4 vs people 9 3 2 6 -> ranks 4 3 1 2 vs 4 2 1 3: d^2 = 2, rho 0.8
    assert g["axes"]["grammar"] == {"labels": 4, "spearman": pytest.approx(0.8)}


def test_probe_gold_on_a_real_job(job_db, ids, tmp_path, capsys):
    db, job = job_db
    labels = tmp_path / "l.jsonl"
    labels.write_text("".join(json.dumps({"sample_id": s, "labeller": "ann", "decision": d,
                                          "scores": {"grammar": g}}) + "\n"
                              for s, d, g in zip(ids[:6], ["accept", "reject"] * 3, [9, 2, 8, 3, 7, 1])))
    assert main(["label", "import", str(labels), "--db", str(db)]) == 0
    capsys.readouterr()
    assert main(["probe", "browse-job", "--db", str(db), "--gold", "--json"]) == 0
    g = json.loads(capsys.readouterr().out)
    assert g["labels"] == 6 and g["verdict"]["labels"] == 6 and g["labellers"] == ["ann"]
    assert {"reviewers.overall", "decision_score"} <= set(g["scores"]) and "grammar" in g["axes"]
    assert main(["probe", "browse-job", "--db", str(db), "--gold"]) == 0
    out = capsys.readouterr().out
    assert "gold: the verdict agrees with people on" in out
    assert main(["stats", "--db", str(db)]) == 0
    assert "gold: the verdict agrees with people on" in capsys.readouterr().out
    # the HTML report carries the same headline beside the probe, and each disagreement
    report = tmp_path / "r.html"
    assert main(["report", "browse-job", "--db", str(db), "--out", str(report)]) == 0
    html = report.read_text()
    assert 'id="gold"' in html and "gold: the verdict agrees with people on" in html
    assert all(d["sample_id"] in html for d in g["verdict"]["disagreements"])


def test_probe_gold_without_labels_is_one_line(job_db, capsys):
    db, _ = job_db
    assert main(["probe", "browse-job", "--db", str(db), "--gold"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "no human labels" in err and len(err.splitlines()) == 1
