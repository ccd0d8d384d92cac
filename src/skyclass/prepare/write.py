"""Write the dataset zip (images, manifest.csv, report.json) atomically and summarise it."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import zipfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from skyclass.dataset_zip import MANIFEST_COLUMNS, MANIFEST_NAME, REPORT_NAME
from skyclass.fileio import atomic_write
from skyclass.prepare.process import Processed
from skyclass.textsafe import display_text, safe_stem


def zip_member_name(it: Processed, split: str, fmt: str) -> str:
    """`train/<class>/<stem>-<sha8>.jpg`: unique even when nested folders repeat names."""
    stem = safe_stem(os.path.splitext(os.path.basename(it.source.path))[0])
    ext = "jpg" if fmt == "jpeg" else "png"
    return f"{split}/{display_text(it.source.label)}/{stem}-{it.sha256[:8]}.{ext}"


def manifest_rows(
    kept: list[Processed], assignment: dict[int, str], group_of: Mapping[int, object], fmt: str
) -> list[dict]:
    rows = []
    for it in kept:
        split = assignment[it.index]
        rows.append(
            {
                "path": zip_member_name(it, split, fmt),
                "class": display_text(it.source.label),
                "split": split,
                "sha256": it.sha256,
                "phash": f"{it.phash:016x}",
                "group": display_text(str(group_of.get(it.index, ""))),
                "source": it.source.path,
                "width": it.width,
                "height": it.height,
            }
        )
    _make_unique(rows)
    return rows


def _make_unique(rows: list[dict]) -> None:
    """Same stem and same sha prefix (identical files kept with --dedupe off, or names that
    `safe_stem` maps together): number the later ones so no zip member is written twice."""
    names = Counter(r["path"] for r in rows)
    taken = set(names)
    seen: Counter = Counter()
    for r in rows:
        if names[r["path"]] < 2:
            continue
        seen[r["path"]] += 1
        if seen[r["path"]] == 1:
            continue
        base, ext = os.path.splitext(r["path"])
        n = seen[r["path"]]
        while f"{base}-{n}{ext}" in taken:
            n += 1
        r["path"] = f"{base}-{n}{ext}"
        taken.add(r["path"])


def _csv_bytes(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


SPOOL_PREFIX = ".skyclass-spool-"


def spool_prefix() -> str:
    """Name start of this run's spool folder; the PID lets a later run tell it is stale."""
    return f"{SPOOL_PREFIX}{os.getpid()}-"


def partial_prefix(out: Path) -> str:
    return f".{out.name}.{os.getpid()}-"


def _owner(name: str, out: Path) -> int | None:
    """PID of the run that made temp file `name` next to `out`, or None if not ours."""
    for prefix, suffix in ((SPOOL_PREFIX, ""), (f".{out.name}.", ".partial")):
        if name.startswith(prefix) and name.endswith(suffix):
            pid = name[len(prefix) :].split("-", 1)[0]
            return int(pid) if pid.isdigit() else None
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temp(out: Path) -> list[str]:
    """Remove the spool folders and half-written zips that killed runs (SIGKILL, power cut)
    left next to `out`. Only those whose process is gone: a run writing into the same folder
    at the same time keeps its own."""
    removed = []
    for path in sorted(out.parent.glob(".*")):
        pid = _owner(path.name, out)
        if pid is None or _alive(pid):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed


def write_zip(out: Path, rows: list[dict], spool_of: dict[str, str], report: dict) -> None:
    """Write to a temporary file next to `out`, then rename: a crash leaves no half zip."""

    def write(fh: BinaryIO) -> None:
        with zipfile.ZipFile(fh, "w") as zf:
            for row in rows:
                # Images are already compressed: STORED keeps random access cheap for training.
                zf.write(spool_of[row["path"]], row["path"], compress_type=zipfile.ZIP_STORED)
            zf.writestr(MANIFEST_NAME, _csv_bytes(rows), compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr(
                REPORT_NAME,
                json.dumps(report, indent=2, ensure_ascii=True),
                compress_type=zipfile.ZIP_DEFLATED,
            )

    atomic_write(out, write, prefix=partial_prefix(out), suffix=".partial")


SPLIT_NAMES = ("train", "val", "test")
DETAIL_SHOWN = 160  # characters of a skip's detail on the console (report.json has it all)


def summary_text(report: dict) -> str:
    """The human summary printed at the end of `prepare`."""
    splits = [s for s in SPLIT_NAMES if s in report["totals"]]
    lines = [
        f"{'class':<24}{'found':>7}{'kept':>7}"
        + "".join(f"{s:>7}" for s in splits)
        + f"{'skipped':>9}{'dup':>6}{'near':>6}{'conflict':>10}",
    ]
    for label, c in report["classes"].items():
        lines.append(
            f"{label[:23]:<24}{c['found']:>7}{c['kept']:>7}"
            + "".join(f"{c.get(s, 0):>7}" for s in splits)
            + f"{sum(c['skipped'].values()):>9}{c['skipped'].get('duplicate', 0):>6}"
            f"{c['near_duplicate_images']:>6}{c['skipped'].get('label_conflict', 0):>10}"
        )
    t = report["totals"]
    lines.append(
        f"{'total':<24}{t['found']:>7}{t['kept']:>7}"
        + "".join(f"{t[s]:>7}" for s in splits)
        + f"{t['skipped']:>9}"
    )
    if report["skipped_by_reason"]:
        lines.append(
            "skipped by reason: "
            + ", ".join(
                f"{reason} {n}" for reason, n in sorted(report["skipped_by_reason"].items())
            )
        )
    nd = report["near_duplicates"]
    lines.append(
        f"near-duplicate groups: {nd['groups']} ({nd['images']} images, kept on one side "
        f"of the split); label conflicts: {len(report['label_conflicts'])}"
    )
    groups = report.get("groups")
    if groups and groups.get("source"):
        sizes = groups["sizes"]
        lines.append(
            f"groups ({groups['source'].replace('_', '-')}): {groups['user_groups']} groups, "
            f"{groups['split_units']} split units of {sizes['min']}-{sizes['max']} images "
            f"(median {sizes['median']:g}); none straddles a split"
        )
    for warning in report.get("warnings", []):
        lines.append(f"warning: {warning}")
    shown = [s for s in report["skipped"] if s["reason"] not in ("duplicate",)][:15]
    for s in shown:
        detail = s["detail"]
        if len(detail) > DETAIL_SHOWN:
            detail = detail[: DETAIL_SHOWN - 3] + "..."
        lines.append(f"  skipped {s['path']}: {s['reason']} {detail}".rstrip())
    hidden = len(report["skipped"]) - len(shown)
    if hidden > 0:
        lines.append(f"  ... {hidden} more skipped files listed in report.json")
    return "\n".join(lines)
