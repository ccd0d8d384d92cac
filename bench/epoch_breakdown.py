"""Benchmark: where one training epoch's time goes (input pipeline vs model steps vs the rest).

    .venv/bin/python bench/epoch_breakdown.py [--data /tmp/bd.zip] [--device auto] [--workers -1]

On the real `skyclass.train.loop` objects (the `default` recipe unless --recipe):
  input     one pass of the train DataLoader alone, no model (zip read, decode, augment);
  steps     `train_one_epoch` over the same number of batches already decoded and held in
            memory: the model's forward/backward/optimizer work with no input pipeline;
  epoch     `run_epoch` as `skyclass train` runs it: train pass + test pass + checkpoints;
  test      the test pass (`evaluate_split`) alone.
The slowest of `input` and `steps` bounds the train pass; `epoch` minus the train pass is the
test pass and the writing. Prints a table and, with --out, writes the figures as JSON with the
machine, the command, the UTC time, the load averages and `--note`. To compare two versions of
the code, run it once on each with the same --out and `--label before` / `--label after`: the
file then holds one section per label, each a result as a run without --label writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _common import cpu_memory_as_the_cli

cpu_memory_as_the_cli()  # before torch loads

import torch  # noqa: E402

from _common import (  # noqa: E402
    add_note_option,
    load_average,
    read_sections,
    run_record,
    write_json,
    write_section,
)
from skyclass.train import TrainConfig  # noqa: E402
from skyclass.train.distributed import DistContext  # noqa: E402
from skyclass.train.loop import evaluate_split, run_epoch, setup, train_one_epoch  # noqa: E402
from skyclass.train.runtime import opencv_threads, pick_device  # noqa: E402


class Preloaded:
    """Decoded batches standing in for the DataLoader (what `train_one_epoch` reads of it)."""

    sampler = None
    num_workers = 1  # tells reseed_epoch there is no in-process transform to reseed

    def __init__(self, batches: list) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def timed(fn) -> tuple[float, object]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/bd.zip"))
    parser.add_argument("--recipe", default="default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=-1)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--label",
        default=None,
        help="write the result as this named section of --out, keeping its other sections "
        "(e.g. 'before' and 'after' a code change, one run each)",
    )
    add_note_option(parser)
    args = parser.parse_args()
    if args.label and not args.out:
        parser.error("--label names a section of the --out file: give --out too")
    if args.label:
        read_sections(args.out)  # a file it cannot add a section to fails now, not after the run
    load_before = load_average()
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as tmp, opencv_threads(1):  # as `train` runs
        config = TrainConfig.from_recipe(
            args.recipe,
            data=str(args.data),
            out=tmp,
            epochs=3,
            device=args.device,
            workers=args.workers,
            quiet=True,
        )
        run = setup(config.validate(), DistContext(), device)
        loader = run.train_loader
        images = len(loader) * config.batch_size
        input_s, batches = timed(lambda: list(loader))
        run_epoch(run, 1)  # warm-up: cuDNN/oneDNN kernel choice, allocator, worker start
        run.train_loader = Preloaded(batches)
        steps_s, _ = timed(lambda: train_one_epoch(run, 2))
        run.train_loader = loader
        epoch_s, row = timed(lambda: run_epoch(run, 3))
        test_s, _ = timed(lambda: evaluate_split(run))
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "workers": loader.num_workers,
        "recipe": args.recipe,
        "batch_size": config.batch_size,
        "train_images": images,
        "input_images_per_s": round(images / input_s, 1),
        "steps_images_per_s": round(images / steps_s, 1),
        "epoch_s": round(epoch_s, 2),
        "train_pass_s": round(row["train_seconds"], 2),
        "test_pass_s": round(test_s, 2),
        **run_record(args.note, load_before),
    }
    print(json.dumps(result, indent=2))
    print("| input pipeline img/s | model steps img/s | train pass s | test pass s | epoch s |")
    print("|---|---|---|---|---|")
    print(
        f"| {result['input_images_per_s']} | {result['steps_images_per_s']} | "
        f"{result['train_pass_s']} | {result['test_pass_s']} | {result['epoch_s']} |"
    )
    if args.out and args.label:
        write_section(args.out, args.label, result)
    elif args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
