"""Mixture ratios, determinism, and that every mixture trains on the same problems."""
import pytest

from factory.distill.mixtures import (Candidate, MixtureError, build_mixture, choose_problems, part_counts,
                                      problem_pool, rows_to_use)


def candidates(n_problems: int, parts=("long", "short"), missing: dict | None = None):
    missing = missing or {}
    out = {}
    for part in parts:
        out[part] = {f"p{i:03d}": [Candidate(f"{part}-{i}", f"s{i}", f"p{i:03d}", f"Q{i}", f"{part} answer {i}")]
                     for i in range(n_problems) if i not in missing.get(part, ())}
    return out


@pytest.mark.parametrize("rows,parts,expected", [
    (10, {"long": 0.2, "short": 0.8}, {"long": 2, "short": 8}),
    (7, {"long": 0.2, "short": 0.8}, {"long": 1, "short": 6}),       # 1.4 / 5.6: the remainder goes to short
    (3, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, {"a": 1, "b": 1, "c": 1}),
    (1, {"long": 0.5, "short": 0.5}, {"long": 1, "short": 0}),       # ties broken by name
    (40, {"long": 1.0}, {"long": 40}),
])
def test_part_counts_follow_the_shares_and_sum_to_rows(rows, parts, expected):
    assert part_counts(parts, rows) == expected
    assert sum(part_counts(parts, rows).values()) == rows


def test_mix_long_takes_exactly_its_share_and_is_deterministic():
    c = candidates(50)
    problems = choose_problems(problem_pool(c, {"long", "short"}), 40, seed=0)
    a = build_mixture("mix-long", {"long": 0.2, "short": 0.8}, c, problems, seed=0)
    b = build_mixture("mix-long", {"long": 0.2, "short": 0.8}, c, problems, seed=0)
    assert a == b and a.mixture_id == b.mixture_id
    assert [p for p, _ in a.rows].count("long") == 8 and len(a.rows) == 40
    other = build_mixture("mix-long", {"long": 0.2, "short": 0.8}, c, problems, seed=1)
    assert other.mixture_id != a.mixture_id  # another seed gives other problems the long solution
    assert sorted(r.problem for _, r in other.rows) == sorted(r.problem for _, r in a.rows)


def test_every_mixture_trains_on_the_same_problems_each_once():
    c = candidates(30)
    problems = choose_problems(problem_pool(c, {"long", "short"}), 20, seed=3)
    mixes = [build_mixture(n, p, c, problems, seed=3)
             for n, p in [("long", {"long": 1.0}), ("short", {"short": 1.0}), ("mix", {"long": 0.2, "short": 0.8})]]
    sets = [sorted(cand.problem for _, cand in m.rows) for m in mixes]
    assert sets[0] == sets[1] == sets[2] == sorted(problems)
    assert all(len(set(s)) == len(s) for s in sets)
    assert all(cand.source_id.startswith(part) for m in mixes for part, cand in m.rows)


def test_the_pool_is_problems_with_every_part_and_a_bigger_request_trains_nothing():
    c = candidates(10, missing={"long": {1, 2, 3}})
    pool = problem_pool(c, {"long", "short"})
    assert len(pool) == 7
    assert rows_to_use("max", pool, {"long": 7, "short": 10}, ["long", "short"]) == 7
    with pytest.raises(MixtureError) as err:
        rows_to_use(8, pool, {"long": 7, "short": 10}, ["long", "short"])
    assert "asks for 8 rows" in str(err.value) and "7 problems" in str(err.value) and "long: 7" in str(err.value)
    with pytest.raises(MixtureError, match="no problem has every part"):
        rows_to_use("max", [], {"long": 0, "short": 10}, ["long"])
