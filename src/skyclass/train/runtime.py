"""Where a run executes: device, mixed precision, OpenCV threads. How, never what, it learns
(these settings may change on --resume: `loop.RUNTIME_FIELDS`)."""

from __future__ import annotations

import contextlib

import torch

from skyclass.errors import SkyclassError
from skyclass.train.config import TrainConfig

CPU = torch.device("cpu")


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise SkyclassError("--device cuda: no CUDA GPU is available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise SkyclassError("--device mps: Apple MPS is not available")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """AMX / AVX512-BF16 CPUs run bf16 convolutions about twice as fast as fp32."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    try:
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
    except Exception:  # noqa: BLE001 - a private torch probe: no answer means no
        return False


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """auto: bf16 (fp16 where bf16 is missing) on CUDA; bf16 on CPUs with native bf16."""
    if config.amp == "off":
        return None
    if config.amp == "auto" and device.type == "cpu" and not cpu_has_native_bf16():
        return None
    if config.amp == "auto" and device.type not in ("cuda", "cpu"):
        return None
    if config.amp == "fp16":
        return torch.float16
    if config.amp == "bf16" or device.type != "cuda" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


@contextlib.contextmanager
def opencv_threads(threads: int):
    """OpenCV (under albumentations) with `threads` threads while training, then as before.

    Its pool would start a thread per core in every DataLoader worker; the workers are the
    parallelism (12 workers on 16 cores: 1,088 -> 1,669 images/s, bench/loader_throughput.py).
    Set here, in the parent, and inherited by the forked workers: calling setNumThreads in a
    worker hangs it when the parent had already used the pool.
    """
    try:
        import cv2
    except ImportError:  # albumentations brings it; without it there is nothing to limit
        yield
        return
    before = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        yield
    finally:
        cv2.setNumThreads(before)
