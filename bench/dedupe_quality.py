"""Near-duplicate detection and group-aware splitting against ground truth, new vs old.

Run by hand (a few minutes on 2 shared cores):
    nice -n 10 .venv/bin/python bench/dedupe_quality.py

Ground truth:
- bird_drone: files of one class folder sharing the name prefix before `_<ext>.rf.`
  (`_jpg.rf.`, `_png.rf.`, `_JPG.rf.`: Roboflow's export names) are augmented copies of one
  photo (1,132 pairs);
- ddd_visible: the video id `V_<CLASS>_<NNN>` (6 frames a video).

For both, every image goes through prepare's own process step (`process_source`) once; then
- `new`: today's `skyclass.prepare.dedupe.dedupe` (every hash match confirmed by thumbnail +
  detail correlation; low-detail images never matched);
- `old`: the rule of git main at 9d33b75, frozen below (`legacy_dedupe`): every hash match
  inside a class grouped, a cross-class one confirmed by a 16x16 thumbnail correlation >= 0.9.
Measured: wrong merges (image pairs put in one group / conflict set / exact-copy pair that
belong to different ground-truth groups), copies caught (ground-truth pairs put together),
images kept and label-conflict images. Then the real `prepare` on ddd_visible, with and
without `--group-by '^(V_[A-Z]+_\\d+)_'`, 70:15:15: videos whose frames straddle splits.

Writes bench/results/dedupe_quality.json.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import os
import platform
import re
import tempfile
import time
import zipfile
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from _common import DDD_VIDEO_GROUP_BY
from skyclass.dataset_zip import MANIFEST_NAME, REPORT_NAME
from skyclass.images import decode_image, resize_image
from skyclass.prepare import PrepareConfig, prepare
from skyclass.prepare.dedupe import dedupe, near_pairs
from skyclass.prepare.process import Processed, process_source
from skyclass.prepare.scan import scan

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
RESULTS = ROOT / "bench" / "results" / "dedupe_quality.json"
THRESHOLD = 6  # prepare's default --near-threshold
AUGMENTED = re.compile(r"_[A-Za-z]+\.rf\.")


def ground_truth(dataset: str, path: str) -> str:
    """The ground-truth group of a file (prepare's path: class/name)."""
    label, name = path.split("/", 1)
    if dataset == "bird_drone":
        return f"{label}/{AUGMENTED.split(name)[0]}"
    return re.match(DDD_VIDEO_GROUP_BY, name).group(1)


# --------------------------------------------------------------------------- the old rule


def legacy_thumb(data: bytes, size: int) -> bytes:
    """git main's `grey_thumb`: 16x16 box-averaged grey, zero mean, unit norm, float32."""
    grey = resize_image(decode_image(data), size, "fit").convert("L")
    arr = np.asarray(grey.resize((16, 16), Image.Resampling.BOX), dtype=np.float32)
    arr = arr - arr.mean()
    norm = float(np.linalg.norm(arr))
    return (arr / norm if norm > 0 else arr).astype(np.float32).tobytes()


def legacy_correlation(a: bytes, b: bytes) -> float:
    ta = np.frombuffer(a, dtype=np.float32).reshape(16, 16)
    tb = np.frombuffer(b, dtype=np.float32).reshape(16, 16)
    variants = [np.rot90(tb, k) for k in range(4)] + [np.rot90(tb.T, k) for k in range(4)]
    return max(float((ta * v).sum()) for v in variants)


def legacy_dedupe(items: list[Processed], legacy: dict[int, bytes]) -> list[list[str]]:
    """The sets of paths git main put together (near groups, conflict sets, exact copies)."""
    items = sorted(items, key=lambda it: (it.source.label, it.source.path))
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_by_sha: dict[str, int] = {}
    for pos, it in enumerate(items):
        if it.sha256 in first_by_sha:
            parent[find(pos)] = find(first_by_sha[it.sha256])
        else:
            first_by_sha[it.sha256] = pos
    for i, j in near_pairs(items, THRESHOLD):
        same_class = items[i].source.label == items[j].source.label
        if same_class or legacy_correlation(legacy[items[i].index], legacy[items[j].index]) >= 0.9:
            parent[find(j)] = find(i)
    members: dict[int, list[str]] = defaultdict(list)
    for pos, it in enumerate(items):
        members[find(pos)].append(it.source.path)
    return [paths for paths in members.values() if len(paths) > 1]


def legacy_counts(
    sets: list[list[str]], labels: dict[str, str], sha: dict[str, str]
) -> tuple[int, int]:
    """(images kept, label-conflict images) under the old rule: conflict sets are excluded,
    and in the other sets every exact copy after the first."""
    conflict = exact = 0
    for s in sets:
        if len({labels[p] for p in s}) > 1:
            conflict += len(s)
        else:
            exact += len(s) - len({sha[p] for p in s})
    return len(labels) - conflict - exact, conflict


# --------------------------------------------------------------------------- measuring


def _process(job, config: PrepareConfig, spool: str, size: int):
    result = process_source(job, config=config, spool=spool)
    if not isinstance(result, Processed):
        return result, b""
    data = Path(result.source.location).read_bytes()
    return result, legacy_thumb(data, size)


def process_all(raw: Path, workers: int) -> tuple[list[Processed], dict[int, bytes]]:
    scanned = scan(raw)
    with tempfile.TemporaryDirectory() as spool:
        config = PrepareConfig(raw=raw, out=Path(spool) / "unused.zip", quiet=True)
        work = partial(_process, config=config, spool=spool, size=config.size)
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(work, enumerate(scanned.sources), chunksize=16))
    items = [r for r, _ in results if isinstance(r, Processed)]
    legacy = {r.index: t for r, t in results if isinstance(r, Processed)}
    return items, legacy


def new_sets(items: list[Processed]) -> tuple[list[list[str]], int, int, dict]:
    result = dedupe(items, "near", THRESHOLD)
    path_of = {it.index: it.source.path for it in items}
    sets = [[path_of[i] for i in g] for g in result.near_groups] + result.conflicts
    for s in result.skipped:
        if s.reason == "duplicate":
            sets.append([s.path, s.detail.removeprefix("exact copy of ")])
    conflict = sum(len(c) for c in result.conflicts)
    stats = {
        "unconfirmed_hash_matches": result.unconfirmed_matches,
        "low_detail_images": result.low_detail,
    }
    return sets, len(result.kept), conflict, stats


def score(dataset: str, sets: list[list[str]], paths: list[str]) -> dict:
    """Wrong merges and caught copies of the path sets against the ground truth."""
    truth = {p: ground_truth(dataset, p) for p in paths}
    wrong = caught = 0
    spanning = 0
    for s in sets:
        pairs = list(itertools.combinations(s, 2))
        bad = sum(1 for a, b in pairs if truth[a] != truth[b])
        wrong += bad
        caught += len(pairs) - bad
        spanning += len({truth[p] for p in s}) > 1
    by_group = defaultdict(int)
    for p in paths:
        by_group[truth[p]] += 1
    true_pairs = sum(n * (n - 1) // 2 for n in by_group.values())
    return {
        "wrong_merges": wrong,
        "sets_spanning_ground_truth_groups": spanning,
        "largest_set": max((len(s) for s in sets), default=1),
        "copies_caught": caught,
        "ground_truth_pairs": true_pairs,
    }


def compare(dataset: str, workers: int) -> dict:
    raw = DATASETS / dataset
    started = time.perf_counter()
    items, legacy = process_all(raw, workers)
    labels = {it.source.path: it.source.label for it in items}
    paths = sorted(labels)
    new, kept, conflict, stats = new_sets(items)
    old = legacy_dedupe(items, legacy)
    sha = {it.source.path: it.sha256 for it in items}
    old_kept, old_conflict = legacy_counts(old, labels, sha)
    return {
        "images": len(items),
        "new": {
            **score(dataset, new, paths),
            "images_kept": kept,
            "label_conflict_images": conflict,
            **stats,
        },
        "old": {
            **score(dataset, old, paths),
            "images_kept": old_kept,
            "label_conflict_images": old_conflict,
        },
        "seconds": round(time.perf_counter() - started, 1),
    }


def straddling(out: Path, workers: int, group_by: str | None) -> dict:
    """Real `prepare` on ddd_visible: videos with frames in more than one split."""
    report = prepare(
        PrepareConfig(
            raw=DATASETS / "ddd_visible", out=out, workers=workers, quiet=True, group_by=group_by
        )
    )
    with zipfile.ZipFile(out) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read(MANIFEST_NAME).decode())))
        assert json.loads(zf.read(REPORT_NAME))["totals"] == report["totals"]
    sides = defaultdict(set)
    for r in rows:
        sides[ground_truth("ddd_visible", r["source"])].add(r["split"])
    sha_sides = defaultdict(set)
    for r in rows:
        sha_sides[r["sha256"]].add(r["split"])
    return {
        "group_by": group_by,
        "videos": len(sides),
        "videos_straddling_splits": sum(len(s) > 1 for s in sides.values()),
        "photos_on_two_sides": sum(len(s) > 1 for s in sha_sides.values()),
        "totals": report["totals"],
        "groups": {k: report["groups"].get(k) for k in ("split_units", "user_groups", "sizes")},
        "warnings": report["warnings"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results: dict = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores (shared: timings are noisy)",
        "near_threshold": THRESHOLD,
        "goals": {
            "wrong_merges": 0,
            "bird_drone_copies_caught": ">= old",
            "ddd_visible_images_kept": 1014,
            "videos_straddling_with_group_by": 0,
        },
    }
    for dataset in ("bird_drone", "ddd_visible"):
        results[dataset] = compare(dataset, args.workers)
        print(dataset, json.dumps(results[dataset]))
    with tempfile.TemporaryDirectory() as tmp:
        results["ddd_visible_split"] = [
            straddling(Path(tmp) / f"ddd{n}.zip", args.workers, group_by)
            for n, group_by in enumerate((DDD_VIDEO_GROUP_BY, None))
        ]
    for row in results["ddd_visible_split"]:
        print(json.dumps(row))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
