"""The report's pictures: training curves, confusion matrix, galleries of right and wrong.

matplotlib with the Agg backend (no display needed). Gallery images are decoded from the
image bytes and shown as the person saw them, never by inverting the normalisation of the
model input. Galleries use a fixed cell size: a grid of R x C images is R * CELL_PX +
HEADER_PX high and C * CELL_PX wide (plus the row-label column of the misclassified
gallery), or as wide as its title when that is wider, so the title is never cut.

Class names may be in any script: text is drawn with a chain of fonts (`font_families`),
DejaVu Sans first, then CJK and symbol fonts where installed, then matplotlib's own "Last
Resort" font, so a glyph no font has shows as a placeholder box and no warning is printed.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.font_manager as font_manager
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from skyclass.images import ImageError, decode_image

DPI = 100
CELL_PX = 180  # one gallery image with its title
HEADER_PX = 40  # the gallery's headline
ROW_LABEL_PX = 120  # the misclassified gallery's left column: the row's true class
TITLE_FONTSIZE = 12
TITLE_MARGIN_PX = 12  # free space left and right of a gallery's title
MISCLASSIFIED_PER_CLASS = 10
CORRECT_COUNT = 25
CORRECT_COLS = 5
SHORT_NAME_LIMIT = 8  # names longer than this get initials in plots
# Tried in order for every character. Debian packages: fonts-dejavu-core, fonts-wqy-microhei
# (Chinese, Japanese kana, Korean), fonts-noto-cjk, fonts-symbola (monochrome emoji); the
# Last Resort font ships with matplotlib >= 3.10 and draws a box for anything else.
FONT_FALLBACK = (
    "DejaVu Sans",
    "WenQuanYi Micro Hei",
    "Noto Sans CJK JP",
    "Droid Sans Fallback",
    "Symbola",
    "Last Resort High-Efficiency",
)

# Where each curve is in history.jsonl: the key `train` writes, then (validation only) the key
# runs from before the 3-way split wrote (`test_*`: they validated on their test split).
HISTORY_FIELDS = {
    "epoch": ("epoch",),
    "train_acc": ("train_acc",),
    "val_acc": ("val_acc", "test_acc"),
    "train_loss": ("train_loss",),
    "val_loss": ("val_loss", "test_loss"),
    "lr": ("lr",),
}


# ---------------------------------------------------------------------------- fonts


@functools.lru_cache(maxsize=1)
def font_families() -> list[str]:
    """The FONT_FALLBACK families this machine has, registering ones installed after
    matplotlib built its font cache (a font package installed later would be missed)."""
    known = {f.name for f in font_manager.fontManager.ttflist}
    if not all(name in known for name in FONT_FALLBACK):
        for path in font_manager.findSystemFonts():
            with contextlib.suppress(Exception):  # an unreadable font file: not ours to fix
                family = font_manager.get_font(path).family_name
                if family in FONT_FALLBACK and family not in known:
                    font_manager.fontManager.addfont(path)
                    known.add(family)
    return [name for name in FONT_FALLBACK if name in known] or ["sans-serif"]


@contextlib.contextmanager
def any_script() -> Iterator[None]:
    """Draw with the fallback font chain; a glyph no font has is a box, not a warning."""
    with plt.rc_context({"font.family": font_families()}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from font")
        yield


def text_width_px(text: str, fontsize: float) -> float:
    """How wide `text` is drawn at `fontsize` points (DPI pixels per inch)."""
    fig = Figure(dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    with any_script():
        label = fig.text(0, 0, text, fontsize=fontsize)
        return label.get_window_extent(canvas.get_renderer()).width


# ---------------------------------------------------------------------------- names


def short_names(names: Sequence[str], override: Sequence[str] | None = None) -> list[str]:
    """Labels that fit under a thumbnail: given ones, or initials when names are long.

    'Flying Birds' -> 'FB', 'Large QuadCopters' -> 'LQ' (what the reference project used);
    short names such as 'bird' stay as they are. Clashing initials fall back to prefixes.
    """
    names = list(names)
    if override:
        override = list(override)
        if len(override) != len(names):
            raise ValueError(
                f"--short-names needs {len(names)} names (one per class: {names}), "
                f"got {len(override)}"
            )
        return override
    if all(len(n) <= SHORT_NAME_LIMIT for n in names):
        return names
    shorts = [_initials(n) for n in names]
    if len(set(shorts)) == len(shorts):
        return shorts
    return _unique_prefixes(names)


def _initials(name: str) -> str:
    words = [w for w in re.split(r"[\s_\-]+", name) if w]
    if len(words) <= 1:
        return name[:SHORT_NAME_LIMIT]
    return "".join(w[0].upper() for w in words)


def _unique_prefixes(names: list[str]) -> list[str]:
    for length in range(3, max(len(n) for n in names) + 1):
        shorts = [n[:length] for n in names]
        if len(set(shorts)) == len(shorts):
            return shorts
    return names


# ---------------------------------------------------------------------------- images


def thumbnail(raw: bytes, size: int) -> np.ndarray:
    """The photo as a person sees it (EXIF-rotated RGB), fitted into size x size."""
    try:
        img = decode_image(raw)
    except ImageError:
        return np.full((size, size, 3), 128, dtype=np.uint8)
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img)


def gallery_size_px(rows: int, cols: int, title: str, row_labels: bool = False) -> tuple[int, int]:
    """(width, height) in pixels of a gallery PNG: the grid, or the title if that is wider."""
    grid = (ROW_LABEL_PX if row_labels else 0) + cols * CELL_PX
    title_px = math.ceil(text_width_px(title, TITLE_FONTSIZE)) + 2 * TITLE_MARGIN_PX
    return max(grid, title_px), rows * CELL_PX + HEADER_PX


def _gallery_figure(
    rows: int, cols: int, title: str, row_labels: Sequence[str] | None = None
) -> tuple[Figure, np.ndarray]:
    """A figure of rows x cols image cells under `title`, the grid centred; with
    `row_labels`, a left column naming each row."""
    width, height = gallery_size_px(rows, cols, title, row_labels is not None)
    label_px = ROW_LABEL_PX if row_labels is not None else 0
    x0 = (width - label_px - cols * CELL_PX) / 2 + label_px  # where the image cells start
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    fig.suptitle(title, fontsize=TITLE_FONTSIZE, y=1 - (HEADER_PX * 0.25) / height, va="top")
    axes = np.empty((rows, cols), dtype=object)
    title_px, pad_px = 26, 6
    for r, label in enumerate(row_labels or []):
        fig.text(
            (x0 - pad_px) / width,
            ((rows - 1 - r) * CELL_PX + CELL_PX / 2) / height,
            f"true class\n{label}",
            ha="right",
            va="center",
            fontsize=10,
        )
    for r in range(rows):
        for c in range(cols):
            left = (x0 + c * CELL_PX + pad_px) / width
            bottom = ((rows - 1 - r) * CELL_PX + pad_px) / height
            ax = fig.add_axes(
                (
                    left,
                    bottom,
                    (CELL_PX - 2 * pad_px) / width,
                    (CELL_PX - title_px - pad_px) / height,
                )
            )
            ax.set_axis_off()
            axes[r, c] = ax
    return fig, axes


def _show(ax: plt.Axes, image: np.ndarray, title: str, colour: str) -> None:
    ax.imshow(image)
    ax.set_title(title, fontsize=8, color=colour, pad=3)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- curves


def _series(history: list[dict], field: str) -> list[float] | None:
    for key in HISTORY_FIELDS[field]:
        values = [row.get(key) for row in history]
        numbers = [float(v) for v in values if isinstance(v, (int, float))]
        if len(numbers) == len(values):
            return numbers
    return None


def lr_drops(history: list[dict], scheduler: str | None = None) -> list[tuple[float, float, float]]:
    """(epoch, old lr, new lr) wherever the LR fell by more than 20% between epochs.

    Only a schedule that steps between epochs (`plateau`) has drops: a per-step schedule
    (cosine, one-cycle) lowers the LR continuously, by more than 20% an epoch on short runs,
    so it gets no marks. With the scheduler unknown, a 20% threshold tells plateau/step
    drops from the small epoch-to-epoch steps of a long cosine schedule.
    """
    lrs = _series(history, "lr")
    epochs = _series(history, "epoch") or list(range(1, len(history) + 1))
    if not lrs or scheduler not in (None, "plateau"):
        return []
    return [
        (epochs[i], lrs[i - 1], lrs[i]) for i in range(1, len(lrs)) if lrs[i] < 0.8 * lrs[i - 1]
    ]


def plot_curves(history: list[dict], path: Path, scheduler: str | None = None) -> Path | None:
    """Accuracy (train + validation), train loss, validation loss and the learning rate
    against epoch; LR drops dashed."""
    if not history:
        return None
    with any_script():
        return _plot_curves(history, path, scheduler)


def _plot_curves(history: list[dict], path: Path, scheduler: str | None) -> Path:
    epochs = _series(history, "epoch") or list(range(1, len(history) + 1))
    panels = [
        (
            "Accuracy",
            [("train", _series(history, "train_acc")), ("validation", _series(history, "val_acc"))],
        ),
        ("Train loss", [("train", _series(history, "train_loss"))]),
        ("Validation loss", [("validation", _series(history, "val_loss"))]),
        ("Learning rate (end of epoch)", [("head LR", _series(history, "lr"))]),
    ]
    drops = lr_drops(history, scheduler)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), dpi=DPI)
    for n, (ax, (title, lines)) in enumerate(zip(axes, panels, strict=True)):
        for label, values in lines:
            if values is not None:
                ax.plot(epochs, values, marker="o", markersize=3, label=label)
        for i, (epoch, old, new) in enumerate(drops):
            # The LR changed between the previous epoch and this one.
            ax.axvline(
                epoch - 0.5,
                color="grey",
                linestyle="--",
                linewidth=1,
                label="LR drop" if i == 0 else None,
            )
            if n == 0:
                ax.annotate(
                    f" LR {old:.2g}→{new:.2g}",
                    (epoch - 0.5, 0.02),
                    fontsize=7,
                    xycoords=("data", "axes fraction"),
                    color="grey",
                    rotation=90,
                    va="bottom",
                    ha="right",
                )
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if title.startswith("Learning rate"):
            _lr_axis(ax, _series(history, "lr"))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _lr_axis(ax: plt.Axes, lrs: list[float] | None) -> None:
    """A log scale when the LR spans more than 10x (plateau drops, cosine's tail)."""
    positive = [v for v in lrs or [] if v > 0]
    if positive and max(positive) > 10 * min(positive):
        ax.set_yscale("log")
    if not lrs:
        ax.text(
            0.5,
            0.5,
            "no learning rate recorded",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="grey",
        )


# ---------------------------------------------------------------------------- confusion


def plot_confusion(cm: np.ndarray, labels: Sequence[str], path: Path) -> Path:
    """Counts and row-normalised (recall per true class) side by side."""
    with any_script():
        return _plot_confusion(cm, labels, path)


def _plot_confusion(cm: np.ndarray, labels: Sequence[str], path: Path) -> Path:
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    n = len(labels)
    side = max(3.5, 0.9 * n + 1.8)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 0.8, side), dpi=DPI)
    for ax, values, title, fmt in (
        (axes[0], cm, "Counts", "{:d}"),
        (axes[1], norm, "Row-normalised (recall)", "{:.2f}"),
    ):
        ax.imshow(values / max(values.max(), 1e-9), cmap="Blues", vmin=0, vmax=1)
        for (i, j), v in np.ndenumerate(values):
            strong = values[i, j] > 0.55 * values.max()
            ax.text(
                j,
                i,
                fmt.format(int(v) if fmt == "{:d}" else v),
                ha="center",
                va="center",
                color="white" if strong else "black",
                fontsize=10,
            )
        ax.set_xticks(range(n), labels, rotation=45 if n > 4 else 0)
        ax.set_yticks(range(n), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------------------- galleries


def misclassified_grid(
    mistakes: list[dict], num_classes: int, per_class: int = MISCLASSIFIED_PER_CLASS
) -> list[list[dict]]:
    """Row i: up to `per_class` mistakes whose true class is i, most confident first.

    `mistakes` carry "target" (true index) and "confidence" (of the wrong prediction).
    """
    rows: list[list[dict]] = [[] for _ in range(num_classes)]
    for m in sorted(mistakes, key=lambda m: -m["confidence"]):
        if len(rows[m["target"]]) < per_class:
            rows[m["target"]].append(m)
    return rows


def plot_misclassified(
    rows: list[list[dict]], labels: Sequence[str], read: Callable[[int], bytes], path: Path
) -> Path:
    """One row per true class, labelled on the left; each image titled
    `true → predicted (p=0.87)`."""
    with any_script():
        return _plot_misclassified(rows, labels, read, path)


def _plot_misclassified(
    rows: list[list[dict]], labels: Sequence[str], read: Callable[[int], bytes], path: Path
) -> Path:
    cols = max(1, max(len(r) for r in rows))
    fig, axes = _gallery_figure(
        len(rows), cols, "Misclassified (most confident mistakes first)", row_labels=labels
    )
    for r, row in enumerate(rows):
        if not row:
            axes[r, 0].text(
                0.5,
                0.5,
                f"no mistakes\nfor {labels[r]}",
                ha="center",
                va="center",
                fontsize=9,
                transform=axes[r, 0].transAxes,
            )
        for c, m in enumerate(row):
            title = f"{labels[m['target']]} → {labels[m['pred']]} (p={m['confidence']:.2f})"
            _show(axes[r, c], thumbnail(read(m["index"]), CELL_PX), title, "firebrick")
    return _save(fig, path)


def pick_correct(
    targets: np.ndarray, preds: np.ndarray, count: int = CORRECT_COUNT, seed: int = 0
) -> list[int]:
    """Up to `count` correctly classified indices, the classes taking turns.

    Taking turns shows every class even when one dominates; a seeded shuffle inside each class
    shows typical images rather than only the easiest ones.
    """
    rng = np.random.default_rng(seed)
    per_class = []
    for k in np.unique(targets):
        idx = np.flatnonzero((targets == k) & (preds == k))
        per_class.append(list(rng.permutation(idx)))
    picked: list[int] = []
    while len(picked) < count and any(per_class):
        for queue in per_class:
            if queue and len(picked) < count:
                picked.append(int(queue.pop(0)))
    return picked


def plot_correct(
    picked: list[int],
    targets: np.ndarray,
    confidence: np.ndarray,
    labels: Sequence[str],
    read: Callable[[int], bytes],
    path: Path,
    cols: int = CORRECT_COLS,
) -> Path:
    with any_script():
        return _plot_correct(picked, targets, confidence, labels, read, path, cols)


def _plot_correct(
    picked: list[int],
    targets: np.ndarray,
    confidence: np.ndarray,
    labels: Sequence[str],
    read: Callable[[int], bytes],
    path: Path,
    cols: int,
) -> Path:
    rows = max(1, math.ceil(len(picked) / cols))
    fig, axes = _gallery_figure(rows, cols, f"Correctly classified ({len(picked)} shown)")
    if not picked:
        axes[0, 0].text(
            0.5,
            0.5,
            "no correct\npredictions",
            ha="center",
            va="center",
            transform=axes[0, 0].transAxes,
        )
    for n, i in enumerate(picked):
        title = f"{labels[int(targets[i])]} (p={confidence[i]:.2f})"
        _show(axes[n // cols, n % cols], thumbnail(read(i), CELL_PX), title, "darkgreen")
    return _save(fig, path)
