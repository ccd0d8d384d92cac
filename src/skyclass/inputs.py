"""What a path the user gave is, so a command given the wrong kind can say so and point on.

A newcomer passes a photo folder to `train`, a dataset zip to `evaluate`, a run folder to
`serve`. Each of those is a valid input of another command, so the error names what was given,
what it is, and the command that takes it. Standard library only (the serving install uses it).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from skyclass.dataset_zip import MANIFEST_NAME, REPORT_NAME
from skyclass.errors import SkyclassError
from skyclass.serving.bundle import MANIFEST_NAME as BUNDLE_MANIFEST

PHOTO_FOLDER = "photo folder"
PHOTO_ZIP = "photo zip"
DATASET_ZIP = "dataset zip"
RUN_DIR = "run folder"
CHECKPOINT = "checkpoint"
BUNDLE = "bundle"
IMAGE = "image"
MISSING = "missing"
FOLDER = "folder"
OTHER = "other"

# Kinds that are folders: a command taking one of them explains a plain folder best itself.
FOLDER_KINDS = frozenset({PHOTO_FOLDER, RUN_DIR, BUNDLE, FOLDER})
IMAGE_SUFFIXES = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".png",
        ".webp",
        ".bmp",
        ".gif",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".avif",
        ".jfif",
        ".ppm",
        ".pgm",
    }
)
# Files whose presence makes a folder a run of `skyclass train` or a bundle of `export`.
RUN_MARKERS = ("config.json", "last.pt", "best.pt", "history.jsonl")
BUNDLE_MARKER = BUNDLE_MANIFEST
DATASET_MARKERS = (MANIFEST_NAME, REPORT_NAME)

WHAT_IT_IS = {
    PHOTO_FOLDER: "a folder of class folders of photos",
    PHOTO_ZIP: "a zip of class folders of photos",
    DATASET_ZIP: "a dataset zip written by `skyclass prepare`",
    RUN_DIR: "a training run folder written by `skyclass train`",
    CHECKPOINT: "a training checkpoint",
    BUNDLE: "a model bundle written by `skyclass export`",
    IMAGE: "a single image",
    FOLDER: "a folder without class folders of photos, a run or a bundle in it",
}


def _is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def _folder_kind(path: Path) -> str:
    if (path / BUNDLE_MARKER).is_file():
        return BUNDLE
    if any((path / name).exists() for name in RUN_MARKERS):
        return RUN_DIR
    for child in sorted(path.iterdir())[:50]:
        if child.is_dir() and any(_is_image_name(f.name) for f in _first_files(child)):
            return PHOTO_FOLDER
    return FOLDER


def _first_files(folder: Path, limit: int = 200) -> list[Path]:
    """Up to `limit` files under `folder` (recursive): enough to recognise a photo folder."""
    found: list[Path] = []
    for item in folder.rglob("*"):
        if item.is_file():
            found.append(item)
            if len(found) >= limit:
                break
    return found


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return OTHER
    if all(marker in names for marker in DATASET_MARKERS):
        return DATASET_ZIP
    if any("/" in n.strip("/") and _is_image_name(n) for n in names):
        return PHOTO_ZIP
    return OTHER


def kind_of(path: str | Path) -> str:
    """One of the constants above, from a quick look (no image is decoded)."""
    path = Path(path)
    if not path.exists():
        return MISSING
    if path.is_dir():
        return _folder_kind(path)
    if not path.is_file():  # a FIFO or device: opening it to look could block for ever
        return OTHER  # the command's own reader refuses it, saying what it is
    if path.suffix.lower() == ".pt":
        return CHECKPOINT
    if zipfile.is_zipfile(path):
        return _zip_kind(path)
    if _is_image_name(path.name):
        return IMAGE
    return OTHER


def next_step(kind: str, path: str, command: str) -> str:
    """The command that does take a `kind` input, for a user who ran `command` on it."""
    steps = {
        PHOTO_FOLDER: f"make a dataset of it with `skyclass prepare {path} --out DATASET.zip`, "
        f"or run every stage at once with `skyclass run {path} --out OUT`",
        DATASET_ZIP: (
            f"train on it first: `skyclass train {path} --out RUN_DIR`, then "
            f"`skyclass {command} RUN_DIR`"
        ),
        RUN_DIR: (
            f"export it first: `skyclass export {path} --out BUNDLE_DIR`, then "
            f"`skyclass {command} BUNDLE_DIR{' PHOTO...' if command == 'predict' else ''}`"
        ),
        CHECKPOINT: f"export it first: `skyclass export {path} --out BUNDLE_DIR`",
        BUNDLE: (
            f"it is ready to use: `skyclass serve {path}` or `skyclass predict {path} PHOTO...`"
        ),
        IMAGE: "classify it with `skyclass predict BUNDLE_DIR " + path + "`",
        FOLDER: (
            "`skyclass prepare` takes a folder with one sub-folder of photos per class "
            "and makes the dataset zip that train takes"
        ),
    }
    steps[PHOTO_ZIP] = steps[PHOTO_FOLDER]
    if command == "evaluate" and kind == DATASET_ZIP:
        steps[DATASET_ZIP] = (
            f"evaluate takes the run folder that `skyclass train {path} --out "
            f"RUN_DIR` writes: `skyclass evaluate RUN_DIR` (or score a run on "
            f"this dataset: `skyclass evaluate RUN_DIR --data {path}`)"
        )
    if command == "train" and kind == RUN_DIR:
        steps[RUN_DIR] = f"to continue that run: `skyclass train --out {path} --resume`"
    if command in ("train", "export", "evaluate") and kind == BUNDLE:
        steps[BUNDLE] = "it is already exported: " + steps[BUNDLE].split(": ", 1)[1]
    return steps.get(kind, "")


def require_zip_name(out: str | Path, command: str, raw: str) -> None:
    """`prepare --out` names the zip to write: refuse a folder or a name without .zip."""
    out = Path(out)
    if out.is_dir():
        raise SkyclassError(
            f"--out {out} is a folder; give the zip file to write inside it: "
            f"`skyclass {command} {raw} --out {out / 'dataset.zip'}`"
        )
    if out.suffix.lower() != ".zip":
        raise SkyclassError(
            f"--out {out} does not end in .zip (the dataset is one zip file): "
            f"`skyclass {command} {raw} --out {out}.zip`"
        )


def require(path: str | Path, accepted: tuple[str, ...], command: str, wanted: str) -> str:
    """Raise a SkyclassError naming what `path` is and what to run, unless its kind is accepted.

    `wanted` says in words what `command` takes ("a dataset zip from `skyclass prepare`").
    Returns the kind, for a caller that accepts several.
    """
    kind = kind_of(path)
    if kind in accepted or kind == OTHER:  # a file of no known kind: the reader says why
        return kind
    if kind == FOLDER and set(accepted) & FOLDER_KINDS:  # e.g. "run X has no best.pt yet"
        return kind
    text = str(path)
    if kind == MISSING:
        raise SkyclassError(f"{text} does not exist; `skyclass {command}` takes {wanted}")
    message = f"{text} is {WHAT_IT_IS[kind]}, not {wanted}"
    step = next_step(kind, text, command)
    raise SkyclassError(f"{message}: {step}" if step else message)
