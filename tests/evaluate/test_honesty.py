"""`evaluate` says when its accuracy is not to be trusted: training images among the scored
ones (counted), accuracy near chance, a large train/validation gap."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from skyclass.cli import main
from skyclass.dataset_zip import PreparedDataset
from skyclass.evaluate import EvaluateConfig, evaluate
from skyclass.evaluate.honesty import chance_level, chance_warning, gap_warning


def test_scoring_the_training_split_warns_with_the_count(tiny_run, eva4_zip, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["evaluate", str(tiny_run), "--split", "train", "--out", str(out)]) == 0
    console = capsys.readouterr().out
    n = len(PreparedDataset(eva4_zip).split("train"))
    expected = f"{n} of {n} scored images (100%) are training images of this model"
    assert f"warning: {expected}" in console
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["overlap_with_training"]["in_training"] == n
    assert any(w.startswith(expected) for w in metrics["warnings"])
    assert expected in (out / "report.html").read_text()


def test_the_test_split_has_no_overlap(tiny_run, tmp_path):
    metrics = evaluate(EvaluateConfig(target=str(tiny_run), out=str(tmp_path / "r"), quiet=True))
    assert metrics["overlap_with_training"]["checked"]
    assert metrics["overlap_with_training"]["in_training"] == 0
    assert not any("training images of this model" in w for w in metrics["warnings"])


def test_a_folder_is_hashed_and_its_training_photos_counted(tiny_run, eva4_zip, eva4_dir, tmp_path):
    dataset = PreparedDataset(eva4_zip)
    chosen = dataset.split("train")[:3] + dataset.split("test")[:2]
    folder = tmp_path / "photos"
    for i, entry in enumerate(chosen):
        dest = folder / entry.label / f"renamed-{i}{Path(entry.source).suffix}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(eva4_dir / entry.source, dest)  # a new name: only the bytes match
    metrics = evaluate(
        EvaluateConfig(target=str(tiny_run), data=str(folder), out=str(tmp_path / "r"), quiet=True)
    )
    overlap = metrics["overlap_with_training"]
    assert (overlap["scored"], overlap["in_training"]) == (5, 3)
    assert any(w.startswith("3 of 5 scored images (60%)") for w in metrics["warnings"])


def test_chance_and_gap_warnings():
    assert chance_level([0, 0, 0, 1], 4) == 0.75  # the most common class beats 1/4
    assert chance_level([0, 1, 2, 3], 4) == 0.25
    assert chance_warning(0.34, 0.25) is not None and "within 10%" in chance_warning(0.34, 0.25)
    assert chance_warning(0.36, 0.25) is None
    history = [
        {"epoch": 1, "train_acc": 0.70, "val_acc": 0.65},
        {"epoch": 2, "train_acc": 0.99, "val_acc": 0.80},
    ]
    assert gap_warning(history, 1) is None
    warning = gap_warning(history, 2)
    assert warning is not None and "19% above validation accuracy 80.0%" in warning
    assert gap_warning(history, None) == warning  # unknown epoch: the last one
