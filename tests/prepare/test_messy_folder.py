"""`prepare` on a folder seeded with every bad-file kind: each is reported with its reason."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from skyclass.images import PAD_RGB
from skyclass.prepare import PrepareConfig, prepare

from .fixtures import (
    assert_accounted,
    assert_split_sound,
    read_dataset,
    reasons_by_path,
)


def test_every_file_has_its_expected_reason(messy, messy_zip):
    _, expect = messy
    report, rows, _ = read_dataset(messy_zip)
    got = reasons_by_path(report, rows)
    wrong = {p: (want, got.get(p)) for p, want in expect.items() if got.get(p) != want}
    assert not wrong, wrong
    assert set(got) == set(expect), set(got) ^ set(expect)


def test_counts_add_up_and_split_is_sound(messy, messy_zip):
    report, rows, zf = read_dataset(messy_zip)
    assert_accounted(messy[0], report, rows)
    assert_split_sound(report, rows, zf)


def test_skip_details_name_the_twin_and_both_conflicting_paths(messy_zip):
    report, _, _ = read_dataset(messy_zip)
    by_path = {s["path"]: s for s in report["skipped"]}
    assert "bird/ok_0.jpg" in by_path["bird/ok_0_copy.jpg"]["detail"]
    assert report["label_conflicts"] == [["bird/ok_3.jpg", "drone/mislabelled.jpg"]]
    assert "drone/mislabelled.jpg" in by_path["bird/ok_3.jpg"]["detail"]
    assert "decompression" in by_path["bird/bomb.png"]["detail"]


def test_near_copies_share_a_group_and_a_side(messy_zip):
    _, rows, _ = read_dataset(messy_zip)
    row = {r["source"]: r for r in rows}
    for a, b in [
        ("bird/ok_1.jpg", "bird/rot90_of_ok_1.jpg"),
        ("bird/ok_2.jpg", "bird/flip_of_ok_2.png"),
        ("bird/original_6000x4000.jpg", "bird/thumbnail_100px.jpg"),
    ]:
        assert row[a]["group"] and row[a]["group"] == row[b]["group"], (a, b)
        assert row[a]["split"] == row[b]["split"]


def test_exif_orientation_is_applied_in_the_zip(messy_zip):
    _, rows, zf = read_dataset(messy_zip)
    row = next(r for r in rows if r["source"] == "bird/exif_rotated.jpg")
    assert (int(row["width"]), int(row["height"])) == (256, 416)  # stored 416x256, EXIF 6
    arr = np.asarray(Image.open(io.BytesIO(zf.read(row["path"]))).convert("RGB"), np.int16)
    assert arr.shape == (64, 64, 3)
    # Portrait after rotation: padding is left and right, the photo fills top to bottom.
    assert np.abs(arr[:, :4] - PAD_RGB).max() <= 8
    assert np.abs(arr[:, 30:34] - PAD_RGB).max() > 20


def test_originals_keep_their_size_in_the_manifest(messy_zip):
    _, rows, _ = read_dataset(messy_zip)
    row = {r["source"]: r for r in rows}
    assert (
        row["bird/original_6000x4000.jpg"]["width"],
        row["bird/thumbnail_100px.jpg"]["width"],
    ) == ("6000", "100")
    assert row["bird/bad\\nname\\xff\\xfe.jpg"]["path"].startswith(
        row["bird/bad\\nname\\xff\\xfe.jpg"]["split"] + "/bird/bad_nname_xff_xfe-"
    )


def test_same_seed_same_split_other_seed_other_split(messy, messy_zip, tmp_path):
    _, rows, _ = read_dataset(messy_zip)
    again = tmp_path / "again.zip"
    other = tmp_path / "other.zip"
    prepare(PrepareConfig(raw=messy[0], out=again, size=64, workers=1, quiet=True, seed=3))
    prepare(PrepareConfig(raw=messy[0], out=other, size=64, workers=1, quiet=True, seed=4))
    split = {r["source"]: r["split"] for r in rows}
    assert {r["source"]: r["split"] for r in read_dataset(again)[1]} == split
    assert {r["source"]: r["split"] for r in read_dataset(other)[1]} != split
    # Bytes of the images are identical between 1 and 2 workers.
    _, rows_again, zf_again = read_dataset(again)
    _, _, zf = read_dataset(messy_zip)
    assert {r["path"]: zf_again.read(r["path"]) for r in rows_again} == {
        r["path"]: zf.read(r["path"]) for r in rows
    }


def test_kept_images_are_the_right_size_and_rgb(messy_zip):
    _, rows, zf = read_dataset(messy_zip)
    for r in rows:
        with Image.open(io.BytesIO(zf.read(r["path"]))) as img:
            assert (img.size, img.mode, img.format) == ((64, 64), "RGB", "JPEG"), r["source"]
        assert r["class"] == r["source"].split("/")[0]  # class = top folder, even nested
