"""`prepare`: a messy folder (or zip) of class folders -> one clean, split dataset zip.

scan -> process (decode, validate, hash, resize; in parallel) -> dedupe -> split -> write.
Every input file ends up either in the manifest or in the report's skipped list.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timezone
from functools import partial

from skyclass import __version__
from skyclass.dataset_zip import DATASET_FORMAT, DATASET_FORMAT_VERSION
from skyclass.errors import PrepareError
from skyclass.images import PREPROCESS_VERSION
from skyclass.prepare.config import PrepareConfig
from skyclass.prepare.decisions import Decision, apply_decisions, read_decisions
from skyclass.prepare.dedupe import DedupeResult, dedupe
from skyclass.prepare.groups import (
    burst_warning,
    compile_group_by,
    group_summary,
    read_groups_csv,
    split_units,
    user_groups,
)
from skyclass.prepare.process import Processed, process_source
from skyclass.prepare.scan import ScanResult, Skipped, scan
from skyclass.prepare.split import split_groups
from skyclass.prepare.write import (
    manifest_rows,
    remove_stale_temp,
    spool_prefix,
    summary_text,
    write_zip,
)
from skyclass.progress import progress
from skyclass.textsafe import display_text

__all__ = ["PrepareConfig", "prepare", "summary_text"]


def _process_all(scanned: ScanResult, config: PrepareConfig, spool: str) -> list:
    jobs = list(enumerate(scanned.sources))
    work = partial(process_source, config=config, spool=spool)
    bar = partial(progress, total=len(jobs), desc="prepare", quiet=config.quiet)
    if config.workers == 1 or len(jobs) < 2:
        return list(bar(map(work, jobs)))
    try:
        with ProcessPoolExecutor(max_workers=config.workers) as pool:
            return list(bar(pool.map(work, jobs, chunksize=8)))
    except BrokenProcessPool as exc:
        raise PrepareError(
            "a worker process died (killed, or out of memory on a huge image); try fewer "
            "--workers or a lower --max-pixels. Nothing was written"
        ) from exc


def _class_counts(
    scanned: ScanResult, skipped: list[Skipped], rows: list[dict], deduped: DedupeResult
) -> dict:
    counts: dict = {}
    for label in scanned.classes:
        name = display_text(label)
        counts[name] = {
            "found": 0,
            "kept": 0,
            "train": 0,
            "val": 0,
            "test": 0,
            "skipped": Counter(),
            "near_duplicate_groups": 0,
            "near_duplicate_images": 0,
        }
    for s in scanned.sources:
        counts[display_text(s.label)]["found"] += 1
    for unread in scanned.skipped:
        if unread.label is not None:
            counts[display_text(unread.label)]["found"] += 1
    for left_out in skipped:
        if left_out.label is not None:
            counts[display_text(left_out.label)]["skipped"][left_out.reason] += 1
    for row in rows:
        counts[row["class"]]["kept"] += 1
        counts[row["class"]][row["split"]] += 1
    by_index = {it.index: it for it in deduped.kept}
    for group in deduped.near_groups:
        c = counts[display_text(by_index[group[0]].source.label)]
        c["near_duplicate_groups"] += 1
        c["near_duplicate_images"] += len(group)
    for c in counts.values():
        c["skipped"] = dict(sorted(c["skipped"].items()))
    return counts


def _check_usable(counts: dict) -> None:
    empty = [name for name, c in counts.items() if c["kept"] == 0]
    if empty:
        why = "; ".join(
            f"{name!r}: {counts[name]['found']} files"
            + "".join(f", {reason} {n}" for reason, n in counts[name]["skipped"].items())
            for name in empty
        )
        raise PrepareError(
            f"no usable images in class folder(s) {why}. Remove the folder or add photos; "
            "nothing was written"
        )
    if len(counts) < 2:
        raise PrepareError(f"need at least 2 class folders, found {len(counts)}")


def prepare(config: PrepareConfig) -> dict:
    """Run the whole stage; return the report (also stored as report.json in the zip)."""
    started = time.perf_counter()
    _check_output(config)
    _check_groups(config)
    decisions = read_decisions(config.decisions) if config.decisions else None
    scanned = scan(config.raw)
    parent = _spool_parent(config)
    remove_stale_temp(config.out)
    try:
        with tempfile.TemporaryDirectory(prefix=spool_prefix(), dir=parent) as spool:
            return _build(config, scanned, spool, started, decisions)
    except OSError as exc:
        # Per-file read errors never get here (they are skips); this is the output side:
        # a full disk, a file-size limit, a read-only folder. Nothing was left behind.
        raise PrepareError(
            f"cannot write {config.out}: {exc.strerror or exc}; nothing was written"
        ) from exc


def _build(
    config: PrepareConfig,
    scanned: ScanResult,
    spool: str,
    started: float,
    decisions: list[Decision] | None = None,
) -> dict:
    """process -> [review decisions] -> dedupe -> split -> check -> write, with encoded
    images waiting in `spool`."""
    results = _process_all(scanned, config, spool)
    processed = [r for r in results if isinstance(r, Processed)]
    walk_skips = [s for s in scanned.skipped if s.label is not None]
    skipped = walk_skips + [r for r in results if isinstance(r, Skipped)]
    outcome = None
    if decisions is not None:
        processed, excluded, outcome = apply_decisions(
            processed, skipped, scanned.classes, decisions, display_text(str(config.decisions))
        )
        skipped += excluded
    deduped = dedupe(processed, config.dedupe, config.near_threshold)
    skipped += deduped.skipped
    users = user_groups(deduped.kept, config.group_by, config.groups_file)
    units = split_units(deduped.kept, deduped.group_of, users)
    assignment = split_groups(
        deduped.kept,
        units,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        seed=config.seed,
    )
    rows = manifest_rows(deduped.kept, assignment, units, config.format)
    counts = _class_counts(scanned, skipped, rows, deduped)
    _check_usable(counts)
    report = _report(config, scanned, skipped, rows, counts, deduped, started)
    report["groups"] = group_summary(deduped.kept, units, users, config.group_by)
    report["warnings"] = _warnings(config, deduped, users, report["groups"])
    if outcome is not None:
        report["decisions"] = outcome.to_dict()
    spool_of = {row["path"]: it.spool_file for row, it in zip(rows, deduped.kept, strict=True)}
    write_zip(config.out, rows, spool_of, report)
    return report


def _check_groups(config: PrepareConfig) -> None:
    """A bad --group-by pattern or --groups file fails before any image is decoded."""
    if config.group_by:
        compile_group_by(config.group_by)
    if config.groups_file is not None:
        read_groups_csv(config.groups_file)


def _warnings(config: PrepareConfig, deduped: DedupeResult, users, groups: dict) -> list[str]:
    """Things the user should act on; printed by the CLI and kept in report.json."""
    warnings = []
    if users.source is None:
        burst = burst_warning(deduped.kept)
        if burst is not None:
            groups["bursts"] = burst
            warnings.append(burst["message"])
    elif users.ungrouped:
        how = (
            f"--group-by {config.group_by!r} did not match"
            if users.source == "group_by"
            else f"--groups {config.groups_file} does not list"
        )
        warnings.append(
            f"{how} {len(users.ungrouped)} image(s) (e.g. "
            f"{groups['ungrouped_examples'][0]}): each is its own group"
        )
    if users.unknown_paths:
        warnings.append(
            f"--groups {config.groups_file}: {len(users.unknown_paths)} path(s) "
            f"match no kept image (e.g. {groups['unknown_path_examples'][0]})"
        )
    return warnings


def _check_output(config: PrepareConfig) -> None:
    """Refuse outputs that would fail at the very end or destroy the input."""
    out = config.out.resolve()
    if out.is_dir():
        raise PrepareError(f"--out {config.out} is a folder; give a file name like dataset.zip")
    raw = config.raw.resolve()
    if out == raw:
        raise PrepareError(f"--out {config.out} is the input itself; choose another file")


def _spool_parent(config: PrepareConfig) -> str:
    parent = config.out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrepareError(f"cannot create output folder {parent}: {exc.strerror or exc}") from exc
    if not parent.is_dir():
        raise PrepareError(f"output folder {parent} is not a folder")
    return str(parent)


def _report(
    config: PrepareConfig,
    scanned: ScanResult,
    skipped: list[Skipped],
    rows: list[dict],
    counts: dict,
    deduped: DedupeResult,
    started: float,
) -> dict:
    unclassified = [s for s in scanned.skipped if s.label is None]
    all_skipped = sorted(unclassified + skipped, key=lambda s: (s.label or "", s.path))
    by_reason = Counter(s.reason for s in all_skipped)
    found = len(scanned.sources) + len(scanned.skipped)
    return {
        "format": DATASET_FORMAT,
        "format_version": DATASET_FORMAT_VERSION,
        "skyclass_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": display_text(str(config.raw)),
        "config": config.to_dict(),
        "size": config.size,
        "resize": config.resize,
        "preprocess_version": PREPROCESS_VERSION,
        "class_names": [display_text(c) for c in scanned.classes],
        "classes": counts,
        "totals": {
            "found": found,
            "kept": len(rows),
            "train": sum(1 for r in rows if r["split"] == "train"),
            "val": sum(1 for r in rows if r["split"] == "val"),
            "test": sum(1 for r in rows if r["split"] == "test"),
            "skipped": len(all_skipped),
        },
        "skipped_by_reason": dict(sorted(by_reason.items())),
        "near_duplicates": {
            "groups": len(deduped.near_groups),
            "images": sum(len(g) for g in deduped.near_groups),
            "threshold": config.near_threshold,
            "unconfirmed_matches": deduped.unconfirmed_matches,
            "low_detail_images": deduped.low_detail,
        },
        "label_conflicts": deduped.conflicts,
        "skipped": [s.to_dict() for s in all_skipped],
        "seconds": round(time.perf_counter() - started, 3),
    }
