"""What every results file in bench/results/ says about the run that wrote it.

A results file is written by its script only, never edited by hand, so whatever a reader needs
to judge the figures (which machine, which command, when, under what load, and any remark
given with `--note`) the script records itself. Imported by the bench scripts (bench/ is on
sys.path when one runs as `python bench/NAME.py`); not a script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
# ddd_visible's files are V_<CLASS>_<NNN>_f<frame>.jpg: `prepare --group-by` keeps a video's
# frames on one side of every split (../shared/README.md).
DDD_VIDEO_GROUP_BY = r"^(V_[A-Z]+_\d+)_"


def cpu_memory_as_the_cli() -> dict[str, bool]:
    """`skyclass.cpu_memory.tune()`, which the `skyclass` CLI runs before torch loads: a script
    that times training calls this before its own `import torch` (PyTorch reads the huge-page
    switch at its first allocation), or it times a slower skyclass than users run. Returns
    what took effect."""
    from skyclass import cpu_memory

    return cpu_memory.tune()


def _cpuinfo_field(name: str) -> str | None:
    """The first `name : value` of /proc/cpuinfo (Linux), or None elsewhere."""
    text = CPUINFO.read_text() if CPUINFO.is_file() else ""
    return next(
        (
            line.split(":", 1)[1].strip()
            for line in text.splitlines()
            if line.split(":", 1)[0].strip() == name
        ),
        None,
    )


def cpu_model() -> str:
    """The CPU's marketing name ("model name" in /proc/cpuinfo; platform's guess elsewhere)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags (avx2, avx512_vnni...): which kernels a library can use."""
    return set((_cpuinfo_field("flags") or "").split())


def usable_cpus() -> int:
    """CPUs this process may run on (a container's or taskset's CPU set), not the host's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def load_average() -> list[float]:
    """1/5/15-minute load averages: timings taken on a busy shared machine are noisy."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    """CPU, GPU and library versions of this machine. Imports torch: only for torch scripts."""
    import torch

    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def add_note_option(parser: argparse.ArgumentParser) -> None:
    """`--note TEXT`: a remark for the reader, written into the results file with the figures."""
    parser.add_argument(
        "--note",
        default=None,
        metavar="TEXT",
        help="a remark written into the results file (what was compared, on which code)",
    )


def run_record(note: str | None, load_before: list[float]) -> dict[str, Any]:
    """The keys every results file carries about its run, taken when the measuring is done."""
    return {
        "machine": machine(),
        "command": list(sys.argv),
        "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "note": note,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """`data` as indented JSON, atomically: a kill leaves the old file or the new one."""
    from skyclass.fileio import atomic_write  # here: cpu_model() needs no skyclass on sys.path

    text = json.dumps(data, indent=2) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


SECTIONS = "sections"


def read_sections(path: Path) -> dict[str, Any]:
    """The labelled-sections file at `path` ({"sections": {}} when there is none yet).

    Raises SystemExit for a file that is not one (a flat result, say), so that it is never
    silently wrapped or lost; the scripts call this before measuring as well as when writing.
    """
    if not path.exists():
        return {SECTIONS: {}}
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or set(data) != {SECTIONS}:
        raise SystemExit(
            f"{path} is not a file of labelled sections (written with --label): "
            "choose another --out, or drop --label to write one flat result"
        )
    return data


def write_section(path: Path, label: str, result: dict[str, Any]) -> None:
    """Put `result` under `sections[label]` of the file at `path`, keeping the other sections.

    Two runs of one script (e.g. on the code before and after a change) with `--label before`
    and `--label after` assemble one comparison file; a rerun with a label replaces that
    section only.
    """
    data = read_sections(path)
    data[SECTIONS][label] = result
    write_json(path, data)
