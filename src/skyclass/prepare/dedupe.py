"""Find exact and near duplicates, and photos filed under two classes.

- Exact copies (same bytes) inside one class: the first path is kept, the others are skipped.
- Near copies (perceptual hash within `threshold` bits under any rotation/flip) inside one
  class: all are kept, as one group, so the split never puts them on both sides.
- The same photo (exact or near) in two classes is a label conflict: every copy is excluded
  and the report names all paths.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from skyclass.prepare.process import Processed
from skyclass.prepare.scan import Skipped


@dataclass
class DedupeResult:
    kept: list[Processed]
    skipped: list[Skipped]
    group_of: dict[int, int]  # Processed.index -> group id (near-duplicate group)
    near_groups: list[list[int]] = field(default_factory=list)  # groups of size > 1
    conflicts: list[list[str]] = field(default_factory=list)  # paths of each conflicting set


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def near_pairs(items: list[Processed], threshold: int, chunk: int = 512) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, whose hashes are within `threshold` bits under some rotation/flip."""
    n = len(items)
    if n < 2:
        return []
    plain = np.array([it.phash for it in items], dtype=np.uint64)
    variants = np.array([it.dihedral for it in items], dtype=np.uint64)  # (n, 8)
    pairs: list[tuple[int, int]] = []
    for start in range(0, n, chunk):
        block = plain[start : start + chunk, None, None] ^ variants[None, :, :]
        dist = np.bitwise_count(block).min(axis=2)  # (chunk, n)
        rows, cols = np.nonzero(dist <= threshold)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            i = start + r
            if i < c:
                pairs.append((i, c))
    return pairs


def dedupe(items: list[Processed], mode: str, threshold: int) -> DedupeResult:
    """Group `items` (already decoded) by exact and, if `mode == 'near'`, perceptual identity."""
    items = sorted(items, key=lambda it: (it.source.label, it.source.path))
    uf = _UnionFind(len(items))
    exact_twins: dict[int, int] = {}  # position -> position of the copy that is kept
    if mode != "off":
        first_by_sha: dict[str, int] = {}
        for pos, it in enumerate(items):
            if it.sha256 in first_by_sha:
                exact_twins[pos] = first_by_sha[it.sha256]
                uf.union(first_by_sha[it.sha256], pos)
            else:
                first_by_sha[it.sha256] = pos
    if mode == "near":
        for i, j in near_pairs(items, threshold):
            uf.union(i, j)
    members: dict[int, list[int]] = defaultdict(list)
    for pos in range(len(items)):
        members[uf.find(pos)].append(pos)

    result = DedupeResult(kept=[], skipped=[], group_of={})
    for root, group in sorted(members.items()):
        labels = {items[p].source.label for p in group}
        if len(labels) > 1:
            paths = [items[p].source.path for p in group]
            result.conflicts.append(paths)
            for p in group:
                others = ", ".join(q for q in paths if q != items[p].source.path)
                result.skipped.append(
                    Skipped(
                        items[p].source.path,
                        items[p].source.label,
                        "label_conflict",
                        f"same photo filed under another class: {others}",
                    )
                )
            continue
        kept_here = []
        for p in group:
            if p in exact_twins:
                twin = items[exact_twins[p]].source.path
                result.skipped.append(
                    Skipped(items[p].source.path, items[p].source.label, "duplicate",
                            f"exact copy of {twin}")
                )
            else:
                kept_here.append(p)
                result.kept.append(items[p])
                result.group_of[items[p].index] = root
        if len(kept_here) > 1:
            result.near_groups.append([items[p].index for p in kept_here])
    result.kept.sort(key=lambda it: (it.source.label, it.source.path))
    return result
