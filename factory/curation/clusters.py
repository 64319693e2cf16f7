"""Duplicate pairs -> clusters (union-find) -> the best-scored member of each is kept."""
from __future__ import annotations

from dataclasses import dataclass

from factory.keys import digest


class UnionFind:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]  # path halving
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass(frozen=True)
class Member:
    cluster_id: str
    sample_id: str
    kept: bool
    similarity: float  # the highest similarity of this member to another in the cluster


def clusters_from_pairs(pairs: list[tuple[str, str, float]], score: dict[str, float],
                        order: dict[str, int]) -> list[Member]:
    """pairs: (a, b, similarity). In each cluster the highest score is kept; ties go to the
    earliest seed index, so the result does not depend on the order pairs were found."""
    uf = UnionFind()
    best_sim: dict[str, float] = {}
    for a, b, sim in pairs:
        uf.union(a, b)
        best_sim[a] = max(best_sim.get(a, 0.0), sim)
        best_sim[b] = max(best_sim.get(b, 0.0), sim)
    groups: dict[str, list[str]] = {}
    for x in best_sim:
        groups.setdefault(uf.find(x), []).append(x)
    members = []
    for group in groups.values():
        keep = max(group, key=lambda s: (score.get(s, 0.0), -order.get(s, 0)))
        cluster_id = digest("cluster", sorted(group))
        members += [Member(cluster_id, s, s == keep, round(best_sim[s], 4)) for s in sorted(group)]
    return members
