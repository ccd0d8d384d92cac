"""Decisions: written by the review session, reloaded, applied by `prepare --decisions`."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest

from skyclass.cli import main
from skyclass.errors import PrepareError
from skyclass.prepare.decisions import read_decisions
from skyclass.review.server import ReviewSession


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under root: proves a folder was not touched."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def prepare_with_decisions(raw: Path, decisions: Path, out: Path) -> int:
    """`skyclass prepare RAW --decisions DECISIONS --out OUT` (small and on one core); exit code."""
    argv = ["prepare", str(raw), "--decisions", str(decisions), "--out", str(out)]
    return main([*argv, "--size", "64", "--workers", "1", "--quiet"])


def _manifest(zip_path: Path) -> tuple[dict[str, dict], dict]:
    with zipfile.ZipFile(zip_path) as zf:
        rows = csv.DictReader(io.StringIO(zf.read("manifest.csv").decode()))
        report = json.loads(zf.read("report.json"))
    return {r["source"]: r for r in rows}, report


def _decide_flips(session: ReviewSession, flips: dict[str, str]) -> tuple[list, dict]:
    """Accept the suggestion of every flagged flip; exclude the first other suspect."""
    accepted, excluded = [], None
    for i, issue in session.by_id.items():
        if issue["source"] in flips and issue["suggested"]:
            session.decide(i, "accept")
            accepted.append(issue["source"])
        elif excluded is None and issue["source"] not in flips:
            session.decide(i, "exclude")
            excluded = issue
    return accepted, excluded


def test_decisions_round_trip_and_apply(review_copy, flipped_raw, tmp_path):
    raw, flips = flipped_raw
    session = ReviewSession(review_copy)
    accepted, excluded = _decide_flips(session, flips)
    assert accepted and excluded is not None
    # Reload (a new server process would do exactly this): same decisions.
    reopened = ReviewSession(review_copy)
    assert reopened.state()["decisions"] == session.state()["decisions"]
    on_disk = {d.source: d for d in read_decisions(review_copy / "decisions.csv")}
    assert {s for s, d in on_disk.items() if d.action == "relabel"} == set(accepted)
    assert on_disk[excluded["source"]].action == "exclude"

    before = tree_state(raw)
    out = tmp_path / "fixed.zip"
    assert prepare_with_decisions(raw, review_copy / "decisions.csv", out) == 0
    assert tree_state(raw) == before, "prepare --decisions must never touch RAW"
    rows, report = _manifest(out)
    conflicts = {
        s["path"]: s["detail"] for s in report["skipped"] if s["reason"] == "label_conflict"
    }
    relabelled = [source for source in accepted if source in rows]
    assert relabelled
    for source in relabelled:
        assert rows[source]["class"] == flips[source]
        assert rows[source]["path"].split("/")[1] == flips[source]
    for source in set(accepted) - set(relabelled):
        # Relabelled, but an augmented copy of it that the review did not flag still sits in
        # the wrong folder: prepare then sees one photo under two classes and keeps neither.
        copies = [f for f in flips if f not in accepted and f in conflicts.get(source, "")]
        assert copies, (source, conflicts.get(source))
    assert excluded["source"] not in rows
    assert any(
        s["path"] == excluded["source"] and s["reason"] == "excluded_by_review"
        for s in report["skipped"]
    )
    applied = {d["source"]: d["action"] for d in report["decisions"]["applied"]}
    assert applied == {d.source: d.action for d in on_disk.values()}
    assert report["decisions"]["refused"] == []


def test_changed_or_vanished_files_are_reported_not_applied(review_copy, flipped_raw, tmp_path):
    src_raw, flips = flipped_raw
    raw = tmp_path / "raw"
    for path in src_raw.rglob("*.jpg"):  # a private copy: this test edits and deletes files
        (raw / path.relative_to(src_raw)).parent.mkdir(parents=True, exist_ok=True)
        (raw / path.relative_to(src_raw)).write_bytes(path.read_bytes())
    session = ReviewSession(review_copy)
    accepted, _ = _decide_flips(session, flips)
    changed, vanished = accepted[0], accepted[1]
    with open(raw / changed, "ab") as fh:  # still a valid JPEG, different bytes
        fh.write(b"edited")
    (raw / vanished).unlink()
    out = tmp_path / "fixed.zip"
    assert prepare_with_decisions(raw, review_copy / "decisions.csv", out) == 0
    rows, report = _manifest(out)
    refused = {d["source"]: d["reason"] for d in report["decisions"]["refused"]}
    assert refused == {changed: "changed", vanished: "vanished"}
    assert rows[changed]["class"] != flips[changed], "a changed file keeps its folder's class"
    assert vanished not in rows
    applied = {d["source"] for d in report["decisions"]["applied"]}
    assert applied == set(accepted) - {changed, vanished} | {
        d.source for d in read_decisions(review_copy / "decisions.csv") if d.action == "exclude"
    }


def test_a_bad_decisions_file_is_a_clear_error(tmp_path, flipped_raw):
    bad = tmp_path / "decisions.csv"
    bad.write_text(
        "source,sha256,given,action,label\nbird/x.jpg," + "0" * 64 + ",bird,rename,drone\n"
    )
    with pytest.raises(PrepareError, match="line 2: action 'rename'"):
        read_decisions(bad)
    assert (
        main(
            [
                "prepare",
                str(flipped_raw[0]),
                "--decisions",
                str(tmp_path / "none.csv"),
                "--out",
                str(tmp_path / "o.zip"),
                "--quiet",
            ]
        )
        == 2
    )
    assert not (tmp_path / "o.zip").exists()
