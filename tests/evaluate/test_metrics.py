"""Metrics on small arrays whose right answers can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from skyclass.evaluate.metrics import classification_report, confusion_matrix, top_k_accuracy

NAMES = ["a", "b", "c"]
# true, probabilities; argmax predictions: 0 0 1 1 2 2
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
PROBS = np.array(
    [
        [0.70, 0.20, 0.10],
        [0.60, 0.10, 0.30],
        [0.30, 0.60, 0.10],  # a -> b, p=0.6; true class is 2nd
        [0.10, 0.80, 0.10],
        [0.15, 0.05, 0.80],  # b -> c, p=0.8; true class is 3rd (top-2 miss)
        [0.20, 0.10, 0.70],
    ]
)
PATHS = [f"img{i}.jpg" for i in range(6)]


def test_confusion_matrix_by_hand() -> None:
    cm = confusion_matrix(Y_TRUE, PROBS.argmax(1), 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert cm.sum() == len(Y_TRUE)


def test_report_numbers_by_hand() -> None:
    r = classification_report(Y_TRUE, PROBS, NAMES, PATHS)
    assert r["num_images"] == 6
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["top2_accuracy"] == pytest.approx(5 / 6)
    a, b, c = (r["per_class"][n] for n in NAMES)
    assert [a["precision"], b["precision"], c["precision"]] == pytest.approx([1.0, 0.5, 0.5])
    assert [a["recall"], b["recall"], c["recall"]] == pytest.approx([2 / 3, 0.5, 1.0])
    assert [a["support"], b["support"], c["support"]] == [3, 2, 1]
    assert a["f1"] == pytest.approx(0.8)
    assert c["f1"] == pytest.approx(2 / 3)
    assert r["macro_avg"]["f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert r["weighted_avg"]["f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 2 / 3) / 6)
    assert r["weighted_avg"]["recall"] == pytest.approx(r["accuracy"])


def test_misclassified_most_confident_first() -> None:
    wrong = classification_report(Y_TRUE, PROBS, NAMES, PATHS)["misclassified"]
    assert [(m["path"], m["true"], m["predicted"]) for m in wrong] == [
        ("img4.jpg", "b", "c"),
        ("img2.jpg", "a", "b"),
    ]
    assert [m["confidence"] for m in wrong] == [pytest.approx(0.8), pytest.approx(0.6)]


def test_never_predicted_class_has_zero_precision_and_absent_class_is_not_averaged() -> None:
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.3, 0.7, 0.0], [0.4, 0.6, 0.0]])
    r = classification_report(y, probs, NAMES, ["w", "x", "y", "z"])
    assert r["per_class"]["a"]["precision"] == 1.0
    assert r["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert r["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # 'c' neither occurs nor is predicted: the macro average is over a and b only.
    assert r["macro_avg"]["recall"] == pytest.approx((0.5 + 1.0) / 2)


def test_top_k_and_shape_check() -> None:
    assert top_k_accuracy(Y_TRUE, PROBS, 1) == pytest.approx(4 / 6)
    assert top_k_accuracy(Y_TRUE, PROBS, 3) == 1.0
    with pytest.raises(ValueError, match="do not match"):
        classification_report(Y_TRUE, PROBS[:, :2], NAMES, PATHS)
