"""The answer checker: unit cases, and every GSM8K train solution against its own label."""

import json
import threading
from pathlib import Path

import pytest

from roles.answers import (
    answers_match,
    extract_final_answer,
    gsm8k_gold,
    gsm8k_reasoning,
)

# CI runs from a clean clone with a copy of shared/ beside it, so this path holds there too.
GSM8K_TRAIN = Path(__file__).resolve().parents[2].parent / "shared/data/gsm8k/train.jsonl"

# Train items (0-based line numbers) whose worked solution does not end in its '####'
# label, so no reading of the solution can match it. Checked by hand, 35 of 7473:
# the label never occurs in the solution (cents vs dollars, e.g. 123 "$0.25" vs 25;
# arithmetic slips, e.g. 356 ends "48 + 16 = 64" but is labelled 66).
LABEL_NOT_IN_SOLUTION = {123, 343, 356, 1154, 1617, 2770, 2969, 3334, 3517, 4796, 5350, 6157,
                         6760, 7444}  # fmt: skip
# The label occurs, but the final sentence states another quantity: a fraction for a
# percentage (2270 ".8" vs 80), an unrounded value (4206 "16.75 bags" vs 17), the
# wrong unknown (455 ends at "16 amoebae after 8 days", label 8), or prose no rule
# reads (1608 "he'll need 1 more to make the plants 12").
FINAL_SENTENCE_STATES_OTHER = {198, 455, 786, 1608, 2270, 3263, 3350, 3409, 3433, 3873, 4206, 4349,
                               4910, 5307, 5418, 5724, 5991, 6275, 7112, 7147, 7182}  # fmt: skip
KNOWN_MISMATCHES = LABEL_NOT_IN_SOLUTION | FINAL_SENTENCE_STATES_OTHER


@pytest.mark.skipif(not GSM8K_TRAIN.exists(), reason=f"GSM8K train data not found at {GSM8K_TRAIN}")
def test_every_gsm8k_train_solution_matches_its_label():
    items = [json.loads(line) for line in GSM8K_TRAIN.read_text().splitlines() if line.strip()]
    failing = [
        i for i, item in enumerate(items)
        if not answers_match(extract_final_answer(gsm8k_reasoning(item["answer"])), gsm8k_gold(item["answer"]))
    ]  # fmt: skip
    unexpected = sorted(set(failing) - KNOWN_MISMATCHES)
    assert not unexpected, f"{len(unexpected)} of {len(items)} items fail (0-based indices): {unexpected}"
    fixed = sorted(KNOWN_MISMATCHES - set(failing))
    assert not fixed, f"now matching, drop from KNOWN_MISMATCHES: {fixed}"


def test_gsm8k_fields():
    field = "She has 1,000 + 200 = <<1000+200=1200>>1,200 beads.\n#### 1,200"
    assert gsm8k_gold(field) == "1200"
    assert gsm8k_reasoning(field) == "She has 1,000 + 200 = <<1000+200=1200>>1,200 beads."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Final answer: 1,200", "1200"),
        ("It costs $18.00", "18.00"),
        ("The answer is 3/4.", "3/4"),
        ("So the total is \\boxed{12}.", "12"),
        ("\\boxed{\\frac{3}{4}}", "\\frac{3}{4}"),
        ("#### 72", "72"),
        ("The temperature fell to -5 degrees.", "-5"),
        ("10-4=6", "6"),
        ("About 25% of them stayed.", "25"),
        ("She has 3 bags with 2 apples each, so 3 * 2 = 6 apples.", "6"),
        ("He pays 4 * 2 = $<<4*2=8>>8 for 2 weeks.", "8"),
        ("Since 168 < 182, she needs 4 bottles.", "4"),
        ("It takes 15.36 minutes, which rounds down to 15 minutes.", "15"),
        ("14 + 7 + 12 = 33 oz\nThere are 33 ounces of cereal in those 3 boxes.", "33"),
        ("The answer is 5. Later text mentions 7 cats.", "5"),
        ("no numbers here", None),
        ("", None),
    ],
)
def test_extract_final_answer(text, expected):
    assert extract_final_answer(text) == expected


@pytest.mark.parametrize(
    ("predicted", "gold", "expected"),
    [
        (extract_final_answer("Final answer: 1,200"), "1200", True),
        (extract_final_answer("$18.00"), "18", True),
        (extract_final_answer("The answer is 3/4"), "0.75", True),
        (extract_final_answer("\\boxed{12}"), "12", True),
        ("2.50", "5/2", True),
        ("-3", "-3.0", True),
        ("\\frac{3}{4}", "0.75", True),
        ("x + 1", "1 + x", True),
        ("13", "12", False),
        (extract_final_answer("no number at all"), "5", False),
        ("}{\\frac{", "1", False),
        ("1/0", "1", False),
        ("", "", False),
        (12, "12", False),
        ("12", None, False),
        ("9" * 5000, "1", False),
    ],
)
def test_answers_match(predicted, gold, expected):
    assert answers_match(predicted, gold) is expected


def test_symbolic_fallback_works_off_the_main_thread():
    # math_verify's signal.alarm timeout fails outside the main thread; answers_match
    # disables it there, so a worker thread gets a real answer rather than False.
    results = []
    worker = threading.Thread(target=lambda: results.append(answers_match("\\frac{1}{2}", "0.5")))
    worker.start()
    worker.join()
    assert results == [True]
