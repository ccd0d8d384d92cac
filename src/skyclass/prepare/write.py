"""Write the dataset zip (images, manifest.csv, report.json) atomically and summarise it."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

from skyclass.dataset import MANIFEST_COLUMNS, MANIFEST_NAME, REPORT_NAME
from skyclass.prepare.process import Processed
from skyclass.textsafe import display_text, safe_stem


def zip_member_name(it: Processed, split: str, fmt: str) -> str:
    """`train/<class>/<stem>-<sha8>.jpg`: unique even when nested folders repeat names."""
    stem = safe_stem(os.path.splitext(os.path.basename(it.source.path))[0])
    ext = "jpg" if fmt == "jpeg" else "png"
    return f"{split}/{display_text(it.source.label)}/{stem}-{it.sha256[:8]}.{ext}"


def manifest_rows(
    kept: list[Processed], assignment: dict[int, str], group_of: dict[int, int], fmt: str
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
                "group": group_of.get(it.index, ""),
                "source": it.source.path,
                "width": it.width,
                "height": it.height,
            }
        )
    names = Counter(r["path"] for r in rows)
    for r in rows:  # two different files with the same name and same sha prefix: disambiguate
        if names[r["path"]] > 1:
            base, ext = os.path.splitext(r["path"])
            r["path"] = f"{base}-{r['sha256'][8:16]}{ext}"
    return rows


def _csv_bytes(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def write_zip(out: Path, rows: list[dict], spool_of: dict[str, str], report: dict) -> None:
    """Write to a temporary file next to `out`, then rename: a crash leaves no half zip."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as zf:
            for row in rows:
                # Images are already compressed: STORED keeps random access cheap for training.
                zf.write(spool_of[row["path"]], row["path"], compress_type=zipfile.ZIP_STORED)
            zf.writestr(MANIFEST_NAME, _csv_bytes(rows), compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr(
                REPORT_NAME,
                json.dumps(report, indent=2, ensure_ascii=True),
                compress_type=zipfile.ZIP_DEFLATED,
            )
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def summary_text(report: dict) -> str:
    """The human summary printed at the end of `prepare`."""
    lines = [
        f"{'class':<24}{'found':>7}{'kept':>7}{'train':>7}{'test':>7}{'skipped':>9}"
        f"{'dup':>6}{'near':>6}{'conflict':>10}",
    ]
    for label, c in report["classes"].items():
        lines.append(
            f"{label[:23]:<24}{c['found']:>7}{c['kept']:>7}{c['train']:>7}{c['test']:>7}"
            f"{sum(c['skipped'].values()):>9}{c['skipped'].get('duplicate', 0):>6}"
            f"{c['near_duplicate_images']:>6}{c['skipped'].get('label_conflict', 0):>10}"
        )
    t = report["totals"]
    lines.append(
        f"{'total':<24}{t['found']:>7}{t['kept']:>7}{t['train']:>7}{t['test']:>7}"
        f"{t['skipped']:>9}"
    )
    if report["skipped_by_reason"]:
        lines.append("skipped by reason: " + ", ".join(
            f"{reason} {n}" for reason, n in sorted(report["skipped_by_reason"].items())
        ))
    nd = report["near_duplicates"]
    lines.append(
        f"near-duplicate groups: {nd['groups']} ({nd['images']} images, kept on one side "
        f"of the split); label conflicts: {len(report['label_conflicts'])}"
    )
    shown = [s for s in report["skipped"] if s["reason"] not in ("duplicate",)][:15]
    for s in shown:
        lines.append(f"  skipped {s['path']}: {s['reason']} {s['detail']}".rstrip())
    hidden = len(report["skipped"]) - len(shown)
    if hidden > 0:
        lines.append(f"  ... {hidden} more skipped files listed in report.json")
    return "\n".join(lines)
