"""Where does `skyclass review` spend its embedding time, and which CPU runtime is fastest?

The embedding of every image by MobileNetV2's ImageNet backbone is nearly all of a fresh
review (bird_drone: 3,104 images). Side by side, in one process, on the same N images of a
prepared zip (ratios hold on a loaded machine better than absolute seconds):
- decode: zip read + JPEG decode + normalise (what every runtime pays),
- torch eager, channels_last (review's runtime before this measurement) and contiguous,
- torch.jit freeze + optimize_for_inference (conv-BN folding),
- what `skyclass review` runs: BatchNorm folded into the convolutions, channels_last
  (skyclass.review.embed.inference_module; eager PyTorch, no deprecated TorchScript),
- ONNX Runtime (the features + pooling exported once to ONNX, in memory).
CPU seconds of this process per image, threads 1 and 2, and the largest difference of the
embeddings from torch eager's.

Run: nice -n 10 .venv/bin/python bench/review_embed_speed.py DATASET.zip [--images 256]
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from skyclass.dataset_zip import PreparedDataset  # noqa: E402
from skyclass.images import decode_image, to_model_input  # noqa: E402
from skyclass.review.embed import Pooled, imagenet_backbone, inference_module  # noqa: E402

BATCH = 32


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, batches: list[np.ndarray]) -> tuple[np.ndarray, float, float]:
    fn(batches[0][:2])  # warm-up (first-call allocations, ORT/JIT graph set-up)
    c0, t0 = cpu_s(), time.perf_counter()
    out = np.concatenate([fn(b) for b in batches])
    return out, cpu_s() - c0, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "review_embed_speed.json"
    )
    args = parser.parse_args()
    ds = PreparedDataset(args.dataset)
    paths = [e.path for e in ds.entries[: args.images]]
    n = len(paths)
    c0, t0 = cpu_s(), time.perf_counter()
    arrays = [to_model_input(decode_image(ds.read(p)), ds.spec) for p in paths]
    decode = {
        "cpu_s_per_image": (cpu_s() - c0) / n,
        "wall_s_per_image": (time.perf_counter() - t0) / n,
    }
    batches = [np.stack(arrays[i : i + BATCH]) for i in range(0, n, BATCH)]
    model = Pooled(imagenet_backbone()).eval()

    def eager(channels_last: bool):
        m = copy.deepcopy(model)
        if channels_last:
            m = m.to(memory_format=torch.channels_last)

        def run(b: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                x = torch.from_numpy(b)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                return m(x).numpy()

        return run

    def frozen():
        m = Pooled(imagenet_backbone()).eval()
        with torch.inference_mode():
            traced = torch.jit.trace(m, torch.from_numpy(batches[0]))
        opt = torch.jit.optimize_for_inference(torch.jit.freeze(traced))

        def run(b: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return opt(torch.from_numpy(b)).numpy()

        return run

    def review_runtime():
        m = inference_module(imagenet_backbone())

        def run(b: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return m(torch.from_numpy(b).contiguous(memory_format=torch.channels_last)).numpy()

        return run

    def onnxruntime_session(threads: int):
        import onnxruntime as ort

        buf = io.BytesIO()
        m = Pooled(imagenet_backbone()).eval()
        torch.onnx.export(
            m,
            (torch.from_numpy(batches[0]),),
            buf,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
            opset_version=18,
            dynamo=False,
        )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
        return lambda b: sess.run(None, {"x": b})[0]

    result = {
        "dataset": str(args.dataset),
        "images": n,
        "batch": BATCH,
        "torch": torch.__version__,
        "decode_and_preprocess": decode,
        "load_average_before": os.getloadavg(),
        "runs": {},
    }
    reference = None
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, make in [
            ("torch_eager_channels_last", lambda: eager(True)),
            ("torch_eager_contiguous", lambda: eager(False)),
            ("torch_jit_optimize_for_inference", frozen),
            ("review_bn_folded_channels_last", review_runtime),
            ("onnxruntime", lambda t=threads: onnxruntime_session(t)),
        ]:
            out, cpu, wall = timed(make(), batches)
            if reference is None:
                reference = out
            result["runs"][f"{name}@{threads}"] = {
                "threads": threads,
                "cpu_s_per_image": round(cpu / n, 4),
                "wall_s_per_image": round(wall / n, 4),
                "max_abs_diff_vs_eager": float(np.abs(out - reference).max()),
                "max_abs_embedding": float(np.abs(reference).max()),
            }
            print(name, threads, result["runs"][f"{name}@{threads}"], flush=True)
    result["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
