"""Classification metrics from true labels and predicted probabilities (numpy only).

Written out here instead of importing scikit-learn: the formulas are a few lines, and the
report must not pull a large dependency into the training extras for them. Conventions follow
scikit-learn's so the numbers can be compared with other projects: precision of a class that
was never predicted is 0, and the macro/weighted averages run over the classes that occur in
the true or the predicted labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[i, j] = images of true class i predicted as class j."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    flat = y_true * num_classes + y_pred
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den == 0 (scikit-learn's zero_division=0)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of every class from a confusion matrix."""
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
        "predicted": predicted,
    }


def top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Share of images whose true class is among the k most probable ones."""
    if len(y_true) == 0:
        return 0.0
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(y_true)[:, None], axis=1)))


def _averages(scores: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    present = (scores["support"] > 0) | (scores["predicted"] > 0)
    if not present.any():
        zero = {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        return {"macro_avg": zero, "weighted_avg": dict(zero)}
    weights = scores["support"][present].astype(np.float64)
    macro, weighted = {}, {}
    for name in ("precision", "recall", "f1"):
        values = scores[name][present]
        macro[name] = float(values.mean())
        weighted[name] = float((values * weights).sum() / weights.sum()) if weights.sum() else 0.0
    return {"macro_avg": macro, "weighted_avg": weighted}


def misclassified(
    y_true: np.ndarray, probs: np.ndarray, paths: Sequence[str], class_names: Sequence[str]
) -> list[dict]:
    """Every wrong prediction, most confident mistake first (the ones worth looking at)."""
    y_pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    confidence = probs[wrong, y_pred[wrong]] if len(wrong) else np.zeros(0)
    order = wrong[np.argsort(-confidence, kind="stable")]
    return [
        {
            "index": int(i),
            "path": paths[i],
            "true": class_names[int(y_true[i])],
            "predicted": class_names[int(y_pred[i])],
            "confidence": round(float(probs[i, y_pred[i]]), 6),
            "true_class_probability": round(float(probs[i, y_true[i]]), 6),
        }
        for i in order
    ]


def classification_report(
    y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str], paths: Sequence[str]
) -> dict:
    """All the numbers of metrics.json for one evaluation."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape != (len(y_true), len(class_names)):
        raise ValueError(
            f"probabilities of shape {probs.shape} do not match {len(y_true)} images x "
            f"{len(class_names)} classes"
        )
    y_pred = probs.argmax(axis=1) if len(y_true) else np.zeros(0, dtype=np.int64)
    cm = confusion_matrix(y_true, y_pred, len(class_names))
    scores = per_class_scores(cm)
    n = int(cm.sum())
    return {
        "num_images": n,
        "accuracy": float(np.trace(cm) / n) if n else 0.0,
        "top2_accuracy": top_k_accuracy(y_true, probs, 2),
        "class_names": list(class_names),
        "confusion_matrix": cm.tolist(),
        "per_class": {
            name: {
                "precision": float(scores["precision"][i]),
                "recall": float(scores["recall"][i]),
                "f1": float(scores["f1"][i]),
                "support": int(scores["support"][i]),
            }
            for i, name in enumerate(class_names)
        },
        **_averages(scores),
        "misclassified": misclassified(y_true, probs, paths, class_names),
    }
