"""The reader of prepare's zip: what training and evaluation see."""

from __future__ import annotations

import pickle
import zipfile

import pytest

from skyclass.dataset_zip import PreparedDataset
from skyclass.errors import DatasetFormatError

from .fixtures import read_dataset


def test_reads_classes_splits_and_images(messy_zip):
    report, rows, _ = read_dataset(messy_zip)
    ds = PreparedDataset(messy_zip)
    assert ds.classes == ["bird", "drone"] == report["class_names"]
    sizes = [len(ds.split(name)) for name in ("train", "val", "test")]
    assert all(sizes) and sum(sizes) == len(rows) == len(ds.entries)
    assert ds.validation_split == "val"
    assert {e.target for e in ds.entries} == {0, 1}
    assert ds.spec.size == 64 and ds.spec.resize == "pad"
    entry = ds.split("test")[0]
    assert ds.read(entry.path)[:2] == b"\xff\xd8"
    clone = pickle.loads(pickle.dumps(ds))  # DataLoader workers get a copy that reopens the zip
    assert clone.read(entry.path) == ds.read(entry.path)
    with pytest.raises(DatasetFormatError, match="unknown split"):
        ds.split("validation")


def test_rejects_what_is_not_a_dataset(tmp_path):
    with pytest.raises(DatasetFormatError, match="does not exist"):
        PreparedDataset(tmp_path / "missing.zip")
    not_zip = tmp_path / "a.zip"
    not_zip.write_bytes(b"hello")
    with pytest.raises(DatasetFormatError, match="not a zip"):
        PreparedDataset(not_zip)
    other = tmp_path / "b.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("bird/x.jpg", b"")
    with pytest.raises(DatasetFormatError, match="skyclass prepare"):
        PreparedDataset(other)
