"""Faster PyTorch on a CPU: reuse freed memory instead of faulting fresh pages in every batch.

PyTorch on a CPU allocates and frees tens of MB per layer and batch. With glibc's defaults an
allocation over the (dynamic) mmap threshold is a new mapping and a freed heap top is given
back to the kernel, so the next batch faults every page in again: thousands of page faults
per image, about a third of `make demo`'s CPU time spent in the kernel. Two standard switches
remove most of it (measured in bench/cpu_memory.py, results in bench/results/cpu_memory.json):

- glibc keeps freed memory for reuse (`mallopt`: mmap threshold 32 MiB, glibc's maximum; trim
  threshold 1 GiB; top pad 256 MiB). The price: the process keeps its peak heap.
- PyTorch backs tensors of 2 MiB and more with transparent huge pages
  (`THP_MEM_ALLOC_ENABLE=1`, 512 times fewer faults). PyTorch reads it at its first
  allocation, so it only takes effect when `tune()` runs before `import torch` (the CLI does).

`SKYCLASS_CPU_MEMORY=off` leaves both alone. No torch import here; stdlib only.
"""

from __future__ import annotations

import ctypes
import os
import sys

ENV = "SKYCLASS_CPU_MEMORY"
THP_ENV = "THP_MEM_ALLOC_ENABLE"  # PyTorch's huge-page switch
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h
MALLOC_SETTINGS = (
    (M_MMAP_THRESHOLD, 32 << 20),
    (M_TRIM_THRESHOLD, 1 << 30),
    (M_TOP_PAD, 256 << 20),
)


def enabled() -> bool:
    return os.environ.get(ENV, "on").strip().lower() not in ("off", "0", "false", "no")


def tune_malloc() -> bool:
    """glibc's mallopt as above; False where there is no glibc (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in MALLOC_SETTINGS)


def tune() -> dict[str, bool]:
    """Apply both switches (unless SKYCLASS_CPU_MEMORY=off); says which took effect."""
    if not enabled():
        return {"malloc": False, "thp": False}
    thp = "torch" not in sys.modules
    if thp:
        os.environ.setdefault(THP_ENV, "1")
    return {"malloc": tune_malloc(), "thp": thp and os.environ[THP_ENV] == "1"}
