"""Pictures and the HTML page from hand-written inputs and real photos (no model needed)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skyclass.evaluate import plots
from skyclass.evaluate.html import render_report
from skyclass.evaluate.metrics import classification_report

EVA4_NAMES = ["Flying Birds", "Large QuadCopters", "Small QuadCopters", "Winged Drones"]


def test_short_names() -> None:
    assert plots.short_names(EVA4_NAMES) == ["FB", "LQ", "SQ", "WD"]
    assert plots.short_names(["bird", "drone"]) == ["bird", "drone"]
    assert plots.short_names(["Small Birds", "Small Bats"]) == ["Small Bi", "Small Ba"]
    assert plots.short_names(["bird", "drone"], ["B", "D"]) == ["B", "D"]
    with pytest.raises(ValueError, match="needs 2 names"):
        plots.short_names(["bird", "drone"], ["B"])


def _history(lrs: list[float]) -> list[dict]:
    return [
        {
            "epoch": e,
            "train_acc": 0.5 + 0.04 * e,
            "test_acc": 0.45 + 0.04 * e,
            "train_loss": 1.0 / e,
            "test_loss": 1.1 / e,
            "lr": lr,
        }
        for e, lr in enumerate(lrs, 1)
    ]


def test_lr_drops_marks_plateau_steps_not_cosine() -> None:
    assert plots.lr_drops(_history([0.3, 0.3, 0.03, 0.03, 0.003])) == [
        (3.0, 0.3, 0.03),
        (5.0, 0.03, 0.003),
    ]
    cosine = [0.01 * (1 + np.cos(np.pi * e / 20)) / 2 for e in range(10)]
    assert plots.lr_drops(_history(cosine)) == []


def test_lr_drops_follow_the_runs_scheduler() -> None:
    """A 3-epoch cosine run falls >20% an epoch: not a drop; a plateau step always is."""
    short_cosine = _history([0.00908, 0.00353, 8.74e-07])
    assert plots.lr_drops(short_cosine, "cosine") == []
    assert plots.lr_drops(short_cosine, "onecycle") == []
    assert plots.lr_drops(_history([0.3, 0.03]), "plateau") == [(2.0, 0.3, 0.03)]


def test_curves_png(tmp_path: Path) -> None:
    out = plots.plot_curves(_history([0.3, 0.3, 0.03]), tmp_path / "curves.png")
    with Image.open(out) as img:
        img.load()
        assert img.size == (2000, 420)  # accuracy, train loss, test loss, LR
    assert plots.plot_curves([], tmp_path / "none.png") is None


def _read_eva4(eva4_images: dict[str, list[Path]]) -> tuple[list[Path], np.ndarray]:
    files = [p for c in EVA4_NAMES for p in eva4_images[c][:6]]
    targets = np.repeat(np.arange(4), 6)
    return files, targets


def test_galleries_have_the_grid_sizes(tmp_path: Path, eva4_images) -> None:
    files, targets = _read_eva4(eva4_images)
    # Class 0: 6 mistakes, class 1: 2, class 2: none, class 3: 1 -> 4 rows x 6 columns.
    mistakes = [{"index": i, "target": 0, "pred": 1, "confidence": 0.5 + i / 100} for i in range(6)]
    mistakes += [{"index": 6 + i, "target": 1, "pred": 2, "confidence": 0.6} for i in range(2)]
    mistakes += [{"index": 18, "target": 3, "pred": 0, "confidence": 0.9}]
    rows = plots.misclassified_grid(mistakes, 4)
    assert [len(r) for r in rows] == [6, 2, 0, 1]
    assert [m["index"] for m in rows[0]] == [5, 4, 3, 2, 1, 0]  # most confident first
    labels = plots.short_names(EVA4_NAMES)
    wrong = plots.plot_misclassified(
        rows, labels, lambda i: files[i].read_bytes(), tmp_path / "misclassified.png"
    )
    preds = targets.copy()
    picked = plots.pick_correct(targets, preds, count=7)
    assert sorted(targets[picked].tolist()) == [0, 0, 1, 1, 2, 2, 3]  # classes take turns
    right = plots.plot_correct(
        picked,
        targets,
        np.full(24, 0.9),
        labels,
        lambda i: files[i].read_bytes(),
        tmp_path / "correct.png",
    )
    sizes = ((wrong, 4, 6, plots.ROW_LABEL_PX), (right, 2, 5, 0))
    for png, r, c, label_px in sizes:
        with Image.open(png) as img:
            img.load()
            assert img.size == (label_px + c * 180, r * 180 + 40)


def test_misclassified_grid_caps_at_ten_per_class() -> None:
    mistakes = [{"index": i, "target": 1, "pred": 0, "confidence": i / 30} for i in range(25)]
    rows = plots.misclassified_grid(mistakes, 2)
    assert [len(r) for r in rows] == [0, 10]
    assert rows[1][0]["index"] == 24


def test_thumbnail_shows_the_photo_not_the_model_input(eva4_images) -> None:
    path = eva4_images["Winged Drones"][0]
    with Image.open(path) as img:
        original = np.asarray(img.convert("RGB").resize((32, 32)), dtype=np.float64)
        side = max(img.size)
    thumb = plots.thumbnail(path.read_bytes(), 64)
    assert thumb.dtype == np.uint8 and max(thumb.shape[:2]) == min(64, side)
    shown = np.asarray(Image.fromarray(thumb).resize((32, 32)), dtype=np.float64)
    assert np.abs(shown - original).mean() < 6  # same colours: not normalised, not inverted
    assert plots.thumbnail(b"not an image", 50).shape == (50, 50, 3)


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    names = ["<b>bird</b>", "drone"]
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    metrics = classification_report(np.array([0, 1, 1]), probs, names, ["x", "y", "z"])
    metrics["skipped"] = [{"path": "bird/bad.jpg", "reason": "corrupt", "detail": "truncated"}]
    cm_png = plots.plot_confusion(np.array(metrics["confusion_matrix"]), names, tmp_path / "cm.png")
    page = render_report(
        metrics,
        {"confusion_matrix": cm_png},
        {
            "title": "run",
            "subtitle": "test",
            "model": {"epoch": 2},
            "config": {"data": "https://example.com/data.zip", "augment": {"hflip": 0.5}},
            "data": {"path": "x.zip"},
            "summary": {"files_per_class": {"bird": 2}},
        },
    )
    refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', page, flags=re.I)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert not re.search(r'(?:src|href)\s*=\s*["\']?\s*(?:https?:)?//', page, flags=re.I)
    assert "<b>bird</b>" not in page and "&lt;b&gt;bird&lt;/b&gt;" in page
    assert "bird/bad.jpg" in page and "augment hflip" in page


def _ink_columns(png: Path, top: int, bottom: int) -> np.ndarray:
    """Columns of rows [top, bottom) of a PNG that hold any non-white pixel."""
    with Image.open(png) as img:
        band = np.asarray(img.convert("L"))[top:bottom]
    return np.flatnonzero((band < 200).any(axis=0))


@pytest.mark.parametrize("per_class", [1, 10])
def test_misclassified_gallery_is_as_wide_as_its_title(tmp_path: Path, eva4_images, per_class):
    """The title is drawn whole, with white space either side, and every row is labelled."""
    files = [p for c in EVA4_NAMES for p in eva4_images[c][:10]]
    mistakes = [
        {"index": 10 * t + i, "target": t, "pred": (t + 1) % 4, "confidence": 0.8}
        for t in range(4)
        for i in range(per_class)
    ]
    png = plots.plot_misclassified(
        plots.misclassified_grid(mistakes, 4),
        plots.short_names(EVA4_NAMES),
        lambda i: files[i].read_bytes(),
        tmp_path / "m.png",
    )
    with Image.open(png) as img:
        width, height = img.size
    title = "Misclassified (most confident mistakes first)"
    assert width >= plots.text_width_px(title, plots.TITLE_FONTSIZE)
    assert width == max(
        plots.ROW_LABEL_PX + per_class * plots.CELL_PX,
        plots.gallery_size_px(4, per_class, title, row_labels=True)[0],
    )
    ink = _ink_columns(png, 0, plots.HEADER_PX)
    assert ink.size and ink[0] > 2 and ink[-1] < width - 3  # not cut at either edge
    label_ink = _ink_columns(png, plots.HEADER_PX, height)
    assert label_ink[0] < (width - per_class * plots.CELL_PX) / 2  # the row-label column


def test_non_latin_class_names_draw_without_glyph_warnings(
    tmp_path: Path, eva4_images, recwarn, caplog
) -> None:
    names = ["鸟", "ドローン", "드론", "🐦 bird"]
    files = [eva4_images["Flying Birds"][0]]
    mistakes = [{"index": 0, "target": t, "pred": (t + 1) % 4, "confidence": 0.8} for t in range(4)]
    plots.plot_misclassified(
        plots.misclassified_grid(mistakes, 4),
        names,
        lambda i: files[i].read_bytes(),
        tmp_path / "m.png",
    )
    plots.plot_confusion(np.eye(4, dtype=int), names, tmp_path / "cm.png")
    assert not [w for w in recwarn if "missing from font" in str(w.message)]
    assert not [r for r in caplog.records if "findfont" in r.getMessage()]


def test_report_tables_show_formatted_numbers_and_chosen_settings_only() -> None:
    names = ["bird", "drone"]
    metrics = classification_report(
        np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]), names, ["a", "b"]
    )
    metrics["skipped"] = []
    page = render_report(
        metrics,
        {},
        {
            "title": "birds",
            "subtitle": "",
            "model": {
                "checkpoint": "r/best.pt",
                "which": "best",
                "version": 1,
                "scaler": None,
                "epoch": 3,
                "dataset_fingerprint": "f" * 64,
                "training_metrics": {"test_acc": 0.47916666666666667, "lr": 2.1e-05},
            },
            "config": {
                "recipe": "default",
                "lr": 0.01,
                "weight_decay": 0.0001,
                "threads": 0,
                "workers": -1,
                "quiet": True,
                "out": "r",
                "scheduler": "cosine",
                "plateau_factor": 0.1,
                "augment": {"hflip": 0.5},
            },
            "data": {"path": "d.zip", "evaluated": 2, "skipped": 0},
            "summary": {
                "classes": {"bird": {"found": 3, "kept": 2, "skipped": {"corrupt": 1}}},
                "totals": {"found": 3, "kept": 2, "skipped": 1},
            },
        },
    )
    assert "0.47916666666666667" not in page and "47.92%" in page
    for internal in (
        "scaler",
        "threads",
        "workers",
        "quiet",
        "dataset_fingerprint",
        "plateau",
        '<td class="l">version',
    ):
        assert internal not in page, internal
    assert "1e-4" in page and "augment hflip" in page
    assert page.count("left out by prepare") >= 1 and ">skipped<" not in page
