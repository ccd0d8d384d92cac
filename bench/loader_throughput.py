"""Benchmark: images/s of the training input pipeline alone (zip read, decode, augment).

    .venv/bin/python bench/loader_throughput.py [--data /tmp/bd.zip] [--workers 0 1 2]

One pass over the train split through `skyclass.train.loop.make_loaders`' DataLoader, no model,
for each worker count, once with OpenCV's default thread pool inside the workers and once with
it limited to one thread (`--cv2-threads`; `skyclass train` sets 1 since this benchmark).
albumentations runs on OpenCV, whose pool starts as many threads as there are cores in every
worker process: with many workers they fight each other for the cores. Tells whether the
input pipeline or the model bounds an epoch (see also bench/epoch_breakdown.py).
Prints a table; with --out, writes the rows as JSON with the machine, the command, the UTC
time, the load averages and `--note`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

import torch

from _common import add_note_option, load_average, run_record, write_json
from skyclass.dataset_zip import PreparedDataset
from skyclass.train import TrainConfig
from skyclass.train.distributed import DistContext
from skyclass.train.loaders import make_loaders
from skyclass.train.runtime import opencv_threads


def one_pass(data: Path, workers: int, cv2_threads: int | None) -> dict:
    """Images/s of one epoch of the train loader (worker start-up included)."""
    config = TrainConfig(data=str(data), out="-", workers=workers)
    loader, _ = make_loaders(config, PreparedDataset(data), DistContext(), torch.Generator())
    limit = opencv_threads(cv2_threads) if cv2_threads else contextlib.nullcontext()
    with limit:  # as `train` does it: set in this process, inherited by the forked workers
        start, seen = time.perf_counter(), 0
        for x, _ in loader:
            seen += x.shape[0]
        seconds = time.perf_counter() - start
    return {
        "workers": workers,
        "cv2_threads": cv2_threads,
        "images": seen,
        "seconds": round(seconds, 3),
        "images_per_s": round(seen / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/bd.zip"))
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--cv2-threads",
        type=int,
        nargs="+",
        default=[-1, 1],
        help="-1: OpenCV's default pool (one thread per core)",
    )
    parser.add_argument("--out", type=Path, default=None)
    add_note_option(parser)
    args = parser.parse_args()
    load_before = load_average()
    rows = []
    for workers in args.workers:
        for threads in args.cv2_threads:
            rows.append(one_pass(args.data, workers, None if threads < 0 else threads))
            print(rows[-1], flush=True)
    print(f"\n{os.cpu_count()} cores; torch threads {torch.get_num_threads()}")
    print("| workers | cv2 threads in workers | images/s |\n|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['cv2_threads'] or 'default'} | {r['images_per_s']} |")
    if args.out:
        result = {"cores": os.cpu_count(), "rows": rows, **run_record(args.note, load_before)}
        write_json(args.out, result)


if __name__ == "__main__":
    main()
