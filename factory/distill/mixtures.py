"""Mixtures: which training rows each student sees.

Every mixture of one distillation trains on the same problems; they differ only in which
solution each problem contributes (long or short CoT, large or small teacher). That keeps
the comparison about the reasoning style and not about which problems were drawn. So the
pool is the problems that have a candidate for every part any mixture uses.

Sampling is deterministic: problems are ranked by sha256(seed, problem), never by
Python's salted hash() or the store's row order.
"""
from __future__ import annotations

from dataclasses import dataclass

from factory.keys import digest
from factory.spec import JobError


class MixtureError(JobError):
    """A mixture that cannot be filled: says how many rows exist; nothing is trained."""
    exit_code = 2  # bad input: nothing written (factory/cli.py's codes)


@dataclass(frozen=True)
class Candidate:
    source_id: str   # the solution (math) or sample (stories) the row comes from
    sample_id: str
    problem: str     # the problem's content hash: the same problem across jobs
    prompt: str      # not in the loss
    target: str      # in the loss


@dataclass(frozen=True)
class Mixture:
    name: str
    parts: dict[str, float]
    counts: dict[str, int]
    rows: tuple[tuple[str, Candidate], ...]   # (part, candidate), in training-file order
    mixture_id: str


def part_counts(parts: dict[str, float], rows: int) -> dict[str, int]:
    """Rows per part: floor of each share, then the remainder to the largest fractions
    (ties by part name), so the counts always sum to rows."""
    exact = {p: share * rows for p, share in parts.items()}
    counts = {p: int(x) for p, x in exact.items()}
    left = rows - sum(counts.values())
    for p in sorted(parts, key=lambda p: (-(exact[p] - counts[p]), p))[:left]:
        counts[p] += 1
    return counts


def problem_pool(candidates: dict[str, dict[str, list[Candidate]]], needed: set[str]) -> list[str]:
    """Problems with at least one candidate for every needed part, sorted."""
    sets = [set(candidates.get(part, {})) for part in sorted(needed)]
    return sorted(set.intersection(*sets)) if sets else []


def _ranked(keys, seed: int, salt: str) -> list[str]:
    return sorted(keys, key=lambda k: digest(salt, seed, k))


def choose_problems(pool: list[str], rows: int, seed: int) -> list[str]:
    return _ranked(pool, seed, "problems")[:rows]


def build_mixture(name: str, parts: dict[str, float], candidates: dict[str, dict[str, list[Candidate]]],
                  problems: list[str], seed: int) -> Mixture:
    """Give each chosen problem one part (in a seeded order: the first counts[p] problems of
    that order take part p, parts in name order) and the seeded-first candidate of it."""
    counts = part_counts(parts, len(problems))
    order = _ranked(problems, seed, "assign")
    rows, start = [], 0
    for part in sorted(parts):
        for problem in order[start:start + counts[part]]:
            options = candidates[part][problem]
            pick = _ranked([c.source_id for c in options], seed, "candidate")[0]
            rows.append((part, next(c for c in options if c.source_id == pick)))
        start += counts[part]
    # Training-file order: shuffled so parts interleave (the trainer shuffles again per epoch).
    rows = [rows[i] for i in sorted(range(len(rows)), key=lambda i: digest("row", seed, rows[i][1].source_id))]
    mixture_id = digest("mixture", parts, [(p, c.source_id) for p, c in rows])
    return Mixture(name, dict(parts), counts, tuple(rows), mixture_id)


def rows_to_use(requested: int | str, pool: list[str], available: dict[str, int], mixtures: list[str]) -> int:
    """The rows every mixture gets; a request for more than the pool holds trains nothing."""
    if not pool:
        raise MixtureError(f"rows: no problem has every part the mixtures ({', '.join(mixtures)}) need "
                           f"({_available(available)}); nothing trained")
    if requested == "max":
        return len(pool)
    if requested > len(pool):
        raise MixtureError(f"rows: asks for {requested} rows per mixture, but {len(pool)} problems have every part "
                           f"the mixtures ({', '.join(mixtures)}) need ({_available(available)}); nothing trained")
    return int(requested)


def _available(available: dict[str, int]) -> str:
    return ", ".join(f"{part}: {n} problems" for part, n in sorted(available.items()))
