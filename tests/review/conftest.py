"""A small real bird/drone folder with labels flipped on purpose, prepared and reviewed once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PREFIX = re.compile(r"^(.*)_(?:jpg|png)\.rf\.")
PHOTOS_PER_CLASS = 36  # distinct photos (a photo's augmented copies come along)
FLIPS_PER_CLASS = 3
SIZE = 96


def photo_groups(folder: Path) -> list[list[Path]]:
    """The files of `folder` grouped by photo (Roboflow's augmented copies share a prefix)."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("*.jpg")):
        match = PREFIX.match(path.name)
        groups.setdefault(match.group(1) if match else path.stem, []).append(path)
    return list(groups.values())


@pytest.fixture(scope="session")
def flipped_raw(tmp_path_factory: pytest.TempPathFactory, bird_drone_dir: Path):
    """RAW/{bird,drone}/ of real files (copies, so a test may change them) and the flips:
    {source path in RAW: true class}. Every 12th photo sits in the other class's folder."""
    raw = tmp_path_factory.mktemp("flipped") / "raw"
    flips: dict[str, str] = {}
    classes = ["bird", "drone"]
    for label in classes:
        other = classes[1 - classes.index(label)]
        groups = photo_groups(bird_drone_dir / label)[:PHOTOS_PER_CLASS]
        for g, group in enumerate(groups):
            flipped = g % (PHOTOS_PER_CLASS // FLIPS_PER_CLASS) == 5
            folder = raw / (other if flipped else label)
            folder.mkdir(parents=True, exist_ok=True)
            for path in group:
                (folder / path.name).write_bytes(path.read_bytes())
                if flipped:
                    flips[f"{other}/{path.name}"] = label
    return raw, flips


@pytest.fixture(scope="session")
def flipped_zip(tmp_path_factory: pytest.TempPathFactory, flipped_raw) -> Path:
    from skyclass.prepare import PrepareConfig, prepare

    out = tmp_path_factory.mktemp("flipped_zip") / "flipped.zip"
    prepare(PrepareConfig(raw=flipped_raw[0], out=out, size=SIZE, workers=1, quiet=True))
    return out


@pytest.fixture(scope="session")
def review_dir(tmp_path_factory: pytest.TempPathFactory, flipped_zip: Path) -> Path:
    """`skyclass review` (real ImageNet MobileNetV2 embeddings) of flipped_zip. Read-only:
    tests that decide copy it first."""
    from skyclass.cli import main

    out = tmp_path_factory.mktemp("review") / "review"
    assert main(["review", str(flipped_zip), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture()
def review_copy(tmp_path: Path, review_dir: Path) -> Path:
    """A private copy of review_dir (decisions are written into it)."""
    import shutil

    copy = tmp_path / "review"
    shutil.copytree(review_dir, copy)
    assert not (copy / "decisions.csv").exists()
    return copy
