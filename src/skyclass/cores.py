"""How many CPU cores this process may use: one answer for every stage.

A container or `taskset` limits a process to a CPU set; `os.cpu_count()` still reports the
host's cores, and sizing worker pools or torch threads from it oversubscribes the set.
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores of this process's CPU set (the host's count where the OS cannot tell)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1
