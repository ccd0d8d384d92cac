"""Checks that say when a report's accuracy should not be trusted as it stands.

- Overlap: the images scored include images the model was trained on (same sha256 as a
  row of the training split in the run's dataset manifest; a raw folder's files are hashed).
- Chance: the accuracy is within CHANCE_MARGIN of what always guessing the most common class
  (or a uniform guess) would score.
- Selection: best.pt was chosen on the test split (a two-way zip from an older skyclass).
- Over-fitting: at the selected epoch the training accuracy is more than GAP_LIMIT above
  the validation accuracy.
Each finding is one sentence with what to try; `evaluate` puts them in metrics.json
("warnings"), report.html and on the console.
"""

from __future__ import annotations

import hashlib
from collections import Counter

from skyclass.dataset_zip import PreparedDataset
from skyclass.errors import DatasetFormatError, EvaluateError

CHANCE_MARGIN = 0.10
GAP_LIMIT = 0.15


def training_hashes(model, dataset_of_run) -> tuple[set[str], str | None]:
    """sha256 of the run's training images, or (empty, why not) when they cannot be read."""
    try:
        dataset = PreparedDataset(dataset_of_run(model))
    except (EvaluateError, DatasetFormatError, OSError) as exc:
        return set(), f"cannot check for overlap with the training images: {exc}"
    return {e.sha256 for e in dataset.split("train")}, None


def scored_hashes(data) -> list[str]:
    """sha256 of each scored sample: from the manifest for a dataset zip, else hashed here."""
    if data.kind == "dataset":
        by_path = {e.source or e.path: e.sha256 for e in PreparedDataset(data.path).entries}
        return [by_path.get(s.path, "") for s in data.samples]
    hashes = []
    for sample in data.samples:
        try:
            hashes.append(hashlib.sha256(sample.read()).hexdigest())
        except OSError:
            hashes.append("")  # unreadable: predict() lists it as skipped
    return hashes


def overlap(model, data, dataset_of_run) -> dict:
    """How many scored images the model saw in training (exact bytes)."""
    if model.kind not in ("run", "bundle"):
        return {"checked": False}
    train, why = training_hashes(model, dataset_of_run)
    if why is not None:
        return {"checked": False, "reason": why}
    hashes = scored_hashes(data)
    shared = [s.path for s, h in zip(data.samples, hashes, strict=True) if h and h in train]
    return {
        "checked": True,
        "scored": len(hashes),
        "in_training": len(shared),
        "examples": shared[:5],
    }


def overlap_warning(result: dict) -> str | None:
    if not result.get("checked") or not result["in_training"]:
        return None
    n, total = result["in_training"], result["scored"]
    return (
        f"{n} of {total} scored images ({n / total:.0%}) are training images of this "
        f"model (same sha256, e.g. {result['examples'][0]}): the accuracy is optimistic. "
        "Score the test split (the default) or a folder of photos the run never saw"
    )


def chance_level(targets: list[int], num_classes: int) -> float:
    """The better of a uniform guess and always guessing the most common class."""
    if not targets:
        return 1.0 / max(num_classes, 1)
    most = Counter(targets).most_common(1)[0][1]
    return max(1.0 / max(num_classes, 1), most / len(targets))


def chance_warning(accuracy: float, chance: float) -> str | None:
    if accuracy >= chance + CHANCE_MARGIN:
        return None
    return (
        f"accuracy {accuracy:.1%} is within {CHANCE_MARGIN:.0%} of chance ({chance:.1%}, "
        "always guessing the most common class): the model has learnt little. Try more "
        "epochs, a lower --lr, more photos per class, or check the labels"
    )


def selected_row(history: list[dict], epoch: int | None) -> dict | None:
    rows = [r for r in history if r.get("epoch") == epoch] or history[-1:]
    return rows[0] if rows else None


def gap_warning(history: list[dict], epoch: int | None) -> str | None:
    """Train accuracy far above validation accuracy at the selected epoch: over-fitting."""
    row = selected_row(history, epoch)
    if row is None:
        return None
    train = row.get("train_acc")
    val = row.get("val_acc", row.get("test_acc"))
    if train is None or val is None or train - val <= GAP_LIMIT:
        return None
    return (
        f"training accuracy {train:.1%} is {train - val:.0%} above validation accuracy "
        f"{val:.1%} (epoch {row.get('epoch')}): the model over-fits. Try more photos, "
        "stronger augmentation, more dropout or --weight-decay, or fewer epochs / a "
        "higher --unfreeze-from"
    )


def selection_warning(training_metrics: dict) -> str | None:
    """best.pt chosen on the test split: a two-way dataset zip from an older skyclass."""
    if training_metrics.get("validation_split") != "test":
        return None
    return (
        "the model was selected on its test split (a two-way dataset without a validation "
        "split): its test accuracy is optimistic. Prepare the photos again (train/val/test "
        "by default) and retrain for an honest figure"
    )


def findings(
    metrics: dict,
    targets: list[int],
    history: list[dict],
    epoch: int | None,
    overlap_result: dict,
    training_metrics: dict,
) -> list[str]:
    """Every warning that applies, most serious first."""
    found = [
        overlap_warning(overlap_result),
        selection_warning(training_metrics),
        chance_warning(metrics["accuracy"], chance_level(targets, len(metrics["class_names"]))),
        gap_warning(history, epoch),
    ]
    return [w for w in found if w]
