"""How well does `skyclass review` find labels flipped on purpose, and does fixing them pay?

For each data set (bird_drone, ddd_visible):
1. `prepare` the untouched folder -> clean.zip. Its test split is the HOLD-OUT: never flipped,
   never reviewed, never trained on; it scores every model below against the true labels.
2. RAW_TRAIN = the files of clean.zip's train split (symlinks, true folders). A copy with
   5% / 10% of the images filed under a random other class: whole near-copy groups are flipped
   (all copies of a photo together; flipping one copy alone would be caught by prepare as a
   cross-class conflict, which is too easy). Seeded.
3. `prepare` the flipped folder -> flipped.zip (its own 75:20:5 split, for training), then
   `review` it (ImageNet embeddings, 5 group-aware folds, cleanlab). Flagged set = the
   `wrong_label` suspects. Precision and recall against the flipped files.
4. Baseline, fastai's "top losses": `train` skyclass on flipped.zip (--epochs, default recipe),
   then rank every image of flipped.zip by the final model's cross-entropy against its given
   label. Train-split images (most of them) are scored in-sample, as fastai's
   ImageClassifierCleaner shows the training set; test-split images are out of sample. The
   ranking is cut at the same number of images as review flagged (same reviewing effort), at
   the true number of flips, and where the model stops disagreeing with the given label.
5. Recovery (bird_drone by default): accept every review suggestion (decisions.csv written by
   this script as if a person pressed `a` on each wrong_label suspect), `prepare --decisions`,
   retrain (same recipe, epochs, seed); hold-out accuracy of clean / flipped / fixed models
   (last.pt of each), on the whole hold-out and on its strict part (see holdout_check).
   recovered = (fixed - flipped) / (clean - flipped).
Also: `review` of the whole untouched bird_drone (timed, fresh embeddings) and a contact sheet
of its 30 top-ranked suspects (bench/results/review_top30_bird_drone.png) to look at.

Run: nice -n 10 .venv/bin/python bench/review_quality.py   (results: bench/results/)
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import io
import json
import os
import platform
import random
import re
import resource
import shutil
import sys
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _common import DDD_VIDEO_GROUP_BY  # noqa: E402
from skyclass.dataset_zip import PreparedDataset  # noqa: E402
from skyclass.prepare import PrepareConfig, prepare  # noqa: E402
from skyclass.prepare.decisions import Decision, now_iso, write_decisions  # noqa: E402
from skyclass.review import ReviewConfig, read_issues, review  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"
RESULTS = ROOT / "bench" / "results"


def manifest(zip_path: Path) -> list[dict]:
    with zipfile.ZipFile(zip_path) as zf:
        return list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode())))


def link_tree(raw: Path, rows: list[dict], dest: Path, label_of: dict[str, str]) -> None:
    """dest/<label>/<file> -> raw/<source> symlinks (the label may differ from the folder)."""
    if dest.exists():
        shutil.rmtree(dest)
    for r in rows:
        target = dest / label_of[r["source"]] / Path(r["source"]).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(raw / r["source"])


def choose_flips(rows: list[dict], classes: list[str], rate: float, seed: int) -> dict[str, str]:
    """source -> wrong class, for whole groups, until `rate` of the images are flipped."""
    rng = random.Random(seed)
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["group"] or r["path"], []).append(r)
    keys = sorted(groups)
    rng.shuffle(keys)
    flips: dict[str, str] = {}
    for key in keys:
        if len(flips) >= rate * len(rows):
            break
        given = groups[key][0]["class"]
        wrong = rng.choice([c for c in classes if c != given])
        for r in groups[key]:
            flips[r["source"]] = wrong
    return flips


def new_source(source: str, label: str) -> str:
    return f"{label}/{Path(source).name}"


SIZE = 224  # --size: smaller only for a quick smoke run of this script
# --train-size: the image side of the zips the compared models train on (clean / flipped /
# fixed). The reviews and the hold-out stay at SIZE; a model scores them through its own
# preprocessing (resized to its side). Smaller = a cheaper training budget on a busy CPU.
TRAIN_SIZE = 224


def sized(name: str) -> str:
    """A training zip's or run's file name, marked with its side when not SIZE."""
    return name if TRAIN_SIZE == SIZE else f"{name}_s{TRAIN_SIZE}"


@contextmanager
def locked(path: Path):
    """One process at a time builds `path` (parallel invocations with --phases share work)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# Splits. The untouched set: train pool 70 : hold-out 30 (no validation split: nothing is
# selected on it). Every training zip made from the train pool: train 75 : val 20 : test 5
# (train selects best.pt on val; its own small test split is not used here: every model is
# scored with last.pt on the untouched set's hold-out).
HOLDOUT_SPLIT = {"val_fraction": 0.0, "test_fraction": 0.3}
# Frames of one video stay on one side of every split (prepare --group-by). bird_drone's drone
# videos are files <family><frame number>: a thousand-frame bucket (yoto02...) is one group, so
# frames a few seconds apart (yoto02930 / yoto02901) never straddle the hold-out. ddd_visible:
# the video id, as its README says.
GROUP_BY = {"bird_drone": r"^((?:yoto|foto|moto)\d\d)", "ddd_visible": DDD_VIDEO_GROUP_BY}
TRAINING_SPLIT = {"val_fraction": 0.2, "test_fraction": 0.05}


def prepare_zip(
    raw: Path,
    out: Path,
    split: dict,
    decisions: Path | None = None,
    size: int | None = None,
    group_by: str | None = None,
):
    with locked(out):
        if not out.exists():
            prepare(
                PrepareConfig(
                    raw=raw,
                    out=out,
                    quiet=True,
                    decisions=decisions,
                    size=size or SIZE,
                    group_by=group_by,
                    **split,
                )
            )
    return out


THREADS = 1  # --threads / --workers of every training (a small shared machine)
WORKERS = 1


def train_run(data: Path, out: Path, epochs: int) -> dict:
    with locked(out):
        return _train_run(data, out, epochs)


def _train_run(data: Path, out: Path, epochs: int) -> dict:
    """The same recipe, epochs and seed for every model this benchmark compares."""
    from skyclass.train import TrainConfig, train

    if (out / "last.pt").exists() and (out / "bench_summary.json").exists():
        return json.loads((out / "bench_summary.json").read_text())
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    summary = train(
        TrainConfig.from_recipe(
            "default",
            data=str(data),
            out=str(out),
            epochs=epochs,
            quiet=True,
            seed=0,
            threads=THREADS,
            workers=WORKERS,
        )
    )
    summary = {k: v for k, v in summary.items() if isinstance(v, (int, float, str))}
    summary.update(
        {
            "data": data.name,
            "recipe": "default",
            "epochs": epochs,
            "seed": 0,
            "threads": THREADS,
            "workers": WORKERS,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        }
    )
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    (out / "bench_summary.json").write_text(json.dumps(summary))
    return summary


def probabilities(run: Path, zip_path: Path, entries) -> np.ndarray:
    """Softmax of the run's last.pt on the zip members `entries` (eval preprocessing), kept
    in the run folder (a parallel helper process scores a model as soon as it is trained)."""
    import hashlib

    key = hashlib.sha1(
        "\n".join(
            [
                str(zip_path.resolve()),
                str(zip_path.stat().st_mtime_ns),
                str((run / "last.pt").stat().st_mtime_ns),
                *[e.path for e in entries],
            ]
        ).encode()
    ).hexdigest()[:16]
    cached = run / f"bench_probs_{key}.npy"
    with locked(cached):
        if not cached.exists():
            np.save(cached, _probabilities(run, zip_path, entries))
        return np.load(cached)


def _probabilities(run: Path, zip_path: Path, entries) -> np.ndarray:
    import torch

    from skyclass.checkpoint import load_trained_model
    from skyclass.torch_data import EvalTransform

    trained = load_trained_model(run, "last")
    ds = PreparedDataset(zip_path)
    if trained.class_names != ds.classes:
        raise SystemExit(f"{run} has classes {trained.class_names}, {zip_path} {ds.classes}")
    transform = EvalTransform(trained.spec)
    out = []
    with torch.inference_mode():
        for start in range(0, len(entries), 64):
            batch = np.stack([transform(ds.read(e.path)) for e in entries[start : start + 64]])
            out.append(torch.softmax(trained.model(torch.from_numpy(batch)), 1).numpy())
    return np.concatenate(out)


def holdout_probs(run: Path, clean_zip: Path) -> np.ndarray:
    return probabilities(run, clean_zip, PreparedDataset(clean_zip).split("test"))


def holdout_accuracy(run: Path, clean_zip: Path, strict: set[str]) -> tuple[float, float]:
    """Accuracy on the whole hold-out, and on its `strict` part (sources far from every
    train-pool image, see holdout_check)."""
    ds = PreparedDataset(clean_zip)
    test = ds.split("test")
    probs = probabilities(run, clean_zip, test)
    right = probs.argmax(1) == np.asarray([e.target for e in test])
    keep = np.asarray([e.source in strict for e in test])
    return float(right.mean()), float(right[keep].mean())


def precision_recall(flagged: list[str], truth: set[str]) -> dict:
    hits = len(set(flagged) & truth)
    return {
        "flagged": len(flagged),
        "true_flips": len(truth),
        "hits": hits,
        "precision": round(hits / len(flagged), 4) if flagged else None,
        "recall": round(hits / len(truth), 4) if truth else None,
    }


def top_loss_ranking(run: Path, flipped_zip: Path) -> tuple[list[str], list[str], int]:
    """Sources of flipped.zip by the trained model's loss on the given label, highest first;
    each one's split; and how many the model assigns to another class than the given one
    (the ranking's natural cut: fastai's cleaner has none, this is the obvious one)."""
    ds = PreparedDataset(flipped_zip)
    probs = probabilities(run, flipped_zip, ds.entries)
    targets = np.asarray([e.target for e in ds.entries])
    loss = -np.log(np.clip(probs[np.arange(len(targets)), targets], 1e-12, 1.0))
    order = np.argsort(-loss, kind="stable")
    disagree = int((probs.argmax(1) != targets).sum())
    return [ds.entries[i].source for i in order], [ds.entries[i].split for i in order], disagree


def accept_all(review_dir: Path, out: Path) -> int:
    """decisions.csv accepting every wrong_label suggestion (what pressing `a` on each does)."""
    decisions = [
        Decision(
            source=r["source"],
            sha256=r["sha256"],
            given=r["given"],
            action="relabel",
            label=r["suggested"],
            path=r["path"],
            decided_at=now_iso(),
        )
        for r in read_issues(review_dir)
        if "wrong_label" in r["kind"]
    ]
    write_decisions(out, decisions)
    return len(decisions)


def contact_sheet(review_dir: Path, dataset_zip: Path, out: Path, n: int = 30) -> list[dict]:
    from PIL import Image, ImageDraw

    rows = [r for r in read_issues(review_dir) if r["path"]][:n]
    ds = PreparedDataset(dataset_zip)
    cell, cols = 200, 6
    sheet = Image.new("RGB", (cols * cell, ((len(rows) + cols - 1) // cols) * (cell + 30)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, r in enumerate(rows):
        img = Image.open(io.BytesIO(ds.read(r["path"]))).convert("RGB")
        img.thumbnail((cell - 8, cell - 8))
        x, y = (k % cols) * cell, (k // cols) * (cell + 30)
        sheet.paste(img, (x + 4, y + 4))
        draw.text(
            (x + 4, y + cell - 2),
            f"#{k + 1} {r['given']}->{r['suggested'] or '?'} {r['kind'][:11]}",
            fill="black",
        )
    sheet.save(out, optimize=True)
    return [
        {
            "rank": k + 1,
            "source": r["source"],
            "given": r["given"],
            "suggested": r["suggested"],
            "kind": r["kind"],
            "score": r["score"],
        }
        for k, r in enumerate(rows)
    ]


class Flipped:
    """One flipped copy of a data set: its folders, zips and the truth about its flips."""

    def __init__(self, name: str, rate: float, args, work: Path) -> None:
        self.name, self.rate, self.key = name, rate, f"{rate:.2f}"
        self.raw = DATASETS / name
        self.dir = work / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.group_by = GROUP_BY.get(name)
        self.clean_zip = prepare_zip(
            self.raw, self.dir / "clean.zip", HOLDOUT_SPLIT, group_by=self.group_by
        )
        ds = PreparedDataset(self.clean_zip)
        self.classes = ds.classes
        self.holdout_images = len(ds.split("test"))
        self.train_rows = [r for r in manifest(self.clean_zip) if r["split"] == "train"]
        self.flips = choose_flips(self.train_rows, self.classes, rate, args.seed)
        label_of = {r["source"]: self.flips.get(r["source"], r["class"]) for r in self.train_rows}
        self.raw_flip = self.dir / f"raw_flip{self.key}"
        with locked(self.raw_flip):  # parallel helper invocations share one folder
            if not (self.dir / f"flip{self.key}.zip").exists():
                link_tree(self.raw, self.train_rows, self.raw_flip, label_of)
            self.flipped_zip = prepare_zip(
                self.raw_flip,
                self.dir / f"flip{self.key}.zip",
                TRAINING_SPLIT,
                group_by=self.group_by,
            )
        flipped_sources = {new_source(s, lab) for s, lab in self.flips.items()}
        self.in_zip = {e.source for e in PreparedDataset(self.flipped_zip).entries}
        self.truth = flipped_sources & self.in_zip
        self.lost = len(flipped_sources - self.in_zip)
        self.true_class = {
            new_source(r["source"], self.flips[r["source"]]): r["class"]
            for r in self.train_rows
            if r["source"] in self.flips
        }
        self.review_dir = self.dir / f"review{self.key}"
        self.run_flip = self.dir / sized(f"run_flip{self.key}")

    def train_zip(self) -> Path:
        """What the 'flipped' model trains on: the reviewed zip, or its TRAIN_SIZE twin."""
        if TRAIN_SIZE == SIZE:
            return self.flipped_zip
        return prepare_zip(
            self.raw_flip,
            self.dir / f"{sized(f'flip{self.key}')}.zip",
            TRAINING_SPLIT,
            size=TRAIN_SIZE,
            group_by=self.group_by,
        )

    def clean_train_zip(self) -> Path:
        return self.dir / f"{sized('train_clean')}.zip"

    def fixed_zip(self) -> Path:
        return self.dir / f"{sized(f'fixed{self.key}')}.zip"


def slot(result: dict, f: Flipped) -> dict:
    out = result.setdefault(
        f.name,
        {"holdout_images": f.holdout_images, "train_pool_images": len(f.train_rows), "rates": {}},
    )
    return out["rates"].setdefault(f.key, {})


def review_step(f: Flipped, work: Path, result: dict, recompute: bool = False) -> list[str]:
    """review of the flipped copy; precision/recall of its wrong_label suspects."""
    r_out = slot(result, f)
    t0 = time.perf_counter()
    summary = review(
        ReviewConfig(
            dataset=f.flipped_zip,
            out=f.review_dir,
            quiet=True,
            cache=work / f"{f.name}_embeddings.npz",
            recompute=recompute,
        )
    )
    wrong = [r for r in read_issues(f.review_dir) if "wrong_label" in r["kind"]]
    flagged = [r["source"] for r in wrong]
    r_out.update(
        {
            "images": len(f.in_zip),
            "flipped_images": len(f.truth),
            "flipped_lost_to_prepare": f.lost,
            "review_call_seconds": round(time.perf_counter() - t0, 1),
            # When it was computed (a reused review of the same zip answers in a second).
            "review_seconds_when_computed": summary["seconds"],
            "review_reused": bool(summary.get("reused")),
            "review": {
                **precision_recall(flagged, f.truth),
                "suggestion_is_true_class": sum(
                    1
                    for r in wrong
                    if r["source"] in f.truth and r["suggested"] == f.true_class[r["source"]]
                ),
                "outliers_flagged": summary["issues"]["outlier"],
                "out_of_sample_accuracy": summary["out_of_sample_accuracy"],
                "embeddings_from_cache": summary.get("embeddings_from_cache"),
                "estimated_noise_per_class": {
                    c["class"]: c["estimated_noise_rate"] for c in summary["classes"]
                },
            },
        }
    )
    return flagged


def baseline_step(f: Flipped, args, result: dict, flagged: list[str]) -> None:
    """fastai-style top losses of a model trained on the flipped copy."""
    r_out = slot(result, f)
    r_out["flipped_train"] = train_run(f.train_zip(), f.run_flip, args.epochs)
    ranking, splits, disagree = top_loss_ranking(f.run_flip, f.flipped_zip)
    r_out["top_losses"] = {
        "at_review_budget": precision_recall(ranking[: len(flagged)], f.truth),
        "at_true_flip_count": precision_recall(ranking[: len(f.truth)], f.truth),
        "at_model_disagrees_with_label": precision_recall(ranking[:disagree], f.truth),
        "train_split_share": round(splits.count("train") / len(splits), 3),
    }


def clean_step(f: Flipped, args) -> Path:
    """A model trained on the unflipped train pool (the 'no noise' reference)."""
    truth = {r["source"]: r["class"] for r in f.train_rows}
    with locked(f.dir / "raw_clean"):
        if not (f.dir / "raw_clean").exists():
            link_tree(f.raw, f.train_rows, f.dir / "raw_clean", truth)
    clean_train = prepare_zip(
        f.dir / "raw_clean",
        f.clean_train_zip(),
        TRAINING_SPLIT,
        size=TRAIN_SIZE,
        group_by=f.group_by,
    )
    train_run(clean_train, f.dir / sized("run_clean"), args.epochs)
    return clean_train


def fixed_step(f: Flipped, args) -> dict:
    """Accept every suggestion, prepare --decisions, retrain."""
    decisions = f.dir / f"decisions{f.key}.csv"
    with locked(decisions):
        accepted = accept_all(f.review_dir, decisions)
    fixed_zip = prepare_zip(
        f.raw_flip, f.fixed_zip(), TRAINING_SPLIT, decisions, size=TRAIN_SIZE, group_by=f.group_by
    )
    with zipfile.ZipFile(fixed_zip) as zf:
        applied = json.loads(zf.read("report.json"))["decisions"]["counts"]
    summary = train_run(fixed_zip, f.dir / sized(f"run_fixed{f.key}"), args.epochs)
    return {"accepted_suggestions": accepted, "decisions_applied": applied, "fixed_train": summary}


# Drone videos in bird_drone: their frames are named <family><frame number> (yoto02930).
# prepare's hash-based dedupe does not pair frames a few seconds apart, so frames of one
# video sit on both sides of the split; the strict hold-out leaves these families out.
VIDEO_FRAME_FAMILY = re.compile(r"^(yoto|foto|moto)\d+_")
# How prepare names the groups its dedupe finds (manifest.csv `group`); --group-by groups are
# named by their captured key.
NEAR_COPY_GROUP = "near-"


def holdout_check(f: Flipped, work: Path, training_zips: list[Path]) -> dict:
    """Is the hold-out really unseen by every model? Exact copies (sha256), prepare's near-copy
    groups across the split, and, independently of prepare, each hold-out image's most similar
    train-pool image in ImageNet embedding space next to how similar prepare's own near-copy
    pairs are (the training sets are all made of train-pool photos)."""
    from skyclass.review import _embed

    clean_rows = manifest(f.clean_zip)
    hold = [r for r in clean_rows if r["split"] == "test"]
    pool = [r for r in clean_rows if r["split"] == "train"]
    hold_sha = {r["sha256"] for r in hold}
    pool_sha = {r["sha256"] for r in pool}
    zips = {}
    for z in training_zips:
        sha = {r["sha256"] for r in manifest(z)}
        zips[z.name] = {
            "images": len(sha),
            "holdout_copies": len(sha & hold_sha),
            "not_from_train_pool": len(sha - pool_sha),
        }
    groups_across = {r["group"] for r in hold if r["group"]} & {
        r["group"] for r in pool if r["group"]
    }
    ds = PreparedDataset(f.clean_zip)
    (vectors, _failed), *_ = _embed(
        ReviewConfig(
            dataset=f.clean_zip,
            out=work / "tmp_check",
            quiet=True,
            cache=work / f"{f.name}_embeddings.npz",
        ),
        ds,
        clean_rows,
    )
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    is_hold = np.asarray([r["split"] == "test" for r in clean_rows])
    sims = unit[is_hold] @ unit[~is_hold].T
    nearest = sims.max(axis=1)
    pool_idx = np.flatnonzero(~is_hold)
    by_group: dict[str, list[int]] = {}
    for j in pool_idx:  # prepare's near-copy groups only, not --group-by's (whole videos)
        if clean_rows[j]["group"].startswith(NEAR_COPY_GROUP):
            by_group.setdefault(clean_rows[j]["group"], []).append(j)
    copy_sims = [
        float(unit[a] @ unit[b])
        for idx in by_group.values()
        for k, a in enumerate(idx)
        for b in idx[k + 1 :]
    ]
    low_copy = float(np.percentile(copy_sims, 5)) if copy_sims else None
    order = np.argsort(-nearest)[:5]
    hold_idx = np.flatnonzero(is_hold)
    strict = [
        clean_rows[i]["source"]
        for k, i in enumerate(hold_idx)
        if (low_copy is None or nearest[k] < low_copy)
        and not VIDEO_FRAME_FAMILY.match(Path(clean_rows[i]["source"]).name)
    ]
    return {
        "strict_holdout": strict,
        "holdout_images": len(hold),
        "train_pool_images": len(pool),
        "training_zips": zips,
        "prepare_groups_across_split": len(groups_across),
        "embedding_cosine": {
            "prepare_near_copy_pairs": len(copy_sims),
            "near_copy_pair_p5": None if low_copy is None else round(low_copy, 4),
            "near_copy_pair_median": round(float(np.median(copy_sims)), 4) if copy_sims else None,
            "holdout_nearest_median": round(float(np.median(nearest)), 4),
            "holdout_nearest_max": round(float(nearest.max()), 4),
            "holdout_at_or_above_near_copy_p5": None
            if low_copy is None
            else int((nearest >= low_copy).sum()),
            "closest_pairs": [
                {
                    "holdout": clean_rows[hold_idx[i]]["source"],
                    "train_pool": clean_rows[pool_idx[sims[i].argmax()]]["source"],
                    "cosine": round(float(nearest[i]), 4),
                }
                for i in order
            ],
        },
    }


def recovery_step(f: Flipped, args, result: dict) -> None:
    """clean / flipped / fixed (all suggestions accepted) models on the clean hold-out."""
    out, r_out = result[f.name], slot(result, f)
    clean_step(f, args)
    out["clean_train"] = train_run(f.clean_train_zip(), f.dir / sized("run_clean"), args.epochs)
    r_out.update(fixed_step(f, args))
    check = holdout_check(f, args.work, [f.train_zip(), f.clean_train_zip(), f.fixed_zip()])
    strict = set(check.pop("strict_holdout"))
    check["strict_holdout_images"] = len(strict)
    r_out["holdout_check"] = check
    runs = {
        "clean": f.dir / sized("run_clean"),
        "flipped": f.run_flip,
        "fixed": f.dir / sized(f"run_fixed{f.key}"),
    }
    acc = {name: holdout_accuracy(run, f.clean_zip, strict) for name, run in runs.items()}
    for k, part in enumerate(("holdout_acc", "strict_holdout_acc")):
        r_out[part] = {name: round(a[k], 4) for name, a in acc.items()}
        cost = acc["clean"][k] - acc["flipped"][k]
        r_out[part]["recovered_share"] = (
            round((acc["fixed"][k] - acc["flipped"][k]) / cost, 3) if cost > 0 else None
        )
    out["clean_holdout_acc"] = r_out["holdout_acc"]["clean"]


def finetuned_step(f: Flipped, result: dict) -> None:
    """The other backbone: the flipped run's own fine-tuned one. It trained on the flipped
    labels of its train split, so those images are not fully out of sample for it."""
    ft_dir = f.dir / sized(f"review{f.key}_finetuned")
    t0 = time.perf_counter()
    review(ReviewConfig(dataset=f.flipped_zip, out=ft_dir, run=f.run_flip, quiet=True))
    ft_wrong = [r["source"] for r in read_issues(ft_dir) if "wrong_label" in r["kind"]]
    slot(result, f)["review_finetuned_backbone"] = {
        **precision_recall(ft_wrong, f.truth),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def untouched_review(args, work: Path, result: dict, save) -> None:
    """Full bird_drone, fresh embeddings, timed; contact sheet of the top 30."""
    clean_zip = prepare_zip(
        DATASETS / "bird_drone",
        work / "bird_drone" / "clean.zip",
        HOLDOUT_SPLIT,
        group_by=GROUP_BY["bird_drone"],
    )
    rev = work / "bird_drone" / "review_untouched"
    shutil.rmtree(rev, ignore_errors=True)
    load_before = os.getloadavg()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    summary = review(
        ReviewConfig(dataset=clean_zip, out=rev, quiet=True, cache=args.untouched_cache)
    )
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    shared_cache = work / "bird_drone_embeddings.npz"  # the flipped copies hold these images
    if not shared_cache.exists():
        shutil.copy(rev / "embeddings.npz", shared_cache)
    sheet = RESULTS / "review_top30_bird_drone.png"
    top = contact_sheet(rev, clean_zip, sheet)
    result["untouched_bird_drone"] = {
        "images": summary["images"],
        "review_wall_s": round(wall, 1),
        "review_cpu_s": round(cpu, 1),
        "embeddings_from_cache": summary["embeddings_from_cache"],
        "seconds": summary["seconds"],
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "issues": summary["issues"],
        "out_of_sample_accuracy": summary["out_of_sample_accuracy"],
        "classes": summary["classes"],
        "contact_sheet": str(sheet.relative_to(ROOT)),
        "top30": top,
    }
    save()


def main() -> None:
    global SIZE, TRAIN_SIZE, THREADS, WORKERS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["bird_drone", "ddd_visible"])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.10, 0.05])
    parser.add_argument(
        "--retrain",
        nargs="*",
        default=["bird_drone"],
        help="data sets on which to retrain clean/flipped/fixed models",
    )
    parser.add_argument(
        "--retrain-rates",
        nargs="*",
        default=["0.10"],
        help="flip rates at which to retrain (as written: 0.10)",
    )
    parser.add_argument(
        "--finetuned-rates",
        nargs="*",
        default=["0.10"],
        help="rates at which to also review with the flipped run's backbone "
        "(data sets with a model trained on the flipped copy)",
    )
    parser.add_argument(
        "--baselines",
        nargs="*",
        default=["bird_drone", "ddd_visible"],
        help="data sets on which to train the top-losses baseline",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/skyclass-bench/review"))
    parser.add_argument("--out", type=Path, default=RESULTS / "review_quality.json")
    parser.add_argument("--skip-untouched", action="store_true")
    parser.add_argument(
        "--only-untouched",
        action="store_true",
        help="only the untouched bird_drone review (timed); results in "
        "bench/results/review_untouched_bird_drone.json unless --out",
    )
    parser.add_argument(
        "--untouched-cache",
        type=Path,
        help="embeddings cache for the untouched review (then it is not timed "
        "from scratch: embeddings_from_cache says so)",
    )
    parser.add_argument(
        "--phases",
        nargs="+",
        default=["reviews", "retrain", "baselines", "finetuned"],
        help="also: clean, flip, fixed (train those models only, for a "
        "parallel helper process with its own --out)",
    )
    parser.add_argument("--size", type=int, default=224, help="image side (smoke runs only)")
    parser.add_argument(
        "--train-size", type=int, help="image side of the training zips (default: --size)"
    )
    parser.add_argument("--threads", type=int, default=THREADS, help="train --threads")
    parser.add_argument("--workers", type=int, default=WORKERS, help="train --workers")
    parser.add_argument(
        "--recompute-reviews",
        action="store_true",
        help="review the flipped copies again (embeddings stay cached)",
    )
    parser.add_argument(
        "--note", default="", help="what else ran on the machine (written into the results)"
    )
    args = parser.parse_args()
    if args.only_untouched and args.out == RESULTS / "review_quality.json":
        args.out = RESULTS / "review_untouched_bird_drone.json"
    SIZE, THREADS, WORKERS = args.size, args.threads, args.workers
    TRAIN_SIZE = args.train_size or SIZE
    args.work.mkdir(parents=True, exist_ok=True)
    result: dict = {}
    if args.out.exists():  # resume: finished parts are kept
        result = json.loads(args.out.read_text())
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
        "note": args.note,
    }
    result["method"] = __doc__
    result["settings"] = {
        "size": SIZE,
        "train_size": TRAIN_SIZE,
        "epochs": args.epochs,
        "recipe": "default",
        "train_threads": THREADS,
        "train_workers": WORKERS,
        "seed": args.seed,
        "nice": os.nice(0),
        "group_by": GROUP_BY,
    }

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))

    if not args.skip_untouched:
        untouched_review(args, args.work, result, save)
    if args.only_untouched:
        return
    # Phases, cheapest first, so an interrupted run still says the most; each saves.
    # Helper invocations (--phases clean / fixed, another --out) train the retraining
    # models in parallel; file locks make every process reuse what another built.
    copies = {(n, r): Flipped(n, r, args, args.work) for r in args.rates for n in args.datasets}
    retrained = [
        f for f in copies.values() if f.name in args.retrain and f.key in args.retrain_rates
    ]
    # Helpers also score their model on the hold-out (cached in the run folder).
    if "clean" in args.phases:
        for f in retrained:
            clean_step(f, args)
            holdout_probs(f.dir / sized("run_clean"), f.clean_zip)
    if "flip" in args.phases:
        for f in retrained:
            train_run(f.train_zip(), f.run_flip, args.epochs)
            holdout_probs(f.run_flip, f.clean_zip)
            top_loss_ranking(f.run_flip, f.flipped_zip)
    if "fixed" in args.phases:
        for f in retrained:
            fixed_step(f, args)
            holdout_probs(f.dir / sized(f"run_fixed{f.key}"), f.clean_zip)
    if "finetuned-only" in args.phases:  # a helper: waits for the flipped model, reviews
        for f in retrained:
            train_run(f.train_zip(), f.run_flip, args.epochs)
            finetuned_step(f, result)
            save()
    flagged = {}
    if "reviews" in args.phases:
        for key, f in copies.items():
            flagged[key] = review_step(f, args.work, result, args.recompute_reviews)
            save()
    if "retrain" in args.phases:
        for f in retrained:
            baseline_step(f, args, result, flagged[(f.name, f.rate)])
            save()
            recovery_step(f, args, result)
            save()
    if "baselines" in args.phases:
        for key, f in copies.items():
            if f.name in args.baselines and "top_losses" not in slot(result, f):
                baseline_step(f, args, result, flagged[key])
                save()
    if "finetuned" in args.phases:
        for f in copies.values():
            if f.key in args.finetuned_rates and (f.run_flip / "last.pt").exists():
                finetuned_step(f, result)
                save()
    save()
    print(json.dumps({k: v for k, v in result.items() if k not in ("method",)}, indent=1)[:6000])


if __name__ == "__main__":
    main()
