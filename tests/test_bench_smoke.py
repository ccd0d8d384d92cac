"""Every bench/ script still runs: its imports resolve (`--help`), and the ones that can work
on tiny inputs run their main path end to end on the generated photos in seconds.

The results are written into tmp_path, never into bench/results/ (those files are the real
measurements). Not run end to end here, because they need hours, ../shared or other services:
train_accuracy (trains full recipes), cpu_memory (four fresh processes training width 1.0),
dedupe_quality and ddd_honest_accuracy (ground truth of the real data sets: video names,
augmented copies), serve_load (minutes of load), reliability (runs the others and pytest),
review_quality, serve_latency, deploy_offline and lambda_size (their own heavy set-ups:
lambda_size builds both Lambda packages).
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))  # _: helpers


def run_script(name: str, *args: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run bench/NAME as `python bench/NAME ARGS...` would, in this process; the exit code."""
    monkeypatch.setattr(sys, "argv", [str(BENCH / name), *args])
    monkeypatch.syspath_prepend(str(BENCH))
    try:
        runpy.run_path(str(BENCH / name), run_name="__main__")
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_imports_and_explains_its_options(name: str, monkeypatch, capsys) -> None:
    assert run_script(name, "--help", monkeypatch=monkeypatch) == 0
    assert "usage:" in capsys.readouterr().out


def test_predict_batch(
    synthetic_bundle: Path, synthetic_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "predict_batch.json"
    assert (
        run_script(
            "predict_batch.py",
            "--bundle",
            str(synthetic_bundle),
            "--data",
            str(synthetic_dir),
            "--images",
            "8",
            "--repeats",
            "1",
            "--batch-size",
            "4",
            "--out",
            str(out),
            monkeypatch=monkeypatch,
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["images"] == 8 and result["max_abs_prob_diff"] < 1e-4


def test_prepare_speed(synthetic_dir: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "prepare.json"
    assert (
        run_script(
            "prepare_speed.py",
            "--raw",
            str(synthetic_dir),
            "--repeats",
            "1",
            "--out",
            str(out),
            monkeypatch=monkeypatch,
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["totals"]["kept"] == 48 and len(result["near_threshold_sweep"]) == 5


def test_evaluate_bird_drone(
    synthetic_run: Path, synthetic_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "evaluate.json"
    assert (
        run_script(
            "evaluate_bird_drone.py",
            "--run",
            f"tiny={synthetic_run}",
            "--raw",
            str(synthetic_dir),
            "--out",
            str(out),
            monkeypatch=monkeypatch,
        )
        == 0
    )
    [run] = json.loads(out.read_text())["runs"]
    assert run["test_split"]["num_images"] == 8
    assert run["raw_originals_serving_path"]["num_images"] == 8


def test_loader_throughput(synthetic_zip: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "loader.json"
    assert (
        run_script(
            "loader_throughput.py",
            "--data",
            str(synthetic_zip),
            "--workers",
            "0",
            "--cv2-threads",
            "1",
            "--out",
            str(out),
            "--note",
            "smoke run",
            monkeypatch=monkeypatch,
        )
        == 0
    )
    result = json.loads(out.read_text())
    [row] = result["rows"]
    assert row["images_per_s"] > 0
    assert_run_recorded(result, "loader_throughput.py", "smoke run")


def test_epoch_breakdown(synthetic_zip: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "epoch.json"
    assert (
        run_script(
            "epoch_breakdown.py",
            "--data",
            str(synthetic_zip),
            "--device",
            "cpu",
            "--workers",
            "0",
            "--out",
            str(out),
            "--label",
            "tiny",
            monkeypatch=monkeypatch,
        )
        == 0
    )
    result = json.loads(out.read_text())["sections"]["tiny"]
    assert result["train_images"] > 0 and result["steps_images_per_s"] > 0
    assert_run_recorded(result, "epoch_breakdown.py", None)


def assert_run_recorded(result: dict, script: str, note: str | None) -> None:
    """The keys bench/_common.run_record writes: a results file says how it was made."""
    assert result["command"][0].endswith(script)
    assert result["machine"]["cpus"] >= 1 and result["machine"]["torch"]
    assert result["utc"].endswith("+00:00") and len(result["load_average_after"]) == 3
    assert result["note"] == note


def test_labelled_sections_keep_each_other_and_never_wrap_a_flat_result(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    from _common import write_json, write_section

    out = tmp_path / "compare.json"
    write_section(out, "before", {"x": 1})
    write_section(out, "after", {"x": 2})
    write_section(out, "before", {"x": 3})  # a rerun replaces its own section only
    assert json.loads(out.read_text()) == {"sections": {"before": {"x": 3}, "after": {"x": 2}}}
    flat = tmp_path / "flat.json"
    write_json(flat, {"x": 1})
    with pytest.raises(SystemExit, match="not a file of labelled sections"):
        write_section(flat, "before", {"x": 2})
    assert json.loads(flat.read_text()) == {"x": 1}


def test_fuzz_handler(synthetic_bundle: Path, tmp_path: Path, monkeypatch) -> None:
    stats = tmp_path / "fuzz.json"
    assert (
        run_script(
            "fuzz_handler.py",
            "--engine",
            "random",
            "--executions",
            "30",
            "--seconds",
            "30",
            "--bundle",
            str(synthetic_bundle),
            "--stats-out",
            str(stats),
            monkeypatch=monkeypatch,
        )
        == 0
    )
    assert json.loads(stats.read_text())["executions"] >= 30
