"""Which INT8 recipe keeps a fine-tuned MobileNetV2's answers? Every variant side by side.

    nice -n 10 .venv/bin/python bench/quantize_variants.py RUN_DIR [RUN_DIR ...]
        [--variants NAME ...] [--select-images 300] [--rounds 30]

Why: with the first recipe (QDQ, UINT8 activations x INT8 per-channel weights, MinMax, stem +
classifier in FP32) the export's accuracy gate never passed on real runs (bird_drone 98.7% top-1
agreement, ddd_visible 48.9%). This CPU is an AMD EPYC with AVX2 and no VNNI; there ONNX
Runtime computes U8S8 products with VPMADDUBSW, whose int16 pair sums can saturate, and its
documentation recommends `reduce_range` (7-bit weights) or U8U8 on such CPUs.

For every run and every variant (a skyclass.quantize.QuantRecipe, plus the calibration count):
  select      top-1 agreement with FP32 on held-out *training* images (seeded, never the
              calibration images, never the test split): the figure the default is chosen by
  test        the export gate's figures on the test split (agreement, FP32/INT8 accuracy,
              per class) and the default gate's verdict; reported, never used for choosing
  fake_quant  test-split agreement of the same INT8 model run with every graph optimisation
              off: ONNX Runtime then executes DequantizeLinear -> float Conv, i.e. the
              quantization's rounding without the integer kernels. fused (real) << fake_quant
              means the integer kernels, not the quantization, lose the answers (saturation)
  latency     session.run p50/p99, batch 1, one thread, the same preprocessed image, all models
              of the run taking turns in rounds inside one process (ratios are fair on a loaded
              machine; absolute times are not)
  size, quantize seconds, peak RSS of the process
FP32 bundles are exported once per run with `skyclass export RUN --quantize none` into
--workdir and reused. Results: bench/results/quantize_variants.json (rewritten after every
variant, so an interrupted run keeps what it measured).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from _common import cpu_flags, cpu_model  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "quantize_variants.json"
sys.path.insert(0, str(ROOT / "src"))

from skyclass.export_config import DEFAULT_CALIBRATION_IMAGES  # noqa: E402
from skyclass.quantize import (  # noqa: E402  (bench scripts import the checkout's sources)
    QuantizeOptions,
    QuantRecipe,
    calibration_entries,
    gate_failures,
    gate_figures,
    load_tensors,
    quantize_int8,
)

PREVIOUS = QuantRecipe(reduce_range=False, calibration="minmax")
N = DEFAULT_CALIBRATION_IMAGES
# In the order they are measured: the most telling first (a run cut short keeps those).
VARIANTS: dict[str, tuple[QuantRecipe, int]] = {
    "u8s8 minmax (previous default)": (PREVIOUS, N),
    "u8s8 percentile 99.999": (replace(PREVIOUS, calibration="percentile"), N),
    "u8s8 percentile 99.99": (replace(PREVIOUS, calibration="percentile", percentile=99.99), N),
    "u8s8 entropy": (replace(PREVIOUS, calibration="entropy"), N),
    "u8s8 minmax reduce_range": (replace(PREVIOUS, reduce_range=True), N),
    "u8u8 minmax": (replace(PREVIOUS, weights="uint8"), N),
    "u8s8 minmax, depthwise fp32": (replace(PREVIOUS, fp32_nodes="stem+head+depthwise"), N),
    "u8s8 minmax, all nodes int8": (replace(PREVIOUS, fp32_nodes="none"), N),
    "u8s8 minmax, per-tensor weights": (replace(PREVIOUS, per_channel=False), N),
    "u8s8 minmax, QOperator": (replace(PREVIOUS, quant_format="qoperator"), N),
    "s8s8 minmax": (replace(PREVIOUS, activations="int8"), N),
    "u8s8 minmax, 100 calibration images": (PREVIOUS, 100),
}


def cpu_description() -> dict:
    flags = cpu_flags()
    return {
        "model": cpu_model(),
        "cores": os.cpu_count(),
        **{flag: flag in flags for flag in ("avx2", "avx512f", "avx512_vnni", "avx_vnni")},
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def fp32_bundle(run: Path, workdir: Path) -> Path:
    """`skyclass export RUN --quantize none` once; reused while its skyclass.json exists."""
    out = workdir / f"{run.name}-fp32"
    if not (out / "skyclass.json").is_file():
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "skyclass",
                "export",
                str(run),
                "--out",
                str(out),
                "--quantize",
                "none",
                "--quiet",
                "--force",
            ],
            check=True,
            env=env,
        )
    return out


def session(path: Path, threads: int | None = None, optimize: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def top1(path: Path, batch: np.ndarray, input_name: str, optimize: bool = True) -> np.ndarray:
    sess = session(path, optimize=optimize)
    out = [
        sess.run(None, {input_name: batch[i : i + 32]})[0].argmax(1)
        for i in range(0, len(batch), 32)
    ]
    return np.concatenate(out)


def latency(models: dict[str, Path], image: np.ndarray, input_name: str, rounds: int) -> dict:
    """p50/p99 of session.run, batch 1, one thread; every model once per round, in turn."""
    sessions = {name: session(path, threads=1) for name, path in models.items()}
    for sess in sessions.values():
        for _ in range(3):
            sess.run(None, {input_name: image})
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, sess in sessions.items():
            start = time.perf_counter()
            sess.run(None, {input_name: image})
            times[name].append((time.perf_counter() - start) * 1000.0)
    base = statistics.median(times["fp32"])
    out = {}
    for name, values in times.items():
        ordered = sorted(values)
        p50 = statistics.median(ordered)
        out[name] = {
            "p50_ms": round(p50, 2),
            "p99_ms": round(ordered[round(0.99 * (len(ordered) - 1))], 2),
            "speedup_vs_fp32_p50": round(base / p50, 2),
            "n": len(ordered),
        }
    return out


def select_entries(dataset, calibration: list, count: int, seed: int) -> list:
    """Training images that are not calibration images: the split the default is chosen on."""
    used = {entry.path for entry in calibration}
    rest = [entry for entry in dataset.split("train") if entry.path not in used]
    order = np.random.default_rng(seed).permutation(len(rest))[:count]
    return [rest[i] for i in sorted(order)]


def measure_run(
    run: Path, workdir: Path, variants: list[str], select_count: int, rounds: int, results: dict
) -> None:
    from skyclass.dataset_zip import PreparedDataset
    from skyclass.images import PreprocessSpec

    bundle = fp32_bundle(run, workdir)
    manifest = json.loads((bundle / "skyclass.json").read_text())
    spec = PreprocessSpec.from_dict(manifest["preprocess"])
    input_name, classes = manifest["input"]["name"], manifest["class_names"]
    dataset = PreparedDataset(Path(json.loads((run / "config.json").read_text())["dataset"]))
    test, targets = load_tensors(dataset, dataset.split("test"), spec, "test split", True)
    fp32 = bundle / "model.onnx"
    reference_test = top1(fp32, test, input_name)
    row = results["runs"][run.name] = {
        "variants": {},
        "load_average_at_start": load_average(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    row.update(
        run=str(run),
        dataset=str(dataset.path),
        epochs=manifest["training"].get("epoch"),
        test_images=len(targets),
        fp32_test_accuracy=float((reference_test == targets).mean()),
        fp32_mb=round(fp32.stat().st_size / 1e6, 2),
    )
    models = {"fp32": fp32}
    for name in variants:
        recipe, calibration_count = VARIANTS[name]
        calibration = calibration_entries(dataset, calibration_count, seed=0)
        selected = select_entries(dataset, calibration, select_count, seed=1)
        calib, _ = load_tensors(dataset, calibration, spec, "calibration", True)
        select, select_targets = load_tensors(dataset, selected, spec, "select", True)
        out = workdir / f"{run.name}-{len(models):02d}.int8.onnx"
        start = time.perf_counter()
        try:
            quantize_int8(fp32, out, calib, input_name, recipe)
        except Exception as exc:  # noqa: BLE001  (a variant ORT refuses is a result too)
            row["variants"][name] = {"recipe": asdict(recipe), "error": repr(exc)[:500]}
            write(results)
            continue
        seconds = time.perf_counter() - start
        candidate_test = top1(out, test, input_name)
        figures = gate_figures(reference_test, candidate_test, targets, classes)
        select_fp32, select_int8 = (top1(fp32, select, input_name), top1(out, select, input_name))
        fake = top1(out, test, input_name, optimize=False)
        failures = gate_failures(figures, QuantizeOptions())
        row["variants"][name] = {
            "recipe": asdict(recipe),
            "calibration_images": len(calib),
            "select": {
                "images": len(select_targets),
                "agreement": float((select_fp32 == select_int8).mean()),
            },
            "test": figures,
            "fake_quant_test_agreement": float((fake == reference_test).mean()),
            "default_gate_passes": not failures,
            "default_gate_failures": failures,
            "file_mb": round(out.stat().st_size / 1e6, 2),
            "quantize_s": round(seconds, 1),
            "load_average_after": load_average(),
        }
        models[name] = out
        print(
            f"{run.name} | {name}: select {row['variants'][name]['select']['agreement']:.2%}"
            f", test agreement {figures['overall']['agreement']:.2%}, fake-quant "
            f"{row['variants'][name]['fake_quant_test_agreement']:.2%}, accuracy "
            f"{figures['overall']['fp32_accuracy']:.2%} -> "
            f"{figures['overall']['int8_accuracy']:.2%}, gate "
            f"{'passes' if not failures else 'fails'}",
            flush=True,
        )
        write(results)
    row["latency"] = latency(models, test[:1], input_name, rounds)
    row["latency_load_average_after"] = load_average()


def write(results: dict) -> None:
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out = Path(results["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of `skyclass train`")
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--select-images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=30, help="latency rounds (one run each)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/skyclass-quantize-variants"))
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results file ({RESULTS.name})")
    args = parser.parse_args()
    import onnxruntime

    args.workdir.mkdir(parents=True, exist_ok=True)
    # Runs measured by an earlier invocation are kept (each run's row carries its own time and
    # load); the runs given now are measured afresh.
    earlier = json.loads(args.out.read_text()).get("runs", {}) if args.out.is_file() else {}
    results = {
        "script": "bench/quantize_variants.py",
        "argv": sys.argv[1:],
        "out": str(args.out),
        "cpu": cpu_description(),
        "onnxruntime": onnxruntime.__version__,
        "runs": {
            name: row
            for name, row in earlier.items()
            if name not in {run.name for run in args.runs}
        },
    }
    for run in args.runs:
        measure_run(run, args.workdir, args.variants, args.select_images, args.rounds, results)
        results["runs"][run.name]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write(results)


if __name__ == "__main__":
    main()
