"""`skyclass review`: find the likely wrong labels, strays and cross-class copies of a dataset.

embed every image (all splits) -> k-fold linear heads (group-aware) -> out-of-sample
probabilities -> cleanlab ranks the issues -> REVIEW_DIR/issues.csv, summary.json, review.html.
`--serve` then opens a local page to decide about each suspect (skyclass.review.server), and
`skyclass prepare RAW --decisions REVIEW_DIR/decisions.csv` applies the decisions.
"""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np

from skyclass import __version__
from skyclass.dataset_zip import MANIFEST_NAME, PreparedDataset
from skyclass.errors import ReviewError
from skyclass.fileio import atomic_write, atomic_write_csv, sha256_file
from skyclass.review.config import ReviewConfig  # light: the CLI builds its options from it

ISSUES_NAME = "issues.csv"
SUMMARY_NAME = "summary.json"
GALLERY_NAME = "review.html"
DECISIONS_NAME = "decisions.csv"
EMBEDDINGS_NAME = "embeddings.npz"
SUMMARY_FORMAT = "skyclass-review"
GROUP_COLUMN = "group"


def manifest_rows(dataset: PreparedDataset) -> list[dict]:
    """Every manifest row (all splits), with whatever columns this version of prepare wrote."""
    with zipfile.ZipFile(dataset.path) as zf:
        text = zf.read(MANIFEST_NAME).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def group_ids(rows: list[dict]) -> np.ndarray:
    """The manifest's group of each row; a row without one is a group of its own."""
    return np.asarray(
        [f"g:{r[GROUP_COLUMN]}" if r.get(GROUP_COLUMN) else f"p:{r['path']}" for r in rows]
    )


def load_previous(config: ReviewConfig, dataset_sha: str) -> dict | None:
    """The summary of an earlier review of the very same dataset and backbone, if any."""
    path = config.out / SUMMARY_NAME
    if config.recompute or not path.is_file() or not (config.out / ISSUES_NAME).is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same = (
        summary.get("dataset_sha256") == dataset_sha
        and summary.get("backbone") == config.backbone
        and summary.get("folds_wanted") == config.folds
        and summary.get("seed") == config.seed
    )
    return summary if same else None


def review(config: ReviewConfig) -> dict:
    """Score the dataset and write the review files; return the summary (summary.json)."""
    from skyclass.review.gallery import write_gallery
    from skyclass.review.issues import (
        ISSUE_COLUMNS,
        class_noise,
        conflict_issues,
        find_issues,
        label_issue_indices,
        typical_examples,
    )
    from skyclass.review.scores import two_pass_probs

    started = time.perf_counter()
    dataset = PreparedDataset(config.dataset)
    dataset_sha = sha256_file(config.dataset)
    previous = load_previous(config, dataset_sha)
    if previous is not None:
        previous["reused"] = True
        return previous
    rows = manifest_rows(dataset)
    if not rows:
        raise ReviewError(f"{config.dataset} holds no images")
    index = {name: i for i, name in enumerate(dataset.classes)}
    features, spec, embed_s, from_cache = _embed(config, dataset, rows)
    embeddings, failed = features
    usable = np.flatnonzero(~np.isnan(embeddings).any(axis=1))
    rows_ok = [rows[i] for i in usable]
    labels = np.asarray([index[r["class"]] for r in rows_ok])
    groups = group_ids(rows_ok)
    t0 = time.perf_counter()
    probs, n_folds, first_pass = two_pass_probs(
        embeddings[usable],
        labels,
        groups,
        len(dataset.classes),
        label_issue_indices,
        config.folds,
        config.seed,
    )
    heads_s = time.perf_counter() - t0
    issues, ood, flagged = find_issues(rows_ok, labels, probs, embeddings[usable], dataset.classes)
    conflicts = conflict_issues(dataset.report)
    all_issues = conflicts + issues
    typical = typical_examples(labels, probs, flagged, len(dataset.classes))
    summary = {
        "format": SUMMARY_FORMAT,
        "skyclass_version": __version__,
        "dataset": str(config.dataset.resolve()),
        "dataset_sha256": dataset_sha,
        "class_names": dataset.classes,
        "backbone": config.backbone,
        "preprocess": spec.to_dict(),
        "folds_wanted": config.folds,
        "folds": n_folds,
        "first_pass_suspects": first_pass,
        "seed": config.seed,
        "images": len(rows),
        "unreadable": failed,
        "out_of_sample_accuracy": round(float((probs.argmax(1) == labels).mean()), 4),
        "issues": {
            kind: sum(1 for it in all_issues if kind in it.kind.split("+"))
            for kind in ("wrong_label", "outlier", "cross_class_copy")
        },
        "issues_total": len(all_issues),
        # cleanlab's flagged share: its estimate of the label-noise rate of the whole set.
        "estimated_noise_rate": round(
            sum(1 for it in issues if "wrong_label" in it.kind) / len(labels), 4
        ),
        "classes": class_noise(labels, probs, dataset.classes),
        "typical": {
            dataset.classes[c]: [rows_ok[i]["path"] for i in idx] for c, idx in typical.items()
        },
        "embeddings_from_cache": from_cache,
        "seconds": {"embed": round(embed_s, 2), "heads": round(heads_s, 2)},
        **config.extra,
    }
    config.out.mkdir(parents=True, exist_ok=True)
    _write_issues(config.out / ISSUES_NAME, all_issues, ISSUE_COLUMNS)
    write_gallery(config.out / GALLERY_NAME, dataset, all_issues, summary)
    summary["seconds"]["total"] = round(time.perf_counter() - started, 2)
    data = json.dumps(summary, indent=2).encode("utf-8")
    atomic_write(config.out / SUMMARY_NAME, lambda fh: fh.write(data))
    np.savez_compressed(
        config.out / "scores.npz",
        paths=np.asarray([r["path"] for r in rows_ok]),
        probs=probs.astype(np.float32),
        ood=ood.astype(np.float32),
        labels=labels,
    )
    return summary


def _member_keys(dataset: PreparedDataset, rows: list[dict]) -> list[str]:
    """Cache key of each image: its source's sha256 and the CRC of the prepared image."""
    with zipfile.ZipFile(dataset.path) as zf:
        return [f"{r['sha256']}:{zf.getinfo(r['path']).CRC:08x}" for r in rows]


def _load_cache(path: Path, meta: str) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    try:
        with np.load(path) as data:
            if str(data["meta"]) != meta:
                return {}
            return dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
    except (OSError, ValueError, KeyError):
        return {}  # an unreadable cache is only lost time


def _save_cache(path: Path, meta: str, cache: dict[str, np.ndarray]) -> None:
    keys = list(cache)
    buf = io.BytesIO()
    np.savez(
        buf,
        meta=np.asarray(meta),
        keys=np.asarray(keys),
        vectors=np.stack([cache[k] for k in keys]).astype(np.float32),
    )
    data = buf.getvalue()
    atomic_write(path, lambda fh: fh.write(data))


def _embed(config: ReviewConfig, dataset: PreparedDataset, rows: list[dict]):
    """Embeddings of every row; images embedded before by the same backbone (a review of an
    earlier version of this dataset, in `config.cache`) are not embedded again."""
    from skyclass.review.embed import embed, imagenet_backbone, run_backbone

    features = None
    if config.run is not None:
        features, spec, checkpoint = run_backbone(config.run)
        meta = f"run:{sha256_file(checkpoint)}"
    else:
        spec, meta = dataset.spec, "imagenet"
    meta += json.dumps(spec.to_dict(), sort_keys=True)
    cache_path = config.cache or config.out / EMBEDDINGS_NAME
    cache = _load_cache(cache_path, meta)
    keys = _member_keys(dataset, rows)
    todo = [i for i, k in enumerate(keys) if k not in cache]
    t0 = time.perf_counter()
    failed: list[str] = []
    if todo:
        if features is None:
            features = imagenet_backbone(config.weights)
        vectors, failed = embed(
            dataset, [rows[i]["path"] for i in todo], features, spec, config.quiet
        )
        for j, i in enumerate(todo):
            if not np.isnan(vectors[j]).any():
                cache[keys[i]] = vectors[j]
    seconds = time.perf_counter() - t0
    dim = len(next(iter(cache.values()))) if cache else 1
    out = np.full((len(rows), dim), np.nan, dtype=np.float32)
    for i, k in enumerate(keys):
        if k in cache:
            out[i] = cache[k]
    if todo and cache:
        _save_cache(cache_path, meta, cache)
    return (out, failed), spec, seconds, len(rows) - len(todo)


def _write_issues(path: Path, issues: list, columns: list[str]) -> None:
    atomic_write_csv(path, columns, (it.to_row() for it in issues))


def read_issues(review_dir: str | Path) -> list[dict]:
    """issues.csv as dicts (what the review page shows)."""
    path = Path(review_dir) / ISSUES_NAME
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
