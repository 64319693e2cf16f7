"""`factory probe`: can the job's judge tell good from bad?

Accepted samples are corrupted in the ways the recipe declares (Recipe.probe_corruptions),
then originals and corruptions are scored by every quality signal the job uses:

- the reviewer role, run as the pipeline runs it (bind_roles, Context.call: the completions
  cache, the executor of the job's execution settings, the pool's routing with the sample's
  author kept out). Each text is reviewed `reviewers` times with the request seeds the
  pipeline gave that sample, so an original's reviews are the job's own reviews (cache
  hits, no model call) and a corruption differs from its original only in the text;
- the recipe's rule signals (rule_checks -> rule_signals, and the rule gate rule_reject);
- extra per-text signals (factory/probing/signals.py: the likelihood, where it exists);
- with decision.review_score: expected, the logprob-weighted review scores (steps/review.py
  with_expected): `reviewers.overall_expected`, `reviewers.<axis>_expected`, and
  `reviewers.overall_sampled` next to them (`reviewers.overall` is what the rule reads);
- `decision`: the decision score the rule reads (decision.score: the reviewers' mean overall by
  default; the likelihood, or the likelihood + rule signals: factory/decide.py decision_score),
  put below every score a passing text can have when a gate the pipeline applies before
  review rejects the text: the recipe's rule gate (rule_reject: vocabulary, seed words,
  repetition for TinyStories) or the likelihood gate (decision.min_likelihood against the
  text's `likelihood` signal). `likelihood_gate` and
  `gates` (1 = passes every gate, 0 = rejected by one) are signals of their own. The
  truncation gate reads the generation's finish_reason, which a corruption does not have.

Every signal is "higher = better". Results: pairwise accuracy and AUC per corruption kind
and per signal (factory/probing/metrics.py), stored as a probe_runs row and probe_items rows.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

from factory.decide import decision_score, rejected_score
from factory.keys import digest
from factory.pipeline import bind_roles, make_recipe
from factory.probing import metrics
from factory.recipes.corruptions import CorruptionContext, corruption_rng
from factory.probing.job import database, resolve
from factory.probing.signals import extra_signals, likelihood_tokens
from factory.steps.review import with_expected
from factory.spec import JobError, spec_of
from roles import Drop
from stores import Store
from stores.probe import accepted_for_probe, write_probe

ORIGINAL = "original"
ALL = "all"
DECISION = "decision"
# Below this many accepted samples the intervals are wide; the probe says so and runs.
FEW_SAMPLES = 10
DEFAULT_SAMPLES = 12


class NothingToProbe(LookupError):
    """A job the probe cannot read: no accepted sample, or a recipe whose samples are not one text."""
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


@dataclass
class Scored:
    sample: dict
    kind: str
    text: str
    scores: dict | None = None
    lineage: list | None = None


def select(samples: list[dict], n: int, seed: int) -> list[dict]:
    """n samples by a seeded order of their ids (the same n for the same seed), then by seed index."""
    chosen = sorted(samples, key=lambda s: digest("probe-select", seed, s["sample_id"]))[:n]
    return sorted(chosen, key=lambda s: (s["seed_index"], s["sample_id"]))


def corruption_kinds(recipe, only: list[str] | None) -> tuple[dict, dict]:
    """(declared, held-out): the recipe's corruptions and its held-out kinds, or the ones
    `only` names (--kinds), each in the recipe's order."""
    kinds, held_out = recipe.probe_corruptions(), recipe.probe_held_out()
    unknown = [k for k in only or [] if k not in kinds and k not in held_out]
    if unknown:
        raise JobError(f"--kinds: {unknown[0]!r} is not a corruption of recipe {recipe.name}; its kinds: "
                       f"{', '.join(kinds)}; held-out kinds: {', '.join(held_out)}")
    return ({k: fn for k, fn in kinds.items() if not only or k in only},
            {k: fn for k, fn in held_out.items() if (not only or k in only) and k not in kinds})


def corrupt(kinds: dict, samples: list[dict], seed: int, recipe=None) -> tuple[list[Scored], dict[str, int]]:
    """The originals and every corruption that applies; skipped[kind]: samples it could not make.
    recipe: renders each seed's generator prompt (the instruction_echo kind copies from it)."""
    pool = tuple(sorted({w.lower() for s in samples for w in re.findall(r"[A-Za-z]+", s["text"])}))
    texts, skipped = [], dict.fromkeys(kinds, 0)
    for s in samples:
        texts.append(Scored(s, ORIGINAL, s["text"]))
        others = tuple(o["text"] for o in samples if o["sample_id"] != s["sample_id"])
        prompt = recipe.generator_prompt(s["seed"] or {}) if recipe is not None else ""
        ctx = CorruptionContext(s["sample_id"], s["seed"] or {}, pool, others, prompt)
        for kind, fn in kinds.items():
            made = fn(s["text"], corruption_rng(seed, s["sample_id"], kind), ctx)
            if made is None:
                skipped[kind] += 1
            else:
                texts.append(Scored(s, kind, made))
    return texts, skipped


def review_variables(recipe, sample: dict, text: str) -> dict:
    """What the reviewer template reads for `text` in place of the sample's text: as the
    pipeline builds it (steps/rules.py; math's SolveAndVerify passes the question and the
    verified reference answer, which stays that of the original)."""
    if "reference_answer" in recipe.roles["reviewer"].provides:
        return {"question": text, "reference_answer": sample["reference_answer"]}
    return recipe.review_variables(sample["seed"] or {}, {**sample, "text": text})


def _kind_counts(headline: dict, skipped: int, made: int) -> dict:
    """A kind's headline with its counts: made (corruptions written), skipped (samples it could
    not corrupt), unscored (made but without a usable score for it or its original, e.g. every
    review of it unparseable): made = pairs + unscored."""
    return {**headline, "skipped": skipped, "made": made, "unscored": made - headline.get("pairs", 0)}


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None


def _model_name(identity: dict) -> str:
    return f"{identity.get('backend')}:{identity.get('model')}"


def review_signals(calls: list, axes: tuple[str, ...], pooled: bool) -> dict:
    reviews = [c.parsed for c in calls if not isinstance(c.parsed, Drop)]
    out = {"reviewers.overall": _mean([r.overall for r in reviews])}
    for axis in axes:
        out[f"reviewers.{axis}"] = _mean([float(r.scores[axis]) for r in reviews if axis in r.scores])
    if pooled:  # each model of a GRA pool is its own judge
        by_model: dict[str, list] = {}
        for c in calls:
            if not isinstance(c.parsed, Drop):
                by_model.setdefault(_model_name(c.lineage["model"]), []).append(c.parsed.overall)
        out.update({f"reviewer[{m}].overall": _mean(v) for m, v in sorted(by_model.items())})
    expected = [r.expected for r in reviews if getattr(r, "expected", None) is not None]
    if expected:  # only where the job computes them (decision.review_score: expected)
        out["reviewers.overall_expected"] = _mean([e["overall"] for e in expected])
        out["reviewers.overall_sampled"] = _mean([e["sampled_overall"] for e in expected])
        for axis in axes:
            out[f"reviewers.{axis}_expected"] = _mean([e["axes"][axis] for e in expected if axis in e["axes"]])
    return out


def rule_signals(recipe, sample: dict, text: str) -> tuple[dict, bool]:
    """The recipe's rule signals of `text` and whether its rule gate would reject it."""
    checks = recipe.rule_checks(sample["seed"] or {}, text)
    if checks is None:
        return {}, False
    parts = recipe.rule_signals(checks)
    out = {"rules": _mean(parts)} if parts else {}
    if len(parts) > 1:
        out.update({f"rules[{i}]": v for i, v in enumerate(parts)})
    rejected = recipe.rule_reject(checks) is not None
    out["rule_gate"] = 0.0 if rejected else 1.0
    return out, rejected


def likelihood_gate(minimum: float | None, likelihood: float | None) -> float | None:
    """1.0 where the text passes decision.min_likelihood (steps/likelihood.py: rejected when
    below it), 0.0 where it fails; None where the job sets no minimum or the text has no score."""
    if minimum is None or likelihood is None:
        return None
    return 0.0 if likelihood < minimum else 1.0


def score(ctx, texts: list[Scored], recipe, spec) -> None:
    """Every signal of every text, in place (scores and the review calls' lineage)."""
    bound = ctx.bound["reviewer"]
    k = spec.reviewers
    items = [(t.sample["seed_index"], slot, review_variables(recipe, t.sample, t.text))
             for t in texts for slot in range(k)]
    authors = {t.sample["seed_index"]: t.sample["model"] for t in texts}
    calls = ctx.call("reviewer", items, authors)
    if spec.decision.review_score == "expected":
        calls, _ = with_expected(ctx, "reviewer", items, authors, calls)
    extra = extra_signals(ctx, [t.text for t in texts])
    tokens = likelihood_tokens(ctx, [t.text for t in texts]) if "likelihood" in extra else [None] * len(texts)
    rule = spec.decision
    floor = rejected_score(rule.score, recipe.score_range, rule.min_likelihood)
    for n, t in enumerate(texts):
        mine = calls[n * k:(n + 1) * k]
        scores = review_signals(mine, bound.role.axes, len(bound.models) > 1)
        rules, rule_rejected = rule_signals(recipe, t.sample, t.text)
        others = {name: values[n] for name, values in extra.items()}
        gate = likelihood_gate(spec.decision.min_likelihood, others.get("likelihood"))
        rejected = rule_rejected or gate == 0.0
        value = decision_score(rule.score, scores["reviewers.overall"], others.get("likelihood"),
                               recipe.rule_signals(recipe.rule_checks(t.sample["seed"] or {}, t.text)),
                               t.text, tokens[n])
        # Rejected by a gate: below any score a passing text can have, as the pipeline never accepts it.
        t.scores = {DECISION: floor if rejected else value, **scores, **rules, **others,
                    **({} if gate is None else {"likelihood_gate": gate}), "gates": 0.0 if rejected else 1.0}
        t.lineage = [{"slot": c.slot, **({"drop": c.parsed.reason} if isinstance(c.parsed, Drop) else {}),
                      **c.lineage} for c in mine]


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def signal_names(texts: list[Scored]) -> list[str]:
    names: list[str] = []
    for t in texts:
        names += [n for n in t.scores if n not in names]
    return names


def summarize(texts: list[Scored], kinds: list[str]) -> dict[str, dict[str, dict]]:
    """by_signal[signal][kind or "all"] = {"pairwise_accuracy", "pairwise_ci", "auc", "auc_ci", "pairs", "ties"}."""
    originals = {t.sample["sample_id"]: t for t in texts if t.kind == ORIGINAL}
    corrupted = [t for t in texts if t.kind != ORIGINAL]
    out: dict[str, dict[str, dict]] = {}
    for signal in signal_names(texts):
        out[signal] = {}
        for kind in [*kinds, ALL]:
            group = [t for t in corrupted if kind in (ALL, t.kind)]
            if not group:
                continue
            base = {t.sample["sample_id"] for t in group}
            pairs = [(originals[t.sample["sample_id"]].scores.get(signal), t.scores.get(signal)) for t in group]
            ids = [t.sample["sample_id"] for t in group]  # each pair's original: the bootstrap's cluster
            acc = metrics.pairwise_accuracy(pairs, ids)
            area = metrics.auc([originals[s].scores.get(signal) for s in sorted(base)],
                               [t.scores.get(signal) for t in group], sorted(base), ids)
            out[signal][kind] = {"pairwise_accuracy": _round(acc["value"]),
                                 "pairwise_ci": [_round(acc["ci_low"]), _round(acc["ci_high"])],
                                 "pairs": acc["n"], "ties": acc["ties"], "auc": _round(area["value"]),
                                 "auc_ci": [_round(area["ci_low"]), _round(area["ci_high"])]}
    return out


def probe_job(job, db=None, samples: int = DEFAULT_SAMPLES, seed: int = 0, kinds: list[str] | None = None,
              say=None) -> dict:
    """The probe of one job (a YAML path, a dict, a JobSpec, or a name / fingerprint in db):
    its summary, also stored as a probe_runs row with one probe_items row per scored text.
    say(line): progress and notes as they happen (the CLI prints them on stderr)."""
    from factory.executors import make_executor
    from factory.steps import Context
    from factory.calls import Caller

    if samples < 1:
        raise JobError(f"--samples: must be >= 1 (got {samples})")
    say = say or (lambda line: None)
    started = time.monotonic()
    spec = spec_of(job)
    path = database(spec, db)
    notes: list[str] = []
    with Store(path) as store:
        fingerprint, spec = resolve(store, job, spec)
        recipe = make_recipe(spec, path)
        if "reviewer" not in recipe.roles or recipe.export_kind != "text":
            raise NothingToProbe(f"job {spec.name} ({fingerprint}): recipe {recipe.name} has no one-text samples "
                                 "reviewed by a `reviewer` role; the probe reads text recipes and math")
        bound = bind_roles(spec, recipe)
        accepted = accepted_for_probe(store, fingerprint)
        if not accepted:
            raise NothingToProbe(f"job {spec.name} ({fingerprint}) has no accepted samples in {path}: nothing to probe")
        if len(accepted) < FEW_SAMPLES:
            notes.append(f"job {spec.name} has {len(accepted)} accepted samples (fewer than {FEW_SAMPLES}): "
                         f"probing all {len(accepted)}; the intervals are wide")
            say(notes[-1])
        corruptions, held_out = corruption_kinds(recipe, kinds)
        chosen = select(accepted, samples, seed)
        texts, skipped = corrupt({**corruptions, **held_out}, chosen, seed, recipe)
        kinds, held_kinds = list(corruptions), list(held_out)
        say(f"probing {len(chosen)} samples x {len(kinds)} corruption kinds with {spec.reviewers} reviews each: "
            f"{len(texts) * spec.reviewers} review requests (the originals' are the job's own, cached)")
        ex = spec.execution
        executor = make_executor(ex.executor, ex.engines, ex.threads_per_engine, None, ex.gpus_per_engine,
                                 ex.slots_per_engine)
        try:
            caller = Caller(store, executor)
            ctx = Context(spec=spec, job=fingerprint, bound=bound, caller=caller, recipe=recipe, store=store)
            score(ctx, texts, recipe, spec)
        finally:
            executor.close()
        # The headline and "all" are over the declared kinds; the held-out kinds are summed apart.
        by_signal = summarize([t for t in texts if t.kind not in held_out], kinds)
        held = summarize([t for t in texts if t.kind not in corruptions], held_kinds)[DECISION] if held_kinds else {}
        config = {"samples": samples, "seed": seed, "kinds": kinds, "held_out_kinds": held_kinds,
                  "reviewers": spec.reviewers,
                  "signals": list(by_signal), "decision_rule": spec.decision.model_dump(mode="json")}
        run_id = digest("probe", fingerprint, config, time.time_ns())
        headline = by_signal[DECISION].get(ALL, {})
        summary = {
            "run_id": run_id, "job": fingerprint, "name": spec.name, "db": str(path),
            "accepted": len(accepted), "samples": len(chosen), "pairs": headline.get("pairs", 0),
            "pairwise_accuracy": headline.get("pairwise_accuracy"),
            "pairwise_accuracy_ci": headline.get("pairwise_ci", [None, None]),
            "auc": headline.get("auc"), "auc_ci": headline.get("auc_ci", [None, None]),
            "by_kind": {kind: _kind_counts(by_signal[DECISION].get(kind, {"pairs": 0}), skipped.get(kind, 0),
                                           sum(1 for t in texts if t.kind == kind)) for kind in kinds},
            "by_signal": by_signal,
            "held_out": {**{k: held.get(ALL, {}).get(k) for k in ("pairwise_accuracy", "pairwise_ci", "auc", "auc_ci",
                                                                  "pairs")},
                         "by_kind": {kind: _kind_counts(held.get(kind, {"pairs": 0}), skipped.get(kind, 0),
                                                        sum(1 for t in texts if t.kind == kind))
                                     for kind in held_kinds}} if held_kinds else None,
            "intervals": "95%: pairwise accuracy (ties credit 0.5) and AUC by a percentile bootstrap over "
                         f"originals, each with its corruptions ({metrics.BOOTSTRAP} resamples, seed "
                         f"{metrics.BOOTSTRAP_SEED}); one kind's pairwise accuracy (one pair per original): Wilson",
            "model_calls": caller.model_calls,
            "seconds": round(time.monotonic() - started, 2),
            "notes": notes,
        }
        items = [{"run_id": run_id, "sample_id": t.sample["sample_id"], "kind": t.kind, "text": t.text,
                  "scores": t.scores, "lineage": t.lineage} for t in texts]
        write_probe(store, {"run_id": run_id, "job": fingerprint, "config": config, "summary": summary}, items)
    return summary


__all__ = ["DEFAULT_SAMPLES", "NothingToProbe", "probe_job"]
