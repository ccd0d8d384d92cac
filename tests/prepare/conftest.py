"""Fixtures of the prepare tests: distinct real photos and one messy folder prepared once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .fixtures import build_messy_folder

_AUGMENTED = re.compile(r"_[A-Za-z]+\.rf\.")


def one_per_original(folder: Path, n: int) -> list[Path]:
    """`n` photos of `folder` that are not augmented copies of each other (name prefix differs)."""
    chosen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.jpg")):
        chosen.setdefault(_AUGMENTED.split(path.name)[0], path)
        if len(chosen) == n:
            break
    return list(chosen.values())


@pytest.fixture(scope="session")
def birds(bird_drone_dir: Path) -> list[Path]:
    return one_per_original(bird_drone_dir / "bird", 24)


@pytest.fixture(scope="session")
def drones(bird_drone_dir: Path) -> list[Path]:
    return one_per_original(bird_drone_dir / "drone", 12)


@pytest.fixture(scope="session")
def messy(tmp_path_factory: pytest.TempPathFactory, birds, drones) -> tuple[Path, dict[str, str]]:
    """(raw folder, expected reason per shown path) with every bad-file kind of issue 2."""
    root = tmp_path_factory.mktemp("messy") / "raw"
    root.mkdir()
    return root, build_messy_folder(root, birds, drones)


@pytest.fixture(scope="session")
def messy_zip(tmp_path_factory: pytest.TempPathFactory, messy) -> Path:
    from skyclass.prepare import PrepareConfig, prepare

    out = tmp_path_factory.mktemp("messy_out") / "messy.zip"
    prepare(PrepareConfig(raw=messy[0], out=out, size=64, workers=2, quiet=True, seed=3))
    return out
