"""Evaluation items: drawn by seed, exact references, nothing that shares an n-gram with training."""
import json

import pytest

from factory.distill.eval_sets import OverlapFilter, builtin_items, file_items
from factory.spec import JobError

TRAIN = ["Question: Tom has 3 red apples and buys 4 more apples at the big market near his house today. "
         "How many apples does Tom have?\nAnswer: 7"]


def test_overlap_filter_catches_shared_ngrams_and_exact_copies():
    f = OverlapFilter(TRAIN, 8)
    assert f.overlaps("Sue has 3 red apples and buys 4 more apples at the big market today")
    assert not f.overlaps("Sue has 5 pears. She eats 2. How many pears are left?")
    assert f.overlaps(TRAIN[0].upper())  # the same text, case aside


def test_file_items_are_seeded_skip_bad_lines_and_overlaps(tmp_path):
    lines = [json.dumps({"question": f"Ann has {a} pens and finds {a + 1} more. How many pens?",
                         "answer": f"{a}+{a + 1}\n#### {2 * a + 1}"}) for a in range(1, 9)]
    lines += ["{not json", json.dumps({"question": "no final", "answer": "4"}),
              json.dumps({"question": TRAIN[0].split("\n")[0][10:], "answer": "#### 7"})]
    path = tmp_path / "eval.jsonl"
    path.write_text("\n".join(lines) + "\n")
    f = OverlapFilter(TRAIN, 13)
    items, removed = file_items(str(path), 8, seed=1, overlap=f)
    assert len(items) == 8 and removed == 1
    assert {i.answer for i in items} == {str(2 * a + 1) for a in range(1, 9)}
    assert [i.item_id for i in file_items(str(path), 3, seed=1, overlap=f)[0]] == [i.item_id for i in items[:3]]
    assert [i.item_id for i in file_items(str(path), 3, seed=2, overlap=f)[0]] != [i.item_id for i in items[:3]]
    with pytest.raises(JobError, match="has 8 usable items"):
        file_items(str(path), 9, seed=1, overlap=f)
    with pytest.raises(JobError, match="evaluation.file: "):
        file_items(str(tmp_path / "missing.jsonl"), 3, seed=1, overlap=f)


def test_builtin_items_are_fresh_exact_and_deterministic():
    f = OverlapFilter(TRAIN, 13)
    a, removed = builtin_items(12, seed=9, max_steps=2, overlap=f)
    assert len(a) == 12 and removed == 0 and a == builtin_items(12, seed=9, max_steps=2, overlap=f)[0]
    assert all(i.answer.lstrip("-").replace(".", "", 1).isdigit() for i in a)
    # a filter that holds every question of the first draw forces fresh problems
    blocked = OverlapFilter([i.question for i in a[:6]], 13)
    b, removed = builtin_items(6, seed=9, max_steps=2, overlap=blocked)
    assert removed >= 6 and not {i.question for i in b} & {i.question for i in a[:6]}
