"""Benchmark: `skyclass evaluate` of the train benchmark's bird_drone runs.

    nice -n 10 .venv/bin/python bench/evaluate_bird_drone.py \
        --run reference=/tmp/skyclass-bench/train_accuracy-reference \
        --run default=/tmp/skyclass-bench/train_accuracy-default

For each run (written by bench/train_accuracy.py), the best checkpoint is evaluated twice:
1. on the test split of its own prepared zip (eval transform), the report written to
   RUN_DIR/report/; its accuracy must equal the test accuracy the training loop recorded for
   that checkpoint;
2. on the same test images as RAW 416-px originals (a temporary folder of links to the
   files named in the zip's manifest), through the serving preprocessing: what the deployed
   API would score on them.

Writes bench/results/evaluate_bird_drone.json (accuracy, per-class scores, confusion matrix).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from skyclass.checkpoint import load_checkpoint, resolve_checkpoint
from skyclass.dataset_zip import PreparedDataset
from skyclass.evaluate import EvaluateConfig, evaluate, summary_table

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT.parent / "shared" / "datasets" / "bird_drone"
RESULTS = ROOT / "bench" / "results"
DEFAULT_RUNS = [f"{r}=/tmp/skyclass-bench/train_accuracy-{r}" for r in ("reference", "default")]


def raw_test_folder(dataset: Path, raw: Path, into: Path) -> Path:
    """class/<file> links to the raw originals of the zip's test split."""
    for entry in PreparedDataset(dataset).split("test"):
        link = into / entry.source
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(raw / entry.source)
    return into


def _essentials(metrics: dict, seconds: float) -> dict:
    keep = (
        "num_images",
        "accuracy",
        "top2_accuracy",
        "class_names",
        "confusion_matrix",
        "per_class",
        "macro_avg",
        "weighted_avg",
    )
    return {
        **{k: metrics[k] for k in keep},
        "misclassified": len(metrics["misclassified"]),
        "skipped": len(metrics["skipped"]),
        "seconds": round(seconds, 1),
        "most_confident_mistakes": metrics["misclassified"][:5],
    }


def evaluate_run(name: str, run: Path, raw: Path, checkpoint: str) -> dict:
    state = load_checkpoint(resolve_checkpoint(run, checkpoint))
    start = time.perf_counter()
    own = evaluate(EvaluateConfig(target=str(run), checkpoint=checkpoint, quiet=True))
    own_seconds = time.perf_counter() - start
    print(f"== {name}: {run} ({checkpoint}.pt, epoch {state.get('epoch')})")
    print(summary_table(own))
    result = {
        "recipe": name,
        "run": str(run),
        "checkpoint": checkpoint,
        "epoch": state.get("epoch"),
        "epochs": (state.get("config") or {}).get("epochs"),
        "training_recorded_test_acc": (state.get("metrics") or {}).get("test_acc"),
        "report": own["report_dir"],
        "test_split": _essentials(own, own_seconds),
    }
    dataset = Path(own["source"]["data"])
    if raw.is_dir():
        with tempfile.TemporaryDirectory(prefix="bd-raw-test-") as tmp:
            folder = raw_test_folder(dataset, raw, Path(tmp))
            start = time.perf_counter()
            served = evaluate(
                EvaluateConfig(
                    target=str(run),
                    checkpoint=checkpoint,
                    data=str(folder),
                    out=str(Path(tmp) / "report"),
                    quiet=True,
                )
            )
            result["raw_originals_serving_path"] = _essentials(served, time.perf_counter() - start)
        print(
            f"   raw originals through the serving preprocessing: "
            f"{served['accuracy']:.2%} of {served['num_images']}"
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run",
        action="append",
        metavar="NAME=RUN_DIR",
        help="a run to evaluate (repeatable; default: the train benchmark's "
        "reference and default runs under /tmp/skyclass-bench)",
    )
    parser.add_argument("--raw", type=Path, default=RAW, help="raw bird_drone folder")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")
    parser.add_argument("--out", type=Path, default=RESULTS / "evaluate_bird_drone.json")
    args = parser.parse_args()
    runs = [item.split("=", 1) for item in (args.run or DEFAULT_RUNS)]
    results = [evaluate_run(name, Path(path), args.raw, args.checkpoint) for name, path in runs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "evaluate_bird_drone",
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                "runs": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
