"""On real data: bird_drone's augmented copies (same name prefix before `_jpg.rf.`) are all
grouped and never straddle the split, and the look-alikes that fooled the perceptual hash
across classes are not reported as label conflicts. bench/prepare_speed.py checks all 3,104."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

from skyclass.prepare import PrepareConfig, prepare

from .fixtures import assert_accounted, assert_split_sound, read_dataset

_AUGMENTED = re.compile(r"_[A-Za-z]+\.rf\.")

# Flat-sky photos of a bird, a drone and a drone logo whose perceptual hashes are 4-6 bits
# apart across classes (rendered and checked by eye: different photos).
LOOK_ALIKES = ("05005a15b6a16836", "0dd3f0d301ad87b1", "pic_1013", "pic_1075", "pic_739")


def _pairs_and_look_alikes(root: Path, per_class: int) -> list[Path]:
    chosen = []
    for label in ("bird", "drone"):
        by_prefix = defaultdict(list)
        for path in sorted((root / label).glob("*")):
            by_prefix[_AUGMENTED.split(path.name)[0]].append(path)
        pairs = [p for p, files in by_prefix.items() if len(files) == 2][:per_class]
        for prefix in dict.fromkeys([*pairs, *(p for p in LOOK_ALIKES if p in by_prefix)]):
            chosen += by_prefix[prefix]
    return chosen


def test_augmented_pairs_grouped_and_look_alikes_not_conflicts(bird_drone_dir, tmp_path):
    raw = tmp_path / "raw"
    for path in _pairs_and_look_alikes(bird_drone_dir, per_class=40):
        (raw / path.parent.name).mkdir(parents=True, exist_ok=True)
        os.symlink(path, raw / path.parent.name / path.name)  # file symlinks are followed
    out = tmp_path / "bd.zip"
    report = prepare(PrepareConfig(raw=raw, out=out, size=32, workers=2, quiet=True))
    _, rows, zf = read_dataset(out)
    assert report["label_conflicts"] == []
    assert report["warnings"] == []  # hash-like names are not mistaken for bursts
    assert report["near_duplicates"]["unconfirmed_matches"] > 0
    assert_accounted(raw, report, rows)
    assert_split_sound(report, rows, zf)
    group_of_prefix = defaultdict(set)
    for r in rows:
        group_of_prefix[_AUGMENTED.split(r["source"])[0]].add(r["group"])
    missed = [p for p, groups in group_of_prefix.items() if len(groups) != 1 or "" in groups]
    assert missed == []
    assert len(group_of_prefix) >= 80 and len(rows) >= 160  # 40 pairs per class + look-alikes
