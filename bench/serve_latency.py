"""Serving benchmark: ONNX Runtime FP32 vs INT8 handler vs a TorchScript-with-torch handler.

    nice -n 10 .venv/bin/python bench/serve_latency.py [--run RUN_DIR] [--repeats 5] [--warm 200]
        [--accuracy-runs RUN_DIR ...]

Both handlers are the same `skyclass.serving.lambda_handler.App` (same event parsing, multipart,
preprocessing, JSON) and differ only in the model runtime:
  onnx       Classifier: onnxruntime on model.onnx (imports numpy, Pillow, onnxruntime only)
  onnx_int8  the same on model.int8.onnx (`export --quantize int8`; needs --run: the INT8
             model is only served after the accuracy gate on the run's test split)
  torch      torch.jit.load(model.pt) + torch inference, as the reference's Lambda did
Measured in one run:
  cold start  a new Python process -> handler imported -> model loaded -> first prediction
              answered (wall clock from the parent's spawn), median and each repetition
  warm        p50/p99 of handler calls with a real API Gateway v2 event carrying a multipart
              416x416 JPEG, in the process that did the cold start
  size        installed size of each runtime's dependency closure (site-packages bytes)
  model_only  FP32 vs INT8 vs FP16 (onnxruntime.transformers.float16, I/O kept FP32) session.run
              on the same preprocessed image, batch 1, one thread, the models taking turns in
              rounds inside one process: the fairest ratio on a loaded machine
  accuracy    for each --accuracy-runs RUN: `export --quantize int8` and its gate's figures
              (FP32 and INT8 test accuracy, top-1 agreement, overall and per class), file sizes
All runtimes are pinned to one intra-op thread (a 1-vCPU Lambda; fair on a shared machine).
Without --run, the model is MobileNetV2 width 1.0 with the ImageNet backbone and a fresh 4-class
head (untrained head: latency does not depend on the head's weights). Results go to
bench/results/serve_latency.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
RESULTS = ROOT / "bench" / "results" / "serve_latency.json"
CLASSES = ["Flying Birds", "Large QuadCopters", "Small QuadCopters", "Winged Drones"]


# --- child process: one cold start + warm loop ----------------------------------------------


class TorchScriptModel:
    """The reference's serving path: torch.jit.load + torch inference (same preprocessing)."""

    def __init__(self, bundle: Path) -> None:
        import torch

        from skyclass.serving.bundle import read_manifest

        torch.set_num_threads(1)
        self.torch = torch
        self.manifest = read_manifest(bundle)
        self.model = torch.jit.load(str(bundle / "model.pt"), map_location="cpu").eval()
        self.class_names = list(self.manifest["class_names"])
        from skyclass.images import PreprocessSpec

        self.spec = PreprocessSpec.from_dict(self.manifest["preprocess"])

    @property
    def model_info(self) -> dict:
        model = self.manifest["model"]
        return {
            "name": model["name"],
            "version": model["version"],
            "sha256": self.manifest["files"]["model.pt"]["sha256"],
        }

    def predict_image(
        self, data: bytes, top_k: int = 3, max_pixels: int = 0, limits: object = None
    ) -> list:
        from skyclass.images import preprocess
        from skyclass.serving.classifier import Prediction

        tensor = self.torch.from_numpy(
            preprocess(data, self.spec, max_pixels=max_pixels, limits=limits)
        )
        with self.torch.inference_mode():
            probs = self.torch.softmax(self.model(tensor[None]), dim=1)[0]
        values, indices = probs.topk(min(top_k, len(self.class_names)))
        return [
            Prediction(self.class_names[i], int(i), float(v))
            for v, i in zip(values.tolist(), indices.tolist(), strict=True)
        ]


def make_event(image: Path) -> dict:
    import base64

    import urllib3

    body, ctype = urllib3.encode_multipart_formdata(
        {"file": (image.name, image.read_bytes(), "image/jpeg")}
    )
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "top_k=3",
        "headers": {"content-type": ctype, "content-length": str(len(body))},
        "queryStringParameters": {"top_k": "3"},
        "requestContext": {
            "http": {"method": "POST", "path": "/"},
            "requestId": "bench",
            "stage": "$default",
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def child(args: argparse.Namespace) -> None:
    """Runs in a fresh interpreter; prints one JSON line of timings (seconds since spawn)."""
    spawned = args.spawned
    marks: dict[str, float] = {"interpreter": time.time() - spawned}
    if args.child in ("onnx", "onnx_int8"):
        os.environ["MODEL_URI"] = str(args.bundle)
        os.environ["SKYCLASS_THREADS"] = "1"
        from skyclass.serving import lambda_handler as lh

        app = lh.default_app()  # reads MODEL_URI and SKYCLASS_THREADS set above
    else:
        import torch  # noqa: F401 - part of this runtime's cold start

        from skyclass.serving.lambda_handler import App

        app = App(loader=lambda: TorchScriptModel(args.bundle))
    marks["imported"] = time.time() - spawned
    _ = app.model
    marks["model_loaded"] = time.time() - spawned
    event = json.loads(args.event.read_text())
    first = app(event, None)
    marks["first_prediction"] = time.time() - spawned
    assert first["statusCode"] == 200, first["body"]
    latencies = []
    for _ in range(args.warm):
        start = time.perf_counter()
        response = app(event, None)
        latencies.append((time.perf_counter() - start) * 1000.0)
        assert response["statusCode"] == 200
    out = {
        "marks": marks,
        "warm_ms": latencies,
        "prediction": json.loads(first["body"])["predictions"][0],
        "torch_loaded": "torch" in sys.modules,
        "max_rss_mb": _max_rss_mb(),
    }
    print(json.dumps(out))


def _max_rss_mb() -> float:
    """Peak RSS of this process (VmHWM: unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


# --- parent: build the bundle, spawn children, sizes -----------------------------------------


# The INT8 bundles here are exported with a gate that always passes, so that INT8 can be timed
# and scored even where the real gate keeps FP32; the verdict under the default thresholds is
# computed from the same figures (gate_verdict) and reported next to them.
TIMING_GATE = {"mode": "int8", "min_agreement": 0.0, "max_accuracy_drop": 1.0}


def gate_verdict(serving: dict) -> dict:
    """What `skyclass export` with the default thresholds decides on these gate figures."""
    from skyclass.quantize import QuantizeOptions, gate_failures

    failures = gate_failures(serving["gate"], QuantizeOptions())
    return {
        "default_thresholds_pass": not failures,
        "failures": failures,
        "served_by_default_export": "model.onnx (fp32)" if failures else "model.int8.onnx",
    }


def build_bundle(
    run: Path | None, workdir: Path, quantize: str = "none", name: str = "bundle"
) -> Path:
    from skyclass.checkpoint import save_checkpoint
    from skyclass.export import ExportConfig, export_bundle
    from skyclass.images import PreprocessSpec
    from skyclass.model import build_model

    parity = SHARED / "eva4_crops"
    if run is None:
        run = workdir / "imagenet-mnv2-4class"
        model = build_model(len(CLASSES), width_mult=1.0, pretrained=True)
        save_checkpoint(
            run / "best.pt",
            {
                "model": model.state_dict(),
                "class_names": CLASSES,
                "epoch": 0,
                "preprocess": PreprocessSpec(size=224, resize="pad").to_dict(),
                "config": {
                    "width_mult": 1.0,
                    "dropout": 0.2,
                    "recipe": "none (ImageNet backbone, untrained 4-class head: benchmark only)",
                },
                "metrics": {},
            },
        )
    from skyclass.quantize import QuantizeOptions

    out = workdir / name
    # INT8 is exported with the always-passing timing gate; other modes as asked.
    gate = TIMING_GATE if quantize == "int8" else {"mode": quantize}
    return export_bundle(
        ExportConfig(
            run=run,
            out=out,
            parity_images=parity,
            parity_count=16,
            quiet=True,
            quantize=QuantizeOptions(**gate),
        )
    )


def fp16_model(fp32: Path, out: Path) -> Path | None:
    """FP16 weights and activations (inputs/outputs stay FP32), if onnxruntime's tool loads."""
    try:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:
        return None
    onnx.save(convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True), str(out))
    return out


def model_only_latency(
    models: dict[str, Path], image: Path, spec_dict: dict, rounds: int, per_round: int
) -> dict:
    """session.run only, batch 1, one thread; the models take turns, so load hits all alike."""
    import onnxruntime as ort

    from skyclass.images import PreprocessSpec, preprocess

    batch = preprocess(image.read_bytes(), PreprocessSpec.from_dict(spec_dict))[None]
    sessions = {}
    for name, path in models.items():
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        sessions[name] = ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        for _ in range(5):
            sessions[name].run(None, {"input": batch})
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, session in sessions.items():
            for _ in range(per_round):
                start = time.perf_counter()
                session.run(None, {"input": batch})
                times[name].append((time.perf_counter() - start) * 1000.0)
    out = {}
    for name, values in times.items():
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        out[name] = {
            "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(p99, 2),
            "n": len(ordered),
            "file_mb": round(models[name].stat().st_size / 1e6, 2),
        }
    base = out["fp32"]["p50_ms"]
    for name in out:
        out[name]["speedup_vs_fp32_p50"] = round(base / out[name]["p50_ms"], 2)
    return out


def accuracy_of(run: Path, workdir: Path, bundle: Path | None = None) -> dict:
    """`export --quantize int8` of RUN (its gate scores FP32 and INT8 on the test split)."""
    from skyclass.export import ExportConfig, export_bundle
    from skyclass.quantize import QuantizeOptions

    if bundle is None:
        bundle = export_bundle(
            ExportConfig(
                run=run,
                out=workdir / f"acc-{run.parent.name}-{run.name}",
                quiet=True,
                quantize=QuantizeOptions(**TIMING_GATE),
            )
        )
    manifest = json.loads((bundle / "skyclass.json").read_text())
    serving = manifest["serving"]
    return {
        "run": str(run),
        "dataset": serving.get("gate", {}).get("dataset"),
        "verdict": gate_verdict(serving) if serving.get("gate") else serving["reason"],
        "gate": serving.get("gate"),
        "file_mb": {n: round(f["bytes"] / 1e6, 2) for n, f in manifest["files"].items()},
        "training": {
            "epochs": manifest["training"].get("epoch"),
            "recipe": manifest["training"].get("config", {}).get("recipe"),
        },
    }


def run_child(backend: str, bundle: Path, event: Path, warm: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    spawned = time.time()
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            backend,
            "--bundle",
            str(bundle),
            "--event",
            str(event),
            "--warm",
            str(warm),
            "--spawned",
            repr(spawned),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    wall = time.time() - spawned
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = wall
    return result


def _closure(roots: list[str]) -> set[str]:
    """Names of the installed distributions `roots` need (non-extra requirements, recursive)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


GPU_DISTS = ("nvidia-", "cuda-", "triton")
GPU_FILES = ("cuda", "nvshmem", "cudnn", "nccl", "cublas")


def installed_mb(roots: list[str], cpu_only: bool = False) -> dict:
    """Bytes on disk of each distribution in the closure. cpu_only drops the CUDA wheels and
    torch's own CUDA libraries: an estimate of the CPU-only torch wheel the reference used."""
    names = _closure(roots)
    if cpu_only:
        names = {n for n in names if not n.startswith(GPU_DISTS)}
    sizes = {}
    for name in sorted(names):
        dist = metadata.distribution(name)
        total = 0
        for f in dist.files or []:
            path = Path(dist.locate_file(f))
            if cpu_only and path.suffix == ".so" and any(g in path.name for g in GPU_FILES):
                continue
            if path.is_file():
                total += path.stat().st_size
        sizes[name] = round(total / 1e6, 1)
    return {"total_mb": round(sum(sizes.values()), 1), "packages_mb": sizes}


def summarize(runs: list[dict]) -> dict:
    cold = [r["marks"]["first_prediction"] for r in runs]
    warm = sorted(runs[0]["warm_ms"])

    def pct(q: float) -> float:
        return round(warm[min(len(warm) - 1, round(q * (len(warm) - 1)))], 2)

    return {
        "cold_start_s_median": round(statistics.median(cold), 3),
        "cold_start_s_each": [round(c, 3) for c in cold],
        "import_s_median": round(statistics.median(r["marks"]["imported"] for r in runs), 3),
        "model_load_s_median": round(
            statistics.median(r["marks"]["model_loaded"] - r["marks"]["imported"] for r in runs), 3
        ),
        "warm_requests": len(warm),
        "warm_p50_ms": pct(0.50),
        "warm_p99_ms": pct(0.99),
        "warm_mean_ms": round(statistics.fmean(warm), 2),
        "max_rss_mb": round(statistics.median(r["max_rss_mb"] for r in runs), 1),
        "torch_imported": runs[0]["torch_loaded"],
        "first_prediction": runs[0]["prediction"],
    }


def _cpu_model() -> str:
    """CPU model and whether it has the integer dot-product (VNNI) INT8 kernels profit from."""
    # imported here, not at the top: the timed children's start-up stays as it was
    from _common import cpu_flags, cpu_model  # bench/ is on sys.path when run as a script

    flags = cpu_flags()
    return (
        f"{cpu_model()}; avx2={'avx2' in flags}, avx512_vnni={'avx512_vnni' in flags}, "
        f"avx_vnni={'avx_vnni' in flags}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--run",
        type=Path,
        default=None,
        help="a trained run dir to export (default: ImageNet backbone, 4-class)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="cold starts per runtime")
    parser.add_argument("--warm", type=int, default=200, help="warm requests per runtime")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON")
    parser.add_argument(
        "--accuracy-runs",
        type=Path,
        nargs="*",
        default=[],
        help="trained runs whose FP32 vs INT8 test accuracy to report",
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["onnx", "onnx_int8", "torch"],
        choices=("onnx", "onnx_int8", "torch"),
        help="handler runtimes to time in child processes",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the exported bundles here (bundle/ = FP32, int8/) for "
        "bench/deploy_offline.py (default: a temporary folder)",
    )
    parser.add_argument(
        "--model-rounds",
        type=int,
        default=20,
        help="rounds of the in-process model-only comparison",
    )
    parser.add_argument("--child", choices=("onnx", "onnx_int8", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--bundle", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--event", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    image = sorted((SHARED / "bird_drone" / "drone").glob("*.jpg"))[0]
    with contextlib.ExitStack() as stack:
        tmp = (
            str(args.workdir)
            if args.workdir
            else stack.enter_context(tempfile.TemporaryDirectory(prefix="skyclass-bench-"))
        )
        bundle = build_bundle(args.run, Path(tmp))
        bundles = {"onnx": bundle, "torch": bundle}
        int8 = build_bundle(args.run, Path(tmp), quantize="int8", name="int8") if args.run else None
        if int8 is not None and (int8 / "model.int8.onnx").is_file():
            bundles["onnx_int8"] = int8
        manifest = json.loads((bundle / "skyclass.json").read_text())
        event = Path(tmp) / "event.json"  # built here: the children only json-load it
        event.write_text(json.dumps(make_event(image)))
        results: dict = {"backends": {}}
        bundles = {k: v for k, v in bundles.items() if k in args.backends}
        for backend, folder in bundles.items():  # interleaved would mix caches: one block each
            runs = [
                run_child(backend, folder, event, args.warm if i == 0 else 0)
                for i in range(args.repeats)
            ]
            results["backends"][backend] = summarize(runs)
        onnx, torch_ = results["backends"]["onnx"], results["backends"].get("torch")
        speedup = (
            {}
            if torch_ is None
            else {
                "cold_start": round(torch_["cold_start_s_median"] / onnx["cold_start_s_median"], 2),
                "warm_p50": round(torch_["warm_p50_ms"] / onnx["warm_p50_ms"], 2),
                "warm_p99": round(torch_["warm_p99_ms"] / onnx["warm_p99_ms"], 2),
            }
        )
        if int8 is not None and (int8 / "model.int8.onnx").is_file():
            q = results["backends"].get("onnx_int8")
            if q is not None:
                speedup["int8_vs_fp32_handler"] = {
                    "cold_start": round(onnx["cold_start_s_median"] / q["cold_start_s_median"], 2),
                    "warm_p50": round(onnx["warm_p50_ms"] / q["warm_p50_ms"], 2),
                    "warm_p99": round(onnx["warm_p99_ms"] / q["warm_p99_ms"], 2),
                }
            models = {"fp32": bundle / "model.onnx", "int8": int8 / "model.int8.onnx"}
            fp16 = fp16_model(bundle / "model.onnx", Path(tmp) / "model.fp16.onnx")
            if fp16 is not None:
                models["fp16"] = fp16
            results["model_only"] = model_only_latency(
                models, image, manifest["preprocess"], args.model_rounds, 10
            )
            results["int8_serving"] = json.loads((int8 / "skyclass.json").read_text())["serving"]
            results["int8_serving"]["verdict"] = gate_verdict(results["int8_serving"])
        results["accuracy"] = [accuracy_of(args.run, Path(tmp), int8)] if int8 else []
        results["accuracy"] += [
            accuracy_of(run, Path(tmp)) for run in args.accuracy_runs if run != args.run
        ]
        results.update(
            {
                "speedup": speedup,
                "installed_size": {
                    "onnx": installed_mb(["onnxruntime", "numpy", "pillow"]),
                    "torch": installed_mb(["torch", "numpy", "pillow"]),
                    "torch_plus_torchvision": installed_mb(
                        ["torch", "torchvision", "numpy", "pillow"]
                    ),
                    "torch_cpu_only_estimate": installed_mb(
                        ["torch", "numpy", "pillow"], cpu_only=True
                    ),
                    "torch_build": metadata.version("torch"),
                },
                "model": {
                    "name": manifest["model"]["name"],
                    "width_mult": 1.0,
                    "input": manifest["input"]["shape"],
                    "onnx_mb": round(manifest["files"]["model.onnx"]["bytes"] / 1e6, 2),
                    "torchscript_mb": round(manifest["files"]["model.pt"]["bytes"] / 1e6, 2),
                    "parity": manifest["parity"],
                    "weights": "ImageNet MobileNetV2 backbone + untrained 4-class head"
                    if args.run is None
                    else f"trained run {args.run}",
                },
                "setup": {
                    "threads": 1,
                    "repeats": args.repeats,
                    "warm_requests": args.warm,
                    "image": image.name,
                    "event": "API Gateway v2, multipart/form-data, base64",
                    "python": platform.python_version(),
                    "cpu_count": os.cpu_count(),
                    "machine": platform.machine(),
                    "cpu": _cpu_model(),
                    "loadavg_at_end": os.getloadavg(),
                    "note": "shared 2-core machine; other "
                    "work was running, so absolute numbers are noisy, ratios less so",
                },
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(
        json.dumps(
            {k: results[k] for k in ("speedup",)}
            | {
                b: {
                    k: v
                    for k, v in results["backends"][b].items()
                    if k in ("cold_start_s_median", "warm_p50_ms", "warm_p99_ms")
                }
                for b in results["backends"]
            }
            | {
                "model_only_p50_ms": {
                    k: v["p50_ms"] for k, v in results.get("model_only", {}).items()
                },
                "accuracy": [
                    {
                        "run": a["run"],
                        "verdict": a["verdict"],
                        "overall": (a["gate"] or {}).get("overall"),
                    }
                    for a in results["accuracy"]
                ],
            }
            | {
                "installed_mb": {
                    k: v["total_mb"]
                    for k, v in results["installed_size"].items()
                    if isinstance(v, dict)
                }
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
