"""Benchmark: which training recipe wins on hard photos, decided on the validation split only.

    nice -n 5 .venv/bin/python bench/recipe_search.py --data ddd224.zip --epochs 15 \
        --variants default adapt train_bn ...

Every variant trains on the same prepared zip (same split, same epoch budget, same seed) and
is judged on the VALIDATION split: its best validation accuracy, the mean of its last three
epochs' (less luck than one best epoch on ~150 photos), its lowest validation loss, and the
validation accuracy of best.pt with a horizontal-flip test-time augmentation. The test split
is never read here (training still scores it once into the run's test.json; this script does
not open that file): the winner is chosen without it and `bench/train_accuracy.py` reports
its test accuracy once, side by side with the baselines.

Rows are merged into bench/results/<name>.json by variant name, so variants can run in
separate invocations (and in parallel, with --threads 1).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import sys
import time
from pathlib import Path

from _common import cpu_memory_as_the_cli

cpu_memory_as_the_cli()  # before torch loads

import torch  # noqa: E402

from skyclass.checkpoint import load_checkpoint, read_history  # noqa: E402
from skyclass.dataset_zip import PreparedDataset  # noqa: E402
from skyclass.model import build_model  # noqa: E402
from skyclass.torch_data import EvalTransform, ZipImageDataset  # noqa: E402
from skyclass.train import TrainConfig, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# name -> (recipe, overrides, data key). Data key "224"/"320" picks --data / --data-320.
VARIANTS: dict[str, tuple[str, dict, str]] = {
    "default": ("default", {}, "224"),
    "adapt": ("default", {"frozen_bn": "adapt"}, "224"),
    "train_bn": ("default", {"frozen_bn": "train"}, "224"),
    "adapt_ema": ("default", {"frozen_bn": "adapt", "ema": 1.0}, "224"),
    "adapt_unfreeze10": ("default", {"frozen_bn": "adapt", "unfreeze_from": 10}, "224"),
    "adapt_unfreeze7": ("default", {"frozen_bn": "adapt", "unfreeze_from": 7}, "224"),
    "adapt_nocutout": ("default", {"frozen_bn": "adapt", "augment": {"cutout_p": 0.0}}, "224"),
    "adapt_320": ("default", {"frozen_bn": "adapt"}, "320"),
    "adapt_sampler": ("default", {"frozen_bn": "adapt", "balance": "sampler"}, "224"),
    "adapt_lr003": ("default", {"frozen_bn": "adapt", "lr": 0.003}, "224"),
    "adapt_lr003_unfreeze10": (
        "default",
        {"frozen_bn": "adapt", "lr": 0.003, "unfreeze_from": 10},
        "224",
    ),
    "default_seed1": ("default", {"seed": 1}, "224"),
    "adapt_seed1": ("default", {"frozen_bn": "adapt", "seed": 1}, "224"),
    "reference": ("reference", {}, "224"),
    "reference_frozen_bn": ("reference", {"frozen_bn": "frozen"}, "224"),
}


def val_accuracy_with_flip(run_dir: Path, data: Path) -> dict:
    """best.pt on the validation split: plain and averaged with its mirror image."""
    state = load_checkpoint(run_dir / "best.pt")
    config = TrainConfig.from_dict(state["config"])
    dataset = PreparedDataset(data)
    model = build_model(
        len(dataset.classes), width_mult=config.width_mult, pretrained=False, dropout=config.dropout
    )
    model.load_state_dict(state["model"])
    model.eval()
    split = ZipImageDataset(dataset, "val", EvalTransform(dataset.spec))
    loader = torch.utils.data.DataLoader(split, batch_size=64)
    plain = flipped = seen = 0
    with torch.inference_mode():
        for x, y in loader:
            logits = model(x)
            both = logits.softmax(1) + model(torch.flip(x, dims=[3])).softmax(1)
            plain += (logits.argmax(1) == y).sum().item()
            flipped += (both.argmax(1) == y).sum().item()
            seen += len(y)
    return {
        "val_acc_best_pt": plain / seen,
        "val_acc_best_pt_flip_tta": flipped / seen,
        "val_images": seen,
    }


def run_variant(name: str, data: Path, work: Path, epochs: int, threads: int) -> dict:
    recipe, overrides, _ = VARIANTS[name]
    overrides = dict(overrides)
    augment = overrides.pop("augment", None)
    out = work / name
    config = TrainConfig.from_recipe(
        recipe,
        data=str(data),
        out=str(out),
        epochs=epochs,
        threads=threads,
        quiet=True,
        augment=augment,
        resume=(out / "last.pt").is_file(),
        **overrides,
    )
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    summary = train(config)
    wall = time.perf_counter() - start
    history = read_history(out)
    accs = [row["val_acc"] for row in history]
    row = {
        "variant": name,
        "recipe": recipe,
        "overrides": VARIANTS[name][1],
        "data": str(data),
        "epochs": epochs,
        "best_val_acc": summary["best_val_acc"],
        "best_epoch": summary["best_epoch"],
        "mean_val_acc_last3": sum(accs[-3:]) / len(accs[-3:]),
        "min_val_loss": min(r["val_loss"] for r in history),
        "val_acc_per_epoch": [round(a, 4) for a in accs],
        "val_loss_per_epoch": [round(r["val_loss"], 4) for r in history],
        "train_acc_last": history[-1]["train_acc"],
        "train_images_per_s": sum(r["train_images"] for r in history)
        / sum(r["train_seconds"] for r in history),
        "wall_seconds": wall,
        "threads": threads,
        "loadavg_1min": [load_before, os.getloadavg()[0]],
    }
    row.update(val_accuracy_with_flip(out, data))
    return row


def merge_row(path: Path, row: dict, meta: dict) -> None:
    """Add or replace one variant's row; a lock lets parallel invocations share the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = json.loads(path.read_text()) if path.is_file() else {"variants": {}}
        result.update(meta)
        result["variants"][row["variant"]] = row
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="prepared zip (224 px)")
    parser.add_argument("--data-320", type=Path, help="the same photos prepared at 320 px")
    parser.add_argument("--work", type=Path, default=Path("/tmp/skyclass-recipe-search"))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--name", default="recipe_search_ddd")
    args = parser.parse_args()
    path = RESULTS / f"{args.name}.json"
    meta = {
        "script": "bench/recipe_search.py",
        "selection": "validation split only",
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "note": "several variants may have run at once (see threads and loadavg_1min): "
        "wall_seconds and images/s are comparable only between rows run alike",
    }
    for name in args.variants:
        data = args.data if VARIANTS[name][2] == "224" else args.data_320
        if data is None:
            sys.exit(f"variant {name} needs --data-320")
        print(f"== {name}", file=sys.stderr, flush=True)
        row = run_variant(name, data, args.work, args.epochs, args.threads)
        merge_row(path, row, meta)
        print(
            json.dumps(
                {
                    k: row[k]
                    for k in (
                        "variant",
                        "best_val_acc",
                        "mean_val_acc_last3",
                        "min_val_loss",
                        "val_acc_best_pt_flip_tta",
                    )
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
