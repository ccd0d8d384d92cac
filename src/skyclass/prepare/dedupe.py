"""Find exact and near duplicates, and photos filed under two classes.

- Exact copies (same bytes) inside one class: the first path is kept, the others are skipped.
- Near copies inside one class: all are kept, as one group, so the split never puts them on
  both sides.
- The same photo (exact or near) in two classes is a label conflict: every copy is excluded
  and each is reported with the one or few photos it matched.

A near copy is a perceptual-hash candidate (within `threshold` bits under some rotation/flip)
that a finer check confirms, inside a class as across classes: on some rotation/flip the
32x32 grey thumbnails correlate at least CONFIRM_CORRELATION *and* their high-pass detail
(thumbnail minus its 5x5 box blur: edges, the object) correlates at least
CONFIRM_DETAIL_CORRELATION. Low-detail images (LOW_DETAIL_STD) are never near copies.

Why (measured, bench/dedupe_quality.py): on ddd_visible (small objects on plain skies) the
hash alone paired 611 photos of *different* videos, and grouping unconfirmed same-class pairs
chained them into groups of 70 that one cross-class match then excluded as "conflicts" (94 of
1,014 images lost). Plain thumbnails of two different skies still correlate up to 0.9993;
their detail correlates at most 0.977. The 1,132 augmented copies of bird_drone (rotations,
flips, brightness shifts) correlate >= 0.9998 (plain) and >= 0.9965 (detail); the 250 hash
pairs of different originals there (neighbouring frames of one drone video) at most 0.9981
and 0.9903.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from skyclass.prepare.process import THUMB_SIDE, Processed
from skyclass.prepare.scan import Skipped

# Confirmation thresholds of a hash candidate (see the module docstring for the measurements).
CONFIRM_CORRELATION = 0.999
CONFIRM_DETAIL_CORRELATION = 0.99
# Below this standard deviation (grey levels of 255) of the 32x32 thumbnail an image is
# "low detail" (flat colour, empty sky): its hash and thumbnails say nothing about identity.
LOW_DETAIL_STD = 2.0
# A label conflict names at most this many of the photos it matched.
CONFLICT_PARTNERS_SHOWN = 3
_BLUR = 5


@dataclass
class DedupeResult:
    kept: list[Processed]
    skipped: list[Skipped]
    group_of: dict[int, int]  # Processed.index -> group id (near-duplicate group)
    near_groups: list[list[int]] = field(default_factory=list)  # groups of size > 1
    conflicts: list[list[str]] = field(default_factory=list)  # paths of each conflicting set
    # Hash candidates that the thumbnails did not confirm (not near copies, not conflicts).
    unconfirmed_matches: int = 0
    low_detail: int = 0  # images never matched on their hash (LOW_DETAIL_STD)


@dataclass(frozen=True)
class Thumb:
    """The two normalised views of a thumbnail that confirm a match, and its detail."""

    plain: np.ndarray  # zero mean, unit norm (brightness-shift invariant)
    detail: np.ndarray  # high-pass, zero mean, unit norm
    std: float


def _unit(arr: np.ndarray) -> np.ndarray:
    arr = arr - arr.mean()
    norm = float(np.linalg.norm(arr))
    return arr / norm if norm > 0 else arr


def box_blur(arr: np.ndarray, side: int = _BLUR) -> np.ndarray:
    """Mean over a side x side window, edges repeated (scipy's uniform_filter 'nearest')."""
    pad = side // 2
    padded = np.pad(arr, pad, mode="edge")
    return sliding_window_view(padded, (side, side)).mean(axis=(2, 3))


def make_thumb(it: Processed) -> Thumb | None:
    if len(it.thumb) != THUMB_SIDE * THUMB_SIDE:
        return None
    arr = np.frombuffer(it.thumb, dtype=np.uint8).reshape(THUMB_SIDE, THUMB_SIDE)
    arr = arr.astype(np.float64)
    return Thumb(_unit(arr), _unit(arr - box_blur(arr)), float(arr.std()))


def _variants(arr: np.ndarray) -> list[np.ndarray]:
    return [np.rot90(arr, k) for k in range(4)] + [np.rot90(arr.T, k) for k in range(4)]


def similarity(a: Thumb, b: Thumb) -> tuple[float, float]:
    """(plain, detail) correlation of `a` with the rotation/flip of `b` that matches best."""
    pairs = zip(_variants(b.plain), _variants(b.detail), strict=True)
    return max((float((a.plain * p).sum()), float((a.detail * d).sum())) for p, d in pairs)


def is_low_detail(thumb: Thumb | None) -> bool:
    return thumb is None or thumb.std < LOW_DETAIL_STD


def confirmed(a: Thumb | None, b: Thumb | None) -> bool:
    """Is a hash candidate the same photo? Never for low-detail images or without thumbnails."""
    if is_low_detail(a) or is_low_detail(b):
        return False
    plain, detail = similarity(a, b)  # type: ignore[arg-type]
    return plain >= CONFIRM_CORRELATION and detail >= CONFIRM_DETAIL_CORRELATION


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


def near_pairs(
    items: list[Processed], threshold: int, max_block: int = 8_000_000
) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, whose hashes are within `threshold` bits under some rotation/flip.

    All pairs are compared (vectorised): rows are taken in chunks of at most `max_block`
    64-bit XORs, so 19,318 photos (the reference data set) peak at about 64 MB, not 600 MB.
    """
    n = len(items)
    if n < 2:
        return []
    chunk = max(1, max_block // (8 * n))
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
    """Group `items` (decoded) by exact and, if `mode == "near"`, confirmed near identity."""
    items = sorted(items, key=lambda it: (it.source.label, it.source.path))
    uf = _UnionFind(len(items))
    matched: dict[int, set[int]] = defaultdict(set)  # position -> positions it matched directly
    exact_twins: dict[int, int] = {}  # position -> position of the copy that is kept
    if mode != "off":
        first_by_sha: dict[str, int] = {}
        for pos, it in enumerate(items):
            if it.sha256 in first_by_sha:
                first = first_by_sha[it.sha256]
                exact_twins[pos] = first
                uf.union(first, pos)
                matched[pos].add(first)
                matched[first].add(pos)
            else:
                first_by_sha[it.sha256] = pos
    unconfirmed = low_detail = 0
    if mode == "near":
        thumbs = [make_thumb(it) for it in items]
        low_detail = sum(is_low_detail(t) for t in thumbs)
        for i, j in near_pairs(items, threshold):
            if items[i].sha256 == items[j].sha256:
                continue  # exact copies: already grouped
            if confirmed(thumbs[i], thumbs[j]):
                uf.union(i, j)
                matched[i].add(j)
                matched[j].add(i)
            else:
                unconfirmed += 1
    members: dict[int, list[int]] = defaultdict(list)
    for pos in range(len(items)):
        members[uf.find(pos)].append(pos)

    result = DedupeResult(
        kept=[], skipped=[], group_of={}, unconfirmed_matches=unconfirmed, low_detail=low_detail
    )
    for root, group in sorted(members.items()):
        labels = {items[p].source.label for p in group}
        if len(labels) > 1:
            result.conflicts.append([items[p].source.path for p in group])
            for p in group:
                result.skipped.append(_conflict_skip(items, p, group, matched[p]))
            continue
        kept_here = []
        for p in group:
            if p in exact_twins:
                twin = items[exact_twins[p]].source.path
                result.skipped.append(
                    Skipped(
                        items[p].source.path,
                        items[p].source.label,
                        "duplicate",
                        f"exact copy of {twin}",
                    )
                )
            else:
                kept_here.append(p)
                result.kept.append(items[p])
                result.group_of[items[p].index] = root
        if len(kept_here) > 1:
            result.near_groups.append([items[p].index for p in kept_here])
    result.kept.sort(key=lambda it: (it.source.label, it.source.path))
    return result


def _conflict_skip(items: list[Processed], p: int, group: list[int], direct: set[int]) -> Skipped:
    """A conflicting photo, named with the photos of other classes it matched (a few only)."""
    label = items[p].source.label
    partners = sorted(q for q in direct if items[q].source.label != label)
    via = ""
    if not partners:  # linked to the other class through a copy in its own class
        partners = sorted(q for q in group if items[q].source.label != label)
        via = " (through a copy in its own class)"
    names = [items[q].source.path for q in partners[:CONFLICT_PARTNERS_SHOWN]]
    more = len(partners) - len(names)
    tail = f" and {more} more (report.json label_conflicts)" if more > 0 else ""
    return Skipped(
        items[p].source.path,
        label,
        "label_conflict",
        f"same photo filed under another class{via}: {', '.join(names)}{tail}",
    )
