"""On ddd_visible (small objects on plain skies, 6 frames a video): photos of different videos
are never merged, however alike their skies; with `--group-by` each video's frames land in
one split of the three; without it the frame names get a warning. bench/dedupe_quality.py
checks all 1,014 images."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

import pytest

from skyclass.cli import main
from skyclass.prepare import PrepareConfig, prepare

from .fixtures import assert_accounted, assert_split_sound, read_dataset

VIDEO = re.compile(r"^(V_[A-Z]+_\d+)_")
# Videos whose frames the perceptual hash pairs across videos and classes (4-6 bits apart),
# which the old rule merged into groups and label conflicts: two bird videos of one session
# whose thumbnails still correlate 0.999, and airplane/drone/helicopter skies (measured).
HARD_VIDEOS = (
    "V_BIRD_027",
    "V_BIRD_028",
    "V_AIRPLANE_001",
    "V_DRONE_013",
    "V_AIRPLANE_039",
    "V_DRONE_015",
    "V_AIRPLANE_038",
    "V_HELICOPTER_053",
    "V_HELICOPTER_054",
)


@pytest.fixture(scope="module")
def hard_raw(ddd_visible_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("ddd") / "raw"
    for path in sorted(ddd_visible_dir.glob("*/V_*.jpg")):
        if VIDEO.match(path.name).group(1) in HARD_VIDEOS:
            (raw / path.parent.name).mkdir(parents=True, exist_ok=True)
            os.symlink(path, raw / path.parent.name / path.name)
    return raw


def _videos_by(rows: list[dict], key: str) -> dict[str, set[str]]:
    found = defaultdict(set)
    for r in rows:
        found[r[key]].add(VIDEO.match(Path(r["source"]).name).group(1))
    return found


def test_plain_sky_crops_of_different_videos_are_never_merged(hard_raw, tmp_path):
    out = tmp_path / "d.zip"
    report = prepare(PrepareConfig(raw=hard_raw, out=out, workers=2, quiet=True))
    _, rows, zf = read_dataset(out)
    assert len(rows) == 6 * len(HARD_VIDEOS) == report["totals"]["kept"]  # nothing lost
    assert report["label_conflicts"] == [] and report["skipped"] == []
    assert report["near_duplicates"]["unconfirmed_matches"] > 0  # the hash did pair them
    assert all(len(videos) == 1 for videos in _videos_by(rows, "group").values())
    assert_accounted(hard_raw, report, rows)
    assert_split_sound(report, rows, zf)
    # Without --group-by, the frame names are recognised as bursts and the user is told how.
    assert any("running number" in w and "--group-by" in w for w in report["warnings"])


def test_frames_of_one_video_stay_in_one_split_with_group_by(hard_raw, tmp_path):
    out = tmp_path / "d.zip"
    report = prepare(
        PrepareConfig(
            raw=hard_raw,
            out=out,
            workers=2,
            quiet=True,
            group_by=r"^(V_[A-Z]+_\d+)_",
            val_fraction=0.25,
            test_fraction=0.25,
            seed=1,
        )
    )
    _, rows, zf = read_dataset(out)
    splits_of_video = defaultdict(set)
    for r in rows:
        splits_of_video[VIDEO.match(Path(r["source"]).name).group(1)].add(r["split"])
    assert set(splits_of_video) == set(HARD_VIDEOS)
    assert all(len(s) == 1 for s in splits_of_video.values()), splits_of_video
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert_split_sound(report, rows, zf)  # no sha256 and no group on two sides
    groups = report["groups"]
    assert groups["source"] == "group_by" and groups["user_groups"] == len(HARD_VIDEOS)
    assert groups["sizes"]["min"] == groups["sizes"]["max"] == 6 and groups["ungrouped"] == 0
    assert report["warnings"] == []
    assert {r["group"] for r in rows} == set(HARD_VIDEOS)


def test_groups_csv_keeps_each_group_on_one_side_and_reports_gaps(hard_raw, tmp_path, capsys):
    rows_in = sorted(p.relative_to(hard_raw).as_posix() for p in hard_raw.glob("*/*.jpg"))
    left_out = rows_in[0]
    csv_file = tmp_path / "groups.csv"
    lines = [
        "path,group",
        *(f"{p},{VIDEO.match(Path(p).name).group(1)}" for p in rows_in[1:]),
        "bird/not_there.jpg,V_BIRD_999",
    ]
    csv_file.write_text("\n".join(lines) + "\n")
    out = tmp_path / "d.zip"
    assert (
        main(
            [
                "prepare",
                str(hard_raw),
                "--out",
                str(out),
                "--groups",
                str(csv_file),
                "--workers",
                "2",
                "--seed",
                "2",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    report, rows, zf = read_dataset(out)
    assert_split_sound(report, rows, zf)
    splits_of_video = defaultdict(set)
    for r in rows:
        if r["source"] != left_out:
            splits_of_video[VIDEO.match(Path(r["source"]).name).group(1)].add(r["split"])
    assert all(len(s) == 1 for s in splits_of_video.values())
    assert report["groups"]["ungrouped"] == 1 and report["groups"]["unknown_paths"] == 1
    assert f"does not list 1 image(s) (e.g. {left_out})" in printed
    assert "1 path(s) match no kept image (e.g. bird/not_there.jpg)" in printed
    assert f"groups (groups-file): {len(HARD_VIDEOS)} groups" in printed


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--group-by", "V_(unclosed"], "not a valid regular expression"),
        (["--group-by", "^V_"], "needs a capture group"),
        (["--groups", "missing.csv"], "cannot read --groups"),
        (["--group-by", "^(V)", "--groups", "x.csv"], "either --group-by or --groups"),
    ],
)
def test_bad_grouping_is_a_clear_error_before_any_work(hard_raw, tmp_path, capsys, option, message):
    out = tmp_path / "d.zip"
    assert main(["prepare", str(hard_raw), "--out", str(out), *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not out.exists()
