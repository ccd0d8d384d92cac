"""best.pt is chosen on the validation split and the test split is scored once, with it;
old two-way zips still train; `--resume --epochs N` extends a finished run; the last short
training batch is kept."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest
import torch

from skyclass.checkpoint import load_checkpoint, read_history
from skyclass.cli import main
from skyclass.dataset_zip import MANIFEST_COLUMNS, MANIFEST_NAME, REPORT_NAME, PreparedDataset
from skyclass.train import TrainConfig, train
from skyclass.train.distributed import DistContext
from skyclass.train.loaders import make_loaders
from skyclass.train.loop import NO_VAL_WARNING

TINY = {
    "width_mult": 0.25,
    "pretrained": False,
    "workers": 0,
    "quiet": True,
    "seed": 0,
    "amp": "off",
    "unfreeze_from": 0,
    "batch_size": 8,
}
TINY_ARGS = [
    "--width-mult",
    "0.25",
    "--no-pretrained",
    "--workers",
    "0",
    "--amp",
    "off",
    "--unfreeze-from",
    "0",
    "--batch-size",
    "8",
    "--quiet",
]
TWO = ("Flying Birds", "Winged Drones")


def _rewrite(src: Path, dst: Path, rows_of, classes=None) -> None:
    """Copy a dataset zip with its manifest rows replaced by rows_of(rows) (and classes)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        rows = list(csv.DictReader(io.StringIO(zin.read(MANIFEST_NAME).decode())))
        report = json.loads(zin.read(REPORT_NAME))
        if classes is not None:
            report["class_names"] = list(classes)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows_of(rows))
        for info in zin.infolist():
            if info.filename not in (MANIFEST_NAME, REPORT_NAME):
                zout.writestr(info, zin.read(info.filename))
        zout.writestr(MANIFEST_NAME, buf.getvalue())
        zout.writestr(REPORT_NAME, json.dumps(report))


def _swapped_validation(rows: list[dict]) -> list[dict]:
    """Two classes; validation = the test images with their labels swapped, so validation
    accuracy is exactly 1 - test accuracy at every epoch: the best epoch on validation is the
    worst on test whenever the accuracy moves at all."""
    rows = [r for r in rows if r["class"] in TWO and r["split"] != "val"]
    swapped = [
        {**r, "split": "val", "class": TWO[1 - TWO.index(r["class"])]}
        for r in rows
        if r["split"] == "test"
    ]
    return rows + swapped


def test_best_pt_is_chosen_on_validation_and_test_is_scored_once_with_it(eva4_zip, tmp_path):
    data = tmp_path / "swapped.zip"
    _rewrite(eva4_zip, data, _swapped_validation, classes=TWO)
    run = tmp_path / "run"
    summary = train(
        TrainConfig(
            data=str(data),
            out=str(run),
            epochs=4,
            lr=0.2,
            scheduler="constant",
            warmup_epochs=0,
            **TINY,
        )
    )
    val = [r["val_acc"] for r in read_history(run)]
    assert len(set(val)) > 1, f"validation accuracy never moved ({val}): nothing was tested"
    best_epoch = val.index(max(val)) + 1  # the first epoch with the best validation accuracy
    test_by_epoch = [1 - v for v in val]
    assert test_by_epoch.index(max(test_by_epoch)) + 1 != best_epoch  # they disagree
    best = load_checkpoint(run / "best.pt")
    assert best["epoch"] == best["metrics"]["best_epoch"] == summary["best_epoch"] == best_epoch
    # The test figure is best.pt's, scored after training, never the best of the epochs.
    test = json.loads((run / "test.json").read_text())
    assert test["test_acc"] == pytest.approx(1 - max(val), abs=1e-9)
    assert summary["test_acc"] == test["test_acc"] == best["metrics"]["test_acc"]
    assert test["test_acc"] < max(test_by_epoch)


def test_two_way_zip_trains_and_says_validation_was_the_test_split(eva4_zip, tmp_path, capsys):
    old = tmp_path / "two_way.zip"
    _rewrite(eva4_zip, old, lambda rows: [r for r in rows if r["split"] != "val"])
    assert PreparedDataset(old).validation_split == "test"
    run = tmp_path / "run"
    assert main(["train", str(old), "--out", str(run), "--epochs", "1", *TINY_ARGS[:-1]]) == 0
    out = capsys.readouterr()
    warning = NO_VAL_WARNING.format(data=old)
    assert f"warning: {warning}" in out.err and f"warning: {warning}" in out.out
    best = load_checkpoint(run / "best.pt")
    assert best["metrics"]["validation_split"] == "test"
    assert json.loads((run / "test.json").read_text())["warnings"] == [warning]


def test_resume_a_finished_run_to_more_epochs(eva4_zip, tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", str(eva4_zip), "--out", str(run), *TINY_ARGS, "--batch-size", "32"]
    assert main([*base, "--epochs", "1"]) == 0
    assert main([*base, "--resume"]) == 0  # finished, no --epochs: nothing more to do
    assert [r["epoch"] for r in read_history(run)] == [1]
    assert main([*base, "--resume", "--epochs", "2"]) == 0
    assert [r["epoch"] for r in read_history(run)] == [1, 2]
    last = load_checkpoint(run / "last.pt")
    assert last["epoch"] == 2 and last["config"]["epochs"] == 2
    assert json.loads((run / "config.json").read_text())["config"]["epochs"] == 2
    capsys.readouterr()
    assert main([*base, "--resume", "--epochs", "1"]) == 2
    assert "already trained 2 epochs" in capsys.readouterr().err


@pytest.mark.parametrize(("remainder", "dropped"), [(2, False), (1, True)])
def test_the_last_short_batch_is_kept_unless_it_holds_one_image(eva4_zip, remainder, dropped):
    dataset = PreparedDataset(eva4_zip)
    n = len(dataset.split("train"))
    batch = n - remainder  # one full batch and a short one of `remainder` images
    config = TrainConfig(data=str(eva4_zip), out="unused", batch_size=batch, workers=0)
    loader, _ = make_loaders(config, dataset, DistContext(), torch.Generator())
    sizes = [len(y) for _, y in loader]
    assert sizes == ([batch] if dropped else [batch, remainder])
