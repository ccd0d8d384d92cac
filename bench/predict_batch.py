"""`skyclass predict` over a folder: batched ONNX inference vs one image at a time.

    nice -n 10 .venv/bin/python bench/predict_batch.py --bundle BUNDLE_DIR [--images 200]

Both paths use the bundle's Classifier (the same preprocessing and ONNX session):
  one-by-one  Classifier.predict_image per photo (what `skyclass predict` did before it took
              folders)
  batched     skyclass.predict.predict: photos decoded on a thread pool, batches of 32
The two alternate, `--repeats` times each, in one process, so machine load hits both alike;
the answers must agree (same top-1, probabilities within 1e-4). Writes
bench/results/predict_batch.json with each repetition's wall time and the 1-minute load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "bird_drone"
RESULTS = ROOT / "bench" / "results" / "predict_batch.json"


def one_by_one(classifier, paths: list[Path]) -> dict[str, list[float]]:
    return {str(p): classifier.predict_proba(classifier.preprocess(p))[0].tolist() for p in paths}


def batched(bundle: Path, paths: list[Path], batch_size: int) -> dict[str, list[float]]:
    from skyclass.predict import PredictConfig, predict

    results = predict(
        PredictConfig(target=str(bundle), images=paths, batch_size=batch_size, quiet=True)
    )
    return {r["image"]: list(r["probabilities"].values()) for r in results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data", type=Path, default=DATA, help="folder of .jpg photos")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from skyclass.serving.classifier import Classifier

    found = sorted(p for p in args.data.rglob("*.jpg"))
    paths = found[:: max(1, len(found) // args.images)][: args.images]
    classifier = Classifier.from_bundle(args.bundle)
    one_by_one(classifier, paths[:8])  # warm both paths up
    batched(args.bundle, paths[:8], args.batch_size)
    times: dict[str, list[float]] = {"one_by_one": [], "batched": []}
    loads = []
    for _ in range(args.repeats):
        for name in times:
            loads.append(os.getloadavg()[0])
            start = time.perf_counter()
            answer = (
                one_by_one(classifier, paths)
                if name == "one_by_one"
                else batched(args.bundle, paths, args.batch_size)
            )
            times[name].append(time.perf_counter() - start)
            if name == "one_by_one":
                reference = answer
            else:
                diff = max(
                    abs(a - b)
                    for k in reference
                    for a, b in zip(reference[k], answer[k], strict=True)
                )
                assert diff < 1e-4, f"batched answers differ by {diff}"
    medians = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "bundle": str(args.bundle),
        "images": len(paths),
        "batch_size": args.batch_size,
        "data": str(args.data),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "seconds": times,
        "median_seconds": medians,
        "images_per_s": {k: len(paths) / v for k, v in medians.items()},
        "speedup": medians["one_by_one"] / medians["batched"],
        "max_abs_prob_diff": diff,
        "loadavg_1min": loads,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("images", "images_per_s", "speedup")}, indent=2))


if __name__ == "__main__":
    main()
