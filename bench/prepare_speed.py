"""Benchmark `skyclass prepare` on bird_drone: wall time with 1 vs 2 workers, and dedupe quality.

Run by hand (about 2 minutes on 2 cores):
    nice -n 10 .venv/bin/python bench/prepare_speed.py [--raw ../shared/datasets/bird_drone]

Writes bench/results/prepare.json with
- the wall time of the real CLI (`skyclass prepare RAW --out X.zip --workers N --quiet`, a
  fresh process each time) for each worker count, alternated and repeated, because the
  machine is shared;
- per-class counts and near-duplicate figures from the report of the last run;
- a check against bird_drone's own ground truth: files sharing the name prefix before
  `_jpg.rf.` are augmented copies of one photo; each such set must be one group and on one
  side of the split. Groups beyond those sets (other photos grouped together) are counted;
- a sweep of --near-threshold over the same decoded images (dedupe only, reusing prepare's
  own scan/process/dedupe functions).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from skyclass.dataset_zip import MANIFEST_NAME, REPORT_NAME
from skyclass.prepare import PrepareConfig
from skyclass.prepare.dedupe import dedupe
from skyclass.prepare.process import Processed, process_source
from skyclass.prepare.scan import scan

ROOT = Path(__file__).resolve().parents[1]
AUGMENTED = re.compile(r"_[A-Za-z]+\.rf\.")


def original_of(source: str) -> str:
    """'bird/abc_jpg.rf.123.jpg' -> 'bird/abc': the photo an augmented copy was made from."""
    return AUGMENTED.split(source)[0]


def time_cli(raw: Path, out: Path, workers: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the installed `skyclass` command, a fresh process like a user's.

    CPU time (user + system of the command and its workers) does not depend on how busy the
    shared machine is; wall time does.
    """
    command = [
        str(Path(sys.executable).parent / "skyclass"),
        "prepare",
        str(raw),
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--quiet",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return round(wall, 2), round(cpu, 2)


def prefix_check(rows: list[dict]) -> dict:
    """How well groups match the name-prefix ground truth (rows: source, group, split)."""
    by_original: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_original[original_of(r["source"])].append(r)
    sets = [rs for rs in by_original.values() if len(rs) > 1]
    originals_per_group: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        originals_per_group[r["group"]].add(original_of(r["source"]))
    merged = {g for g, o in originals_per_group.items() if len(o) > 1}
    return {
        "augmented_sets": len(sets),
        "augmented_images": sum(len(rs) for rs in sets),
        "sets_not_in_one_group": sum(1 for rs in sets if len({r["group"] for r in rs}) > 1),
        "sets_straddling_split": sum(1 for rs in sets if len({r["split"] for r in rs}) > 1),
        "groups_joining_different_originals": len(merged),
        "images_in_those_groups": sum(1 for r in rows if r["group"] in merged),
    }


def read_zip(path: Path) -> tuple[dict, list[dict]]:
    with zipfile.ZipFile(path) as zf:
        report = json.loads(zf.read(REPORT_NAME))
        rows = list(csv.DictReader(io.StringIO(zf.read(MANIFEST_NAME).decode("utf-8"))))
    return report, rows


def sweep(raw: Path, thresholds: list[int]) -> list[dict]:
    """Decode once with prepare's own functions, then dedupe at each threshold."""
    scanned = scan(raw)
    with tempfile.TemporaryDirectory() as spool:
        config = PrepareConfig(raw=raw, out=Path(spool) / "unused.zip", quiet=True)
        work = partial(process_source, config=config, spool=spool)
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            results = list(pool.map(work, enumerate(scanned.sources), chunksize=16))
    items = [r for r in results if isinstance(r, Processed)]
    table = []
    for t in thresholds:
        result = dedupe(items, "near", t)
        rows = [
            {"source": it.source.path, "group": str(result.group_of[it.index]), "split": ""}
            for it in result.kept
        ]
        check = prefix_check(rows)
        del check["sets_straddling_split"]  # no split here
        table.append(
            {
                "near_threshold": t,
                "near_groups": len(result.near_groups),
                "images_in_near_groups": sum(len(g) for g in result.near_groups),
                "largest_group": max((len(g) for g in result.near_groups), default=1),
                "label_conflict_sets": len(result.conflicts),
                "label_conflict_images": sum(len(c) for c in result.conflicts),
                "hash_matches_not_confirmed": result.unconfirmed_matches,
                **check,
            }
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=ROOT.parent / "shared/datasets/bird_drone")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/prepare.json")
    args = parser.parse_args()
    timings: dict[str, list[float]] = {"1": [], "2": []}
    cpu: dict[str, list[float]] = {"1": [], "2": []}
    load_before = [round(v, 2) for v in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bd.zip"
        for _ in range(args.repeats):
            for workers in (1, 2):  # alternated: load from other users hits both alike
                wall, cpu_s = time_cli(args.raw, out, workers)
                timings[str(workers)].append(wall)
                cpu[str(workers)].append(cpu_s)
                print(f"workers={workers}: {wall} s wall, {cpu_s} s CPU", flush=True)
        report, rows = read_zip(out)
    result = {
        "command": "skyclass prepare ../shared/datasets/bird_drone --out X.zip --workers N "
        "--quiet (fresh process, defaults: --size 224 --resize pad --dedupe near "
        f"--near-threshold {report['config']['near_threshold']})",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
            "note": "runs alternated 1,2,1,2; the load averages say how busy the machine was",
        },
        "wall_seconds": {f"workers_{k}": v for k, v in timings.items()},
        "wall_seconds_best": {f"workers_{k}": min(v) for k, v in timings.items()},
        "speedup_best_2_vs_1": round(min(timings["1"]) / min(timings["2"]), 2),
        "cpu_seconds": {f"workers_{k}": v for k, v in cpu.items()},
        "classes": {
            name: {
                k: c[k]
                for k in (
                    "found",
                    "kept",
                    "train",
                    "test",
                    "skipped",
                    "near_duplicate_groups",
                    "near_duplicate_images",
                )
            }
            for name, c in report["classes"].items()
        },
        "totals": report["totals"],
        "near_duplicates": report["near_duplicates"],
        "label_conflicts": report["label_conflicts"],
        "name_prefix_ground_truth": prefix_check(rows),
        "near_threshold_sweep": sweep(args.raw, [2, 4, 6, 8, 10]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
