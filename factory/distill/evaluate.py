"""Math evaluation of a student: ask each held-out question in the training prompt format,
read the final answer with the verifier's extractor, and count how many match the
reference. Greedy by default; best_of n > 1 samples n answers and takes the majority.

Besides accuracy (with a Wilson 95% interval: 50 items at 40% is +-13 points, so small
differences between mixtures are noise) it measures how long the student keeps talking
after it first wrote the right number: the cost of long chain-of-thought at small scale."""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from factory.distill.eval_sets import EvalItem  # noqa: F401 - re-exported: items come from eval_sets
from factory.distill.format import math_prompt
from factory.distill.spec import EvaluationSpec
from roles.answers import _NUMBER, answers_match, extract_final_answer
from factory.verify.verifier import canonical_number


@dataclass
class EvalReport:
    metrics: dict      # JSON-able summary (see evaluate_math)
    rows: list[dict]   # one per item, in item order


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (z 1.96: 95%). Unlike p +- z*se it
    stays inside [0, 1] and is not zero-width at 0 or n successes: 0 of 10 -> (0, 0.278).
    No trials say nothing: (0, 1)."""
    if not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At 0 (or n) successes the bound is exactly 0 (or 1); float rounding would give ~1e-17.
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return low, high


def generate(student, prompts: list[str], max_new_tokens: int, batch_size: int = 16,
             sample: bool = False, temperature: float = 0.7, seed: int = 0) -> list[tuple[str, int]]:
    """(text, generated tokens) per prompt, in order. The count runs up to and including the
    first EOS, or is max_new_tokens when none came; the text is decoded without special
    tokens. Greedy unless `sample`; sampling is plain temperature sampling (no top-k/top-p,
    whatever the checkpoint's generation_config says) and repeats for the same seed,
    prompts and batch_size. The caller's RNG state and the model's train/eval mode are
    restored afterwards."""
    model, tokenizer = student.model, student.tokenizer
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    device = next(model.parameters()).device
    # Explicit settings: unset ones would come from the checkpoint's generation_config
    # and then from transformers' defaults (top_k 50), changing what "greedy" means.
    settings = dict(max_new_tokens=max_new_tokens, do_sample=sample, num_beams=1, repetition_penalty=1.0,
                    pad_token_id=pad, eos_token_id=eos)
    if sample:  # (greedy ignores these, and transformers warns when they are passed to it)
        settings.update(temperature=temperature, top_k=0, top_p=1.0)
    was_training = model.training
    model.eval()
    out: list[tuple[str, int]] = []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for start in range(0, len(prompts), batch_size):
                input_ids, attention_mask = _left_padded(tokenizer, prompts[start:start + batch_size], pad)
                generated = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                                           **settings)
                for row in generated[:, input_ids.shape[1]:].tolist():
                    count = row.index(eos) + 1 if eos in row else len(row)
                    out.append((tokenizer.decode(row[:count], skip_special_tokens=True), count))
    finally:
        model.train(was_training)
    return out


def _left_padded(tokenizer, prompts: list[str], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left padding built by hand, so the student's tokenizer (its padding_side is what
    training set) is not changed. Prompts are tokenized as training tokenized them: the
    tokenizer's defaults, then the answer follows directly."""
    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    width = max(len(ids) for ids in encoded)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded])
    attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
    return input_ids, attention_mask


def tokens_after_first_correct(tokenizer, output: str, reference: str) -> int | None:
    """Tokens of `output` after the end of the first number in it that equals `reference`
    ("... 6 * 7 = 42. So she has 42 apples." -> the tokens after the first "42"), or None
    when no number in it does. Counted on the text (EOS is not in it): a token is after
    when it starts at or after the number's end."""
    end = None
    for m in _NUMBER.finditer(output):
        # The canonical form answers._numbers gives: no '$', no thousands separators.
        if answers_match((m["sign"] or "") + re.sub(r"[, ]", "", m["num"]), reference):
            end = m.end()
            break
    if end is None:
        return None
    try:
        offsets = tokenizer(output, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    except NotImplementedError:  # slow (Python) tokenizers have no offsets: tokenize the rest alone
        return len(tokenizer(output[end:], add_special_tokens=False)["input_ids"])
    return sum(1 for start, _ in offsets if start >= end)


def _vote_key(answer: str) -> str:
    """Equal numbers written differently ("42", "42.0", "84/2") vote together; the
    verifier's canonical form, exact to 1e-6, without sympy's cost."""
    return canonical_number(answer) or answer


def _majority(answers: list[str | None]) -> tuple[str | None, dict[str, int]]:
    """The most common answer (ties: the one seen first) and the votes per answer. Equal
    numbers written differently ("42", "42.0") are one answer, named as first written;
    outputs without an answer do not vote."""
    votes: dict[str, int] = {}
    name_of: dict[str, str] = {}
    for answer in answers:
        if answer is None:
            continue
        name = name_of.setdefault(_vote_key(answer), answer)
        votes[name] = votes.get(name, 0) + 1
    if not votes:
        return None, votes
    return max(votes, key=votes.__getitem__), votes  # max keeps the first of equal counts


def evaluate_math(student, items: list[EvalItem], spec: EvaluationSpec,
                  on_item: Callable[[int, int], None] | None = None, *,
                  generate_fn: Callable[..., list[tuple[str, int]]] = generate, batch_size: int = 16) -> EvalReport:
    """Accuracy of `student` on `items` with the decoding `spec` asks for (max_new_tokens,
    best_of, temperature). on_item(done, total) is called after each item. generate_fn
    has generate's signature (tests pass a fake). Sampling is seeded by spec.seed plus the
    index of the first item of each generate call, so a rerun gives the same rows."""
    n_samples = spec.best_of
    per_call = max(1, batch_size // n_samples)  # items per generate call: about one batch of prompts
    rows: list[dict] = []
    for start in range(0, len(items), per_call):
        chunk = items[start:start + per_call]
        prompts = [math_prompt(item.question) for item in chunk for _ in range(n_samples)]
        outputs = generate_fn(student, prompts, spec.max_new_tokens, batch_size=batch_size,
                              sample=n_samples > 1, temperature=spec.temperature, seed=spec.seed + start)
        if len(outputs) != len(prompts):
            raise ValueError(f"generate_fn returned {len(outputs)} outputs for {len(prompts)} prompts")
        for i, item in enumerate(chunk):
            rows.append(_grade(student.tokenizer, item, outputs[i * n_samples:(i + 1) * n_samples]))
            if on_item:
                on_item(len(rows), len(items))
    return EvalReport(metrics=_metrics(rows, spec), rows=rows)


def _grade(tokenizer, item: EvalItem, outputs: list[tuple[str, int]]) -> dict:
    """One row: the (majority) answer, whether it is right, and how long the output ran."""
    answers = [extract_final_answer(text) for text, _ in outputs]
    if len(outputs) == 1:
        answer, votes = answers[0], None
        output, output_tokens = outputs[0]
    else:
        answer, votes = _majority(answers)
        # The output shown is the first that gave the majority answer (by value).
        chosen = next((i for i, a in enumerate(answers)
                       if answer is not None and a is not None and _vote_key(a) == _vote_key(answer)), 0)
        output = outputs[chosen][0]
        output_tokens = round(sum(count for _, count in outputs) / len(outputs), 2)
    return {
        "item_id": item.item_id,
        "question": item.question,
        "reference": item.answer,
        "output": output,
        "answer": answer,
        "correct": answer is not None and answers_match(answer, item.answer),
        "output_tokens": output_tokens,
        "tokens_after_correct": tokens_after_first_correct(tokenizer, output, item.answer),
        "votes": votes,
    }


def _metrics(rows: list[dict], spec: EvaluationSpec) -> dict:
    n = len(rows)
    correct = sum(r["correct"] for r in rows)
    low, high = wilson_interval(correct, n)
    after = [r["tokens_after_correct"] for r in rows if r["tokens_after_correct"] is not None]
    return {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else 0.0,
        "ci_low": round(low, 4),
        "ci_high": round(high, 4),
        "no_answer": sum(r["answer"] is None for r in rows),
        "mean_output_tokens": round(sum(r["output_tokens"] for r in rows) / n, 2) if n else 0.0,
        "mean_tokens_after_first_correct": round(sum(after) / len(after), 2) if after else None,
        "outputs_with_reference": len(after),
        "best_of": spec.best_of,
        "decoding": "greedy" if spec.best_of == 1 else f"sample T={spec.temperature} majority of {spec.best_of}",
    }
