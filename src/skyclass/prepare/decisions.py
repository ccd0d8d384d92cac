"""Review decisions (`decisions.csv`): the file `skyclass review --serve` writes and
`skyclass prepare --decisions` applies.

A decision names a photo by its source path in RAW (as in the dataset manifest's `source`
column) AND the sha256 of its bytes when it was reviewed. It is applied only if RAW still holds
that very file under that path, in the class it was reviewed in: a photo that was edited,
replaced, moved to another class folder or deleted since is reported as refused, never
guessed at. Nothing in RAW is ever changed; the new labels live only in the new zip.

Standard library only: the review page's server writes this file without torch.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from skyclass.errors import PrepareError
from skyclass.fileio import atomic_write_csv
from skyclass.prepare.scan import Skipped
from skyclass.textsafe import display_text

DECISIONS_COLUMNS = ["source", "sha256", "path", "given", "action", "label", "decided_at"]
# relabel: file the photo under `label`; exclude: leave it out; keep: reviewed, label is right.
ACTIONS = ("relabel", "exclude", "keep")
EXCLUDED_REASON = "excluded_by_review"


@dataclass(frozen=True)
class Decision:
    """What a reviewer decided about one photo."""

    source: str  # path in RAW, as the manifest's `source` column shows it
    sha256: str  # of the file's bytes when it was reviewed
    given: str  # its class when it was reviewed
    action: str
    label: str = ""  # the new class (relabel only)
    path: str = ""  # where it was in the reviewed dataset zip (for people reading the file)
    decided_at: str = ""

    def to_row(self) -> dict:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "path": self.path,
            "given": self.given,
            "action": self.action,
            "label": self.label,
            "decided_at": self.decided_at,
        }

    def to_dict(self) -> dict:
        return self.to_row()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_decisions(text: str, where: str = "decisions.csv") -> list[Decision]:
    """Rows of a decisions file; a malformed file is an error that names the line."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [
        c for c in ("source", "sha256", "given", "action") if c not in (reader.fieldnames or [])
    ]
    if missing:
        raise PrepareError(
            f"{where}: not a decisions file (missing column(s) "
            f"{', '.join(missing)}; expected {', '.join(DECISIONS_COLUMNS)})"
        )
    decisions = []
    for line, row in enumerate(reader, start=2):
        action = (row.get("action") or "").strip()
        label = (row.get("label") or "").strip()
        if action not in ACTIONS:
            raise PrepareError(
                f"{where} line {line}: action {action!r} is not one of {', '.join(ACTIONS)}"
            )
        if action == "relabel" and not label:
            raise PrepareError(f"{where} line {line}: a relabel needs the new class in 'label'")
        if not row.get("source") or len(row.get("sha256") or "") != 64:
            raise PrepareError(f"{where} line {line}: needs a source path and a 64-hex sha256")
        decisions.append(
            Decision(
                source=row["source"],
                sha256=row["sha256"].lower(),
                given=row["given"] or "",
                action=action,
                label=label,
                path=row.get("path") or "",
                decided_at=row.get("decided_at") or "",
            )
        )
    return decisions


def read_decisions(path: str | Path) -> list[Decision]:
    """The decisions of a file, the last one per source path winning (as the page saves)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PrepareError(f"decisions file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PrepareError(f"cannot read decisions file {path}: {exc}") from exc
    latest: dict[str, Decision] = {}
    for decision in parse_decisions(text, str(path)):
        latest.pop(decision.source, None)  # keep file order of the latest decisions
        latest[decision.source] = decision
    return list(latest.values())


def write_decisions(path: str | Path, decisions: list[Decision]) -> None:
    """Replace the file atomically: a kill at any moment leaves the old or the new file."""
    atomic_write_csv(path, DECISIONS_COLUMNS, (d.to_row() for d in decisions))


@dataclass
class DecisionOutcome:
    """What applying a decisions file did: for report.json."""

    file: str
    applied: list[dict]
    refused: list[dict]

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "applied": self.applied,
            "refused": self.refused,
            "counts": {"applied": len(self.applied), "refused": len(self.refused)},
        }


def apply_decisions(
    processed: list,
    skipped: list[Skipped],
    classes: list[str],
    decisions: list[Decision],
    file: str,
) -> tuple[list, list[Skipped], DecisionOutcome]:
    """Relabel or drop decoded photos (`prepare.process.Processed`) as decided.

    Runs before dedupe, so a relabel that puts two copies of a photo in one class also ends
    their label conflict. Returns the photos to keep, the new skips and the outcome.
    """
    by_source = {it.source.path: it for it in processed}
    skipped_by_source = {s.path: s for s in skipped}
    class_of_shown = {display_text(c): c for c in classes}
    outcome = DecisionOutcome(file=file, applied=[], refused=[])
    changes: dict[str, Decision] = {}
    for d in decisions:
        problem = _refusal(
            d, by_source.get(d.source), skipped_by_source.get(d.source), class_of_shown
        )
        if problem:
            outcome.refused.append({**d.to_dict(), "reason": problem[0], "detail": problem[1]})
            continue
        outcome.applied.append(d.to_dict())
        changes[d.source] = d
    kept, excluded = [], []
    for it in processed:
        change = changes.get(it.source.path)
        if change is None or change.action == "keep":
            kept.append(it)
        elif change.action == "exclude":
            excluded.append(
                Skipped(
                    it.source.path,
                    it.source.label,
                    EXCLUDED_REASON,
                    f"excluded in review ({change.decided_at or 'no date'})",
                )
            )
        else:
            label = class_of_shown[change.label]
            kept.append(replace(it, source=replace(it.source, label=label)))
    return kept, excluded, outcome


def _refusal(
    d: Decision, item, skip: Skipped | None, class_of_shown: dict[str, str]
) -> tuple[str, str] | None:
    """(reason, detail) why a decision cannot be applied, or None."""
    if item is None:
        if skip is not None:
            return "not_usable", f"the file is skipped by prepare ({skip.reason}: {skip.detail})"
        return "vanished", "no file with this path in RAW any more"
    if item.sha256 != d.sha256:
        return "changed", (
            f"the file's content changed since the review (sha256 "
            f"{d.sha256[:12]}... then, {item.sha256[:12]}... now)"
        )
    now = display_text(item.source.label)
    if d.given and now != d.given:
        return "moved", f"the file is now in class {now!r}, it was reviewed in {d.given!r}"
    if d.action == "relabel" and d.label not in class_of_shown:
        return "unknown_class", (
            f"class {d.label!r} is not a class folder of RAW ({', '.join(sorted(class_of_shown))})"
        )
    return None


def decisions_summary(outcome: dict) -> str:
    """Lines for the terminal: what was applied, and each refused decision with its reason."""
    applied = outcome["applied"]
    actions = {a: sum(1 for d in applied if d["action"] == a) for a in ACTIONS}
    lines = [
        f"decisions {outcome['file']}: {len(applied)} applied ("
        + ", ".join(f"{n} {a}" for a, n in actions.items())
        + f"), "
        f"{len(outcome['refused'])} refused"
    ]
    lines += [f"  refused {d['source']}: {d['reason']} ({d['detail']})" for d in outcome["refused"]]
    return "\n".join(lines)
