"""Picks the default `contamination_similarity`: recall on hand-written paraphrases of GSM8K
train questions (tests/data/paraphrases.jsonl, 30 rows, each naming the row it rewords) and
the false-flag rate on clean problems of the math recipe (math_problems.generate_problem,
GSM8K-like but written from templates), both against all of GSM8K train as the benchmark.

A paraphrase counts as recalled when its closest benchmark row is the one it paraphrases and
the cosine is at or above the threshold; a clean problem is falsely flagged when any row
reaches the threshold. Also reports what the 8/13-gram check alone catches.

    .venv/bin/python bench/paraphrase_contamination.py [--clean 100] [--benchmark ../shared/data/gsm8k/train.jsonl]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from factory.curation.decontaminate import contamination_hits, read_benchmark, semantic_hits
from factory.curation.semantic_dedup import embed
from factory.recipes.math_problems import generate_problem

ROOT = Path(__file__).resolve().parent.parent
THRESHOLDS = (0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--benchmark", default=str(ROOT.parent / "shared/data/gsm8k/train.jsonl"))
    parser.add_argument("--paraphrases", default=str(ROOT / "tests/data/paraphrases.jsonl"))
    parser.add_argument("--clean", type=int, default=100, help="clean problems: generate_problem(seed 0, 0..N-1)")
    args = parser.parse_args()

    _, rows = read_benchmark(args.benchmark)
    planted = [json.loads(line) for line in Path(args.paraphrases).read_text().splitlines() if line.strip()]
    clean = [generate_problem(0, i).question for i in range(args.clean)]
    row_vectors = embed(rows)
    para_ids = [f"p{i}" for i in range(len(planted))]
    clean_ids = [f"c{i}" for i in range(len(clean))]
    texts = [p["text"] for p in planted] + clean
    vectors = embed(texts)
    ids = para_ids + clean_ids

    ngram = {h.sample_id for h in contamination_hits(ids, texts, "gsm8k", rows, [8, 13])}
    lowest = semantic_hits(ids, vectors, "gsm8k", rows, row_vectors, -1.0)  # every sample's closest row
    best = {h.sample_id: h for h in lowest}
    truth = {f"p{i}": p["train_row"] for i, p in enumerate(planted)}
    para_sims = sorted(best[i].similarity for i in para_ids)
    clean_sims = sorted(best[i].similarity for i in clean_ids)
    print(f"benchmark rows {len(rows)}, paraphrases {len(planted)}, clean {len(clean)}")
    print(f"8/13-gram check alone: paraphrases flagged {sum(i in ngram for i in para_ids)}/{len(para_ids)}, "
          f"clean flagged {sum(i in ngram for i in clean_ids)}/{len(clean_ids)}")
    print(f"closest-row cosine: paraphrases min {para_sims[0]:.3f} median {para_sims[len(para_sims) // 2]:.3f}; "
          f"clean max {clean_sims[-1]:.3f} median {clean_sims[len(clean_sims) // 2]:.3f}")
    wrong_row = [i for i in para_ids if best[i].benchmark_row != truth[i]]
    print(f"paraphrases whose closest row is not their source: {len(wrong_row)}")
    print("| threshold | paraphrase recall | clean false flags |")
    print("|---|---|---|")
    for t in THRESHOLDS:
        recalled = sum(1 for i in para_ids if best[i].similarity >= t and best[i].benchmark_row == truth[i])
        false = sum(1 for i in clean_ids if best[i].similarity >= t)
        print(f"| {t:.2f} | {recalled}/{len(para_ids)} ({recalled / len(para_ids):.0%}) | "
              f"{false}/{len(clean_ids)} ({false / len(clean_ids):.0%}) |")


if __name__ == "__main__":
    main()
