"""Recipes whose sample is one text (TinyStories, textbooks): generate, exact dedup, rule
checks, k reviews, the decision rule, the Adjudicator."""
from __future__ import annotations

from factory.batches.seeds import make_seeds
from factory.keys import content_hash, digest, sample_id, seed_id
from factory.recipes.base import TextRecipe
from factory.stages import Context, add_drop, add_verdict, decide_and_adjudicate, review
from roles import Drop
from stores import BatchRows, Store


class TextBatch:
    def __init__(self, ctx: Context, recipe: TextRecipe, store: Store):
        self.ctx, self.recipe, self.store = ctx, recipe, store

    def run(self, indices: list[int]) -> BatchRows:
        ctx = self.ctx
        batch = BatchRows(batch_id=digest("batch", ctx.job, indices), job=ctx.job, seed_indices=indices)
        seeds = make_seeds(ctx, self.recipe, batch, indices)
        texts = self._generate(batch, seeds)
        unique = self._dedup(batch, texts)
        to_review = {}
        for i, row in unique.items():
            rejected = self.recipe.rule_reject(row["rule_checks"])
            if rejected:
                add_verdict(ctx, batch, row["sample_id"], "reject", *rejected)
            else:
                to_review[i] = (row["sample_id"], self.recipe.review_variables(seeds[i], row["text"]))
        reviews = review(ctx, batch, to_review, {i: unique[i]["model"] for i in to_review})
        decide_and_adjudicate(ctx, batch, to_review, reviews)
        return batch

    def _generate(self, batch: BatchRows, seeds: dict[int, dict]) -> dict[int, dict]:
        ctx, rows = self.ctx, {}
        for call in ctx.call("generator", [(i, 0, seed) for i, seed in seeds.items()]):
            i = call.index
            if isinstance(call.parsed, Drop):
                add_drop(ctx, batch, i, "generator", call.parsed, call.lineage)
                continue
            text = call.parsed.text
            rows[i] = {"sample_id": sample_id(ctx.job, i), "job": ctx.job, "seed_id": seed_id(ctx.job, i),
                       "seed_index": i, "text": text, "content_hash": content_hash(text), "duplicate_of": None,
                       "rule_checks": self.recipe.rule_checks(seeds[i], text), "payload": None, **call.lineage}
        return rows

    def _dedup(self, batch: BatchRows, rows: dict[int, dict]) -> dict[int, dict]:
        """Exact dedup by content hash against the job's earlier samples and this batch."""
        seen = self.store.samples_by_hash(self.ctx.job, [r["content_hash"] for r in rows.values()])
        unique = {}
        for i in sorted(rows):
            row = rows[i]
            first = seen.get(row["content_hash"])
            batch.add("samples", row)
            if first is not None:
                row["duplicate_of"] = first
                add_verdict(self.ctx, batch, row["sample_id"], "reject", "exact_duplicate", f"same text as {first}")
            else:
                seen[row["content_hash"]] = row["sample_id"]
                unique[i] = row
        return unique
