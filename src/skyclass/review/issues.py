"""Rank what looks wrong in a dataset, with cleanlab doing the statistics.

- wrong_label: cleanlab's confident learning (`find_label_issues`, prune by noise rate) on the
  out-of-sample probabilities; the suggestion is the most likely other class.
- outlier: cleanlab's `OutOfDistribution` (k-nearest-neighbour distance in embedding space):
  photos unlike anything else in the data set (a logo, a screenshot, a mural).
- cross_class_copy: the same photo filed under two classes, found by `prepare` (excluded from
  the zip, listed in its report.json as label conflicts).
Per-class label-noise estimates come from cleanlab's confident joint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from cleanlab.dataset import rank_classes_by_label_quality
from cleanlab.filter import find_label_issues
from cleanlab.outlier import OutOfDistribution

WRONG_LABEL = "wrong_label"
OUTLIER = "outlier"
CROSS_CLASS_COPY = "cross_class_copy"
KINDS = (WRONG_LABEL, OUTLIER, CROSS_CLASS_COPY)
# cleanlab's OOD score ranks; it has no threshold. On bird_drone no image stands apart (robust
# z-scores of the scores reach 2.4 at most: augmented twins make every photo look familiar),
# so the review shows this share of the most unusual images, for a person to look at.
OUTLIER_SHARE = 0.01
TYPICAL_PER_CLASS = 6


@dataclass
class Issue:
    """One suspect photo (one row of issues.csv)."""

    path: str  # member of the dataset zip ("" when prepare excluded it)
    source: str  # path in the raw folder
    sha256: str
    split: str
    given: str
    suggested: str
    score: float  # 0..1, higher = more likely wrong; the ranking key
    kind: str  # one of KINDS, or two joined by "+"
    p_given: float | None = None  # out-of-sample probability of the given class
    p_suggested: float | None = None
    detail: str = ""

    def to_row(self) -> dict:
        row = asdict(self)
        for key in ("score", "p_given", "p_suggested"):
            row[key] = "" if row[key] is None else f"{row[key]:.4f}"
        return row


ISSUE_COLUMNS = list(Issue.__dataclass_fields__)


def label_issue_indices(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Indices of likely label errors, most likely first (lowest self-confidence)."""
    return find_label_issues(
        labels, probs, filter_by="prune_by_noise_rate", return_indices_ranked_by="self_confidence"
    )


def suggested_classes(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The most likely class other than the given one."""
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -1.0
    return others.argmax(axis=1)


def outlier_scores(embeddings: np.ndarray) -> np.ndarray:
    """cleanlab OOD scores in [0, 1], lower = more unusual (kNN distance to the rest)."""
    ood = OutOfDistribution()
    return ood.fit_score(features=np.ascontiguousarray(embeddings, dtype=np.float32), verbose=False)


def outlier_mask(scores: np.ndarray, share: float = OUTLIER_SHARE) -> np.ndarray:
    """The `share` lowest OOD scores (at least one image)."""
    k = max(1, round(share * len(scores)))
    mask = np.zeros(len(scores), dtype=bool)
    mask[np.argsort(scores, kind="stable")[:k]] = True
    return mask


def class_noise(labels: np.ndarray, probs: np.ndarray, class_names: list[str]) -> list[dict]:
    """cleanlab's per-class estimates: label issues, noise rate, label quality."""
    table = rank_classes_by_label_quality(labels=labels, pred_probs=probs, class_names=class_names)
    rows = []
    for rec in table.sort_values("Class Index").to_dict("records"):
        rows.append(
            {
                "class": rec["Class Name"],
                "images": int((labels == rec["Class Index"]).sum()),
                "estimated_label_issues": int(rec["Label Issues"]),
                "estimated_noise_rate": round(float(rec["Label Noise"]), 4),
                "estimated_inverse_noise_rate": round(float(rec["Inverse Label Noise"]), 4),
                "label_quality": round(float(rec["Label Quality Score"]), 4),
            }
        )
    return rows


def find_issues(
    rows: list[dict],
    labels: np.ndarray,
    probs: np.ndarray,
    embeddings: np.ndarray,
    class_names: list[str],
) -> tuple[list[Issue], np.ndarray, np.ndarray]:
    """Issues of the images in the zip, worst first; also the OOD scores and the flag mask."""
    n = len(labels)
    suggested = suggested_classes(labels, probs)
    wrong = np.zeros(n, dtype=bool)
    wrong[label_issue_indices(labels, probs)] = True
    ood = outlier_scores(embeddings)
    far = outlier_mask(ood)
    issues = []
    for i in np.flatnonzero(wrong | far):
        kinds = [k for k, flag in ((WRONG_LABEL, wrong[i]), (OUTLIER, far[i])) if flag]
        p_given = float(probs[i, labels[i]])
        score = max(1.0 - p_given if wrong[i] else 0.0, 1.0 - float(ood[i]) if far[i] else 0.0)
        issues.append(
            Issue(
                path=rows[i]["path"],
                source=rows[i]["source"],
                sha256=rows[i]["sha256"],
                split=rows[i]["split"],
                given=class_names[labels[i]],
                suggested=class_names[suggested[i]] if wrong[i] else "",
                score=score,
                kind="+".join(kinds),
                p_given=p_given,
                p_suggested=float(probs[i, suggested[i]]) if wrong[i] else None,
                detail=f"outlier score {ood[i]:.3f}" if far[i] else "",
            )
        )
    issues.sort(key=lambda it: -it.score)
    return issues, ood, wrong | far


def conflict_issues(report: dict) -> list[Issue]:
    """prepare's label conflicts (same photo in two classes): every copy, not in the zip."""
    class_of = {
        s["path"]: s.get("class") or ""
        for s in report.get("skipped", [])
        if s.get("reason") == "label_conflict"
    }
    issues = []
    for group in report.get("label_conflicts", []):
        for path in group:
            others = ", ".join(p for p in group if p != path)
            issues.append(
                Issue(
                    path="",
                    source=path,
                    sha256="",
                    split="",
                    given=class_of.get(path, ""),
                    suggested="",
                    score=1.0,
                    kind=CROSS_CLASS_COPY,
                    detail=f"same photo as {others}; prepare left all copies out: move or delete "
                    "the wrong copy in the raw folder",
                )
            )
    return issues


def typical_examples(
    labels: np.ndarray,
    probs: np.ndarray,
    flagged: np.ndarray,
    num_classes: int,
    per_class: int = TYPICAL_PER_CLASS,
) -> dict[int, list[int]]:
    """Per class, the unflagged images the heads were most sure about: what the class looks
    like, to compare a suspect with."""
    p_given = probs[np.arange(len(labels)), labels]
    out = {}
    for c in range(num_classes):
        idx = np.flatnonzero((labels == c) & ~flagged)
        out[c] = idx[np.argsort(-p_given[idx], kind="stable")][:per_class].tolist()
    return out
