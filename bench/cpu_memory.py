"""Benchmark: CPU training and evaluation speed under four memory-allocation settings.

    .venv/bin/python bench/cpu_memory.py [--data /tmp/bd.zip] [--repeats 3]

PyTorch on a CPU allocates and frees tens of MB per layer and batch. With glibc's defaults every
allocation over its mmap threshold is a fresh mapping, and every page of it is faulted in
again (thousands of page faults per image, a third of the demo's CPU time in the kernel).
Settings compared, each in a fresh process, interleaved, `--repeats` times (medians reported):

  baseline    glibc and PyTorch defaults
  malloc      glibc keeps freed memory for reuse: mallopt(M_MMAP_THRESHOLD 32 MiB,
              M_TRIM_THRESHOLD 1 GiB, M_TOP_PAD 256 MiB)
  thp         PyTorch backs large tensors with transparent huge pages (THP_MEM_ALLOC_ENABLE=1:
              2 MiB pages, 512 times fewer faults; needs THP 'always' or 'madvise')
  thp+malloc  both (what `skyclass.cpu_memory.tune()` sets, unless SKYCLASS_CPU_MEMORY=off)

Workload: the real `default` recipe (`skyclass.train.loop.setup` on the prepared zip) doing
--steps training steps and --eval-batches test batches (batch 64) on decoded batches held in
memory, so only the model's work is timed. Writes bench/results/cpu_memory.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from epoch_breakdown import Preloaded  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "cpu_memory.json"
MODES = ("baseline", "malloc", "thp", "thp+malloc")
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def child(mode: str, data: Path, steps: int, eval_batches: int) -> dict:
    """Runs in a fresh process: apply `mode`, then time training steps and test batches."""
    import resource
    import tempfile

    from skyclass import cpu_memory

    os.environ[cpu_memory.ENV] = "off"  # this benchmark chooses the setting itself
    if "thp" in mode:
        os.environ[cpu_memory.THP_ENV] = "1"  # read by PyTorch at its first allocation
    if "malloc" in mode:
        cpu_memory.tune_malloc()
    import torch

    from skyclass.train import TrainConfig
    from skyclass.train.distributed import DistContext
    from skyclass.train.loop import evaluate_split, setup, train_one_epoch
    from skyclass.train.runtime import pick_device

    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(
            data=str(data), out=tmp, epochs=1, device="cpu", workers=0, quiet=True
        ).validate()
        run = setup(config, DistContext(), pick_device("cpu"))
        train_batches = list(itertools.islice(run.train_loader, steps + 1))
        test_batches = list(itertools.islice(run.test_loader, eval_batches + 1))
        run.train_loader = Preloaded(train_batches[:1])
        train_one_epoch(run, 1)  # warm-up: oneDNN primitives, first allocations
        run.train_loader = Preloaded(train_batches[1:])
        run.test_loader = test_batches[1:]
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        train_images = train_one_epoch(run, 2)["train_images"]
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        evaluate_split(run, "test")
        test_s = time.perf_counter() - start
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    test_images = sum(len(y) for _, y in test_batches[1:])
    return {
        "mode": mode,
        "train_images_per_s": train_images / train_s,
        "test_images_per_s": test_images / test_s,
        "page_faults_per_image": faults / (train_images + test_images),
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(),
    }


def median_row(rows: list[dict]) -> dict:
    keys = ("train_images_per_s", "test_images_per_s", "page_faults_per_image", "max_rss_mb")
    return {k: round(statistics.median(r[k] for r in rows), 1) for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/bd.zip"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="training steps of batch 32")
    parser.add_argument("--eval-batches", type=int, default=10, help="test batches of 64")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.data, args.steps, args.eval_batches)))
        return
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    for repeat in range(args.repeats):
        for mode in MODES:  # interleaved: a slow spell of the machine hits every mode
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    mode,
                    "--data",
                    str(args.data),
                    "--steps",
                    str(args.steps),
                    "--eval-batches",
                    str(args.eval_batches),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[mode].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(repeat, runs[mode][-1], flush=True)
    medians = {m: median_row(rows) for m, rows in runs.items()}
    base = medians["baseline"]
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "thp": THP.read_text().strip() if THP.exists() else "n/a",
        },
        "workload": f"default recipe, {args.steps} training steps of 32 and "
        f"{args.eval_batches} test batches of 64, decoded batches in memory",
        "repeats": args.repeats,
        "medians": medians,
        "speedup_vs_baseline": {
            m: {
                "train": round(r["train_images_per_s"] / base["train_images_per_s"], 2),
                "test": round(r["test_images_per_s"] / base["test_images_per_s"], 2),
            }
            for m, r in medians.items()
        },
        "runs": runs,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| setting | train img/s | test img/s | page faults/img | max RSS MB |")
    print("|---|---|---|---|---|")
    for m, r in medians.items():
        print(
            f"| {m} | {r['train_images_per_s']} | {r['test_images_per_s']} | "
            f"{r['page_faults_per_image']} | {r['max_rss_mb']} |"
        )


if __name__ == "__main__":
    main()
