"""`skyclass review` on real photos with labels flipped on purpose."""

from __future__ import annotations

import csv
import json
import re

from skyclass.review import GALLERY_NAME, ISSUES_NAME, SUMMARY_NAME, ReviewConfig, review
from skyclass.review.issues import ISSUE_COLUMNS


def _issues(review_dir):
    with open(review_dir / ISSUES_NAME, newline="") as fh:
        return list(csv.DictReader(fh))


def test_flipped_labels_rank_at_the_top_with_the_right_suggestion(review_dir, flipped_raw):
    _, flips = flipped_raw
    wrong = [r for r in _issues(review_dir) if "wrong_label" in r["kind"]]
    ranked = [r["source"] for r in wrong]
    hits = [s for s in ranked if s in flips]
    # 8 flipped files among ~115 (6.5%): random flagging would be right 1 time in 15.
    assert len(hits) / len(ranked) >= 0.75, f"precision too low: {ranked}"
    assert len(hits) / len(flips) >= 0.75, f"recall too low: {sorted(set(flips) - set(hits))}"
    assert all(s in flips for s in ranked[: len(flips) // 2]), f"top is not flips: {ranked}"
    for r in wrong:
        if r["source"] in flips:
            assert r["suggested"] == flips[r["source"]]
            assert float(r["p_given"]) < 0.5


def test_review_files(review_dir, flipped_zip):
    rows = _issues(review_dir)
    assert list(rows[0]) == ISSUE_COLUMNS
    assert {"path", "source", "given", "suggested", "score", "kind"} <= set(ISSUE_COLUMNS)
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True), "worst first"
    summary = json.loads((review_dir / SUMMARY_NAME).read_text())
    assert summary["backbone"] == "imagenet" and summary["folds"] == 5
    assert [c["class"] for c in summary["classes"]] == ["bird", "drone"]
    assert all(0.0 <= c["estimated_noise_rate"] <= 1.0 for c in summary["classes"])
    assert summary["out_of_sample_accuracy"] > 0.8
    assert set(summary["typical"]) == {"bird", "drone"}
    page = (review_dir / GALLERY_NAME).read_text()
    # Self-contained: every image is a data URI, nothing is fetched from anywhere.
    assert page.count('src="data:image/jpeg;base64,') == sum(1 for r in rows if r["path"])
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


def test_a_second_review_of_the_same_dataset_is_reused(review_copy, flipped_zip):
    before = (review_copy / ISSUES_NAME).read_bytes()
    summary = review(ReviewConfig(dataset=flipped_zip, out=review_copy, quiet=True))
    assert summary.get("reused") is True
    assert (review_copy / ISSUES_NAME).read_bytes() == before


def test_groups_stay_in_one_fold(flipped_zip):
    """The manifest's near-copy groups: all copies of a photo get the same fold's head."""
    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold

    from skyclass.dataset_zip import PreparedDataset
    from skyclass.review import group_ids, manifest_rows

    rows = manifest_rows(PreparedDataset(flipped_zip))
    groups = group_ids(rows)
    assert len(set(groups)) < len(groups), "the fixture should hold near-copy groups"
    labels = np.asarray([r["class"] for r in rows])
    for _, test_idx in StratifiedGroupKFold(5, shuffle=True, random_state=0).split(
        rows, labels, groups
    ):
        held = set(groups[test_idx])
        assert not held & set(np.delete(groups, test_idx))


def test_review_with_a_runs_fine_tuned_backbone(tmp_path, tiny_run, eva4_zip):
    """--run: embeddings from the run's own backbone (here MobileNetV2 x0.25 on 4 classes)."""
    from skyclass.cli import main

    out = tmp_path / "review"
    assert (
        main(
            [
                "review",
                str(eva4_zip),
                "--run",
                str(tiny_run),
                "--out",
                str(out),
                "--folds",
                "3",
                "--quiet",
            ]
        )
        == 0
    )
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["backbone"] == f"run:{tiny_run}"
    assert summary["folds"] == 3 and summary["images"] > 100
    assert len(summary["classes"]) == 4
    assert (out / ISSUES_NAME).is_file() and (out / GALLERY_NAME).is_file()
