"""Stratified, group-aware, seeded train/test split.

Each class is split on its own (stratified); near-duplicate groups move as one unit, so no
photo has a copy on the other side; the same seed always gives the same split.
"""

from __future__ import annotations

import random
from collections import defaultdict

from skyclass.prepare.process import Processed


def split_groups(
    kept: list[Processed], group_of: dict[int, int], val_fraction: float, seed: int
) -> dict[int, str]:
    """Map each Processed.index to 'train' or 'test'."""
    by_class: dict[str, dict[int, list[Processed]]] = defaultdict(lambda: defaultdict(list))
    for it in kept:
        by_class[it.source.label][group_of.get(it.index, -1 - it.index)].append(it)
    assignment: dict[int, str] = {}
    for label in sorted(by_class):
        groups = sorted(by_class[label].values(), key=lambda g: min(it.source.path for it in g))
        # Bytes, not str: a folder name with undecodable bytes holds surrogates that str
        # seeding cannot encode. For ordinary names both seed alike.
        random.Random(f"{seed}:{label}".encode("utf-8", "surrogateescape")).shuffle(groups)
        total = sum(len(g) for g in groups)
        target = round(total * val_fraction)
        if val_fraction > 0 and total >= 2:
            target = min(max(target, 1), total - 1)
        in_test = 0
        for group in groups:
            side = "train"
            if in_test < target and (in_test + len(group) <= target or in_test == 0):
                side = "test"
                in_test += len(group)
            for it in group:
                assignment[it.index] = side
        if all(assignment[it.index] == "test" for g in groups for it in g):
            # One big group and nothing else: training needs images more than testing does.
            for it in groups[0]:
                assignment[it.index] = "train"
    return assignment
