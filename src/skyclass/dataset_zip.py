"""Read a dataset zip written by `prepare`: its classes, entries, report and image bytes.

No torch here: `evaluate` and the CLI read datasets too. `skyclass.torch_data` wraps this in
a torch Dataset.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

from skyclass.errors import DatasetFormatError
from skyclass.images import PreprocessSpec

MANIFEST_NAME = "manifest.csv"
REPORT_NAME = "report.json"
DATASET_FORMAT = "skyclass-dataset"
# 2: a `val` split (model selection) beside `test` (scored once). Version-1 zips have
# train/test only: they still train, validating on test (with a warning in the report).
DATASET_FORMAT_VERSION = 2
MANIFEST_COLUMNS = [
    "path",
    "class",
    "split",
    "sha256",
    "phash",
    "group",
    "source",
    "width",
    "height",
]
SPLITS = ("train", "val", "test")


def find_run_dataset(recorded: object, run: Path) -> Path | None:
    """The dataset zip a run was trained on (its config's `data`), or None if not found here.

    A relative path is tried from the working directory, then from `run` (the run folder, a
    checkpoint in it, or a bundle) and its parent. `evaluate` and `export` both look it up.
    """
    if not isinstance(recorded, str) or not recorded:
        return None
    for candidate in (Path(recorded), run / recorded, run.parent / recorded):
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class Entry:
    path: str
    label: str
    target: int
    split: str
    sha256: str
    source: str


class PreparedDataset:
    """A prepared zip opened for random access (one ZipFile handle per thread/process)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetFormatError(f"dataset {self.path} does not exist")
        try:
            with zipfile.ZipFile(self.path) as zf:
                names = set(zf.namelist())
                if MANIFEST_NAME not in names or REPORT_NAME not in names:
                    raise DatasetFormatError(
                        f"{self.path} is a zip but not a skyclass dataset (no {MANIFEST_NAME}/"
                        f"{REPORT_NAME}); create one with `skyclass prepare RAW_DIR --out "
                        f"{self.path.name}`"
                    )
                self.report = json.loads(zf.read(REPORT_NAME))
                rows = list(csv.DictReader(io.StringIO(zf.read(MANIFEST_NAME).decode("utf-8"))))
        except zipfile.BadZipFile as exc:
            raise DatasetFormatError(f"{self.path} is not a zip file: {exc}") from exc
        if self.report.get("format") != DATASET_FORMAT:
            raise DatasetFormatError(f"{self.path}: report.json is not a skyclass dataset report")
        self.classes: list[str] = list(self.report["class_names"])
        index = {name: i for i, name in enumerate(self.classes)}
        self.entries: list[Entry] = []
        for row in rows:
            if row["class"] not in index or row["split"] not in SPLITS:
                raise DatasetFormatError(f"{self.path}: bad manifest row {row['path']!r}")
            self.entries.append(
                Entry(
                    row["path"],
                    row["class"],
                    index[row["class"]],
                    row["split"],
                    row["sha256"],
                    row["source"],
                )
            )
        self.spec = PreprocessSpec(size=int(self.report["size"]), resize=self.report["resize"])
        self._local = threading.local()

    def split(self, name: str) -> list[Entry]:
        if name not in SPLITS:
            raise DatasetFormatError(f"unknown split {name!r}; choose one of {SPLITS}")
        return [e for e in self.entries if e.split == name]

    @property
    def validation_split(self) -> str:
        """Where training selects its model: `val`, or `test` in an old two-way zip."""
        return "val" if self.split("val") else "test"

    def read(self, path: str) -> bytes:
        zf = getattr(self._local, "zf", None)
        # A forked DataLoader worker inherits the parent's handle, and with it a file offset
        # shared with every other worker: reading through it gives "Bad CRC-32" errors.
        if zf is None or getattr(self._local, "pid", None) != os.getpid():
            zf = self._local.zf = zipfile.ZipFile(self.path)
            self._local.pid = os.getpid()
        return zf.read(path)

    def __getstate__(self) -> dict:  # DataLoader workers reopen the zip themselves
        state = self.__dict__.copy()
        state.pop("_local", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()
