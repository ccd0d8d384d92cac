"""Stratified, group-aware, seeded train/val/test split.

Each class is split on its own (stratified); a split unit (near-duplicate group, user group:
see `skyclass.prepare.groups`) moves as one, so no photo has a copy or a sibling frame on
another side; the same seed always gives the same split. A unit with images in several
classes (a contributor's photos, say) is placed by the first class that meets it, and the
other classes count its images where it went.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping

from skyclass.prepare.process import Processed

# Holdout splits, in the order they are filled: test first, so the figure a user reports
# never runs short when a class is small.
HOLDOUTS = ("test", "val")


def _targets(total: int, fractions: dict[str, float]) -> dict[str, int]:
    """Images per holdout split of one class; each asked-for split gets >= 1, train keeps 1."""
    targets = {}
    for name in HOLDOUTS:
        n = round(total * fractions[name])
        if fractions[name] > 0 and total >= 2:
            n = max(n, 1)
        targets[name] = n
    while sum(targets.values()) > total - 1 and total >= 1:
        biggest = max(HOLDOUTS[::-1], key=lambda s: targets[s])  # shrink val before test
        if targets[biggest] == 0:
            break
        targets[biggest] -= 1
    return targets


def split_groups(
    kept: list[Processed],
    group_of: Mapping[int, object],
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[int, str]:
    """Map each Processed.index to 'train', 'val' or 'test'.

    `group_of` maps an index to its split unit (images without one are their own unit).
    """
    fractions = {"val": val_fraction, "test": test_fraction}
    unit_of = {it.index: group_of.get(it.index, ("single", it.index)) for it in kept}
    by_class: dict[str, dict[object, list[Processed]]] = defaultdict(lambda: defaultdict(list))
    for it in kept:
        by_class[it.source.label][unit_of[it.index]].append(it)
    side_of_unit: dict[object, str] = {}
    for label in sorted(by_class):
        units = sorted(by_class[label].items(), key=lambda u: min(it.source.path for it in u[1]))
        # Bytes, not str: a folder name with undecodable bytes holds surrogates that str
        # seeding cannot encode. For ordinary names both seed alike.
        random.Random(f"{seed}:{label}".encode("utf-8", "surrogateescape")).shuffle(units)
        total = sum(len(members) for _, members in units)
        targets = _targets(total, fractions)
        have = dict.fromkeys((*HOLDOUTS, "train"), 0)
        for unit, members in units:  # units placed by an earlier class count first
            if unit in side_of_unit:
                have[side_of_unit[unit]] += len(members)
        placed_here = []
        for unit, members in units:
            if unit in side_of_unit:
                continue
            side = "train"
            for name in HOLDOUTS:
                room = targets[name] - have[name]
                if room > 0 and (len(members) <= room or have[name] == 0):
                    side = name
                    break
            side_of_unit[unit] = side
            have[side] += len(members)
            placed_here.append(unit)
        if have["train"] == 0 and placed_here:
            # One big unit took everything: training needs images more than testing does.
            have[side_of_unit[placed_here[0]]] -= len(by_class[label][placed_here[0]])
            side_of_unit[placed_here[0]] = "train"
    return {it.index: side_of_unit[unit_of[it.index]] for it in kept}
