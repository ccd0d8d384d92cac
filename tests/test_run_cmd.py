"""`skyclass run`: the whole pipeline, end to end, through the CLI.

On the generated photo folder (tests/synthetic.py: 48 photos, 4 classes), so it runs from a
bare clone; each stage on real photos is tested on its own (conftest's tiny_run, bundle_dir).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from skyclass.cli import main


def test_run_goes_from_raw_folder_to_a_served_prediction(
    synthetic_dir: Path, tmp_path: Path, capsys
):
    out = tmp_path / "out"
    code = main(
        [
            "run",
            str(synthetic_dir),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--size",
            "64",
            "--width-mult",
            "0.25",
            "--no-pretrained",
            "--workers",
            "1",
            "--quiet",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    with zipfile.ZipFile(out / "dataset.zip") as zf:
        assert "manifest.csv" in zf.namelist()
    assert (out / "run" / "best.pt").is_file()
    metrics = json.loads((out / "run" / "report" / "metrics.json").read_text())
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["num_images"]
    manifest = json.loads((out / "bundle" / "skyclass.json").read_text())
    assert manifest["class_names"] == sorted(p.name for p in synthetic_dir.iterdir() if p.is_dir())
    assert manifest["model"]["name"] == synthetic_dir.name  # the data folder's, not "run"
    assert (
        f"skyclass evaluation: {synthetic_dir.name}"
        in (out / "run" / "report" / "report.html").read_text()
    )
    # Then the handler's answer for one real test photo, with its true class and a verdict.
    *_, prediction, last = printed.strip().splitlines()
    name, rest = prediction.split(": true class ", 1)
    true_class, rest = rest.split("; predicted ", 1)
    answers, verdict = rest.rsplit(" (", 1)
    labels = [a.rsplit(" ", 1)[0] for a in answers.split(", ")]
    assert true_class in manifest["class_names"] and Path(name).parent.name == true_class
    assert len(labels) == 3 and set(labels) <= set(manifest["class_names"])
    assert verdict == ("right)" if labels[0] == true_class else "MISS)")
    # The last line: the test accuracy and where the report is.
    report = out / "run" / "report" / "report.html"
    assert last == (
        f"test accuracy {metrics['accuracy']:.2%} ({metrics['num_images']} images); "
        f"report: {report}"
    )


def test_run_reports_a_missing_input_folder(tmp_path: Path, capsys):
    code = main(["run", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "o" / "dataset.zip").exists()


def test_run_over_an_earlier_run_writes_nothing(synthetic_dir: Path, tmp_path: Path, capsys):
    """prepare used to overwrite OUT/dataset.zip before train refused the existing run."""
    out = tmp_path / "out"
    (out / "run").mkdir(parents=True)
    (out / "dataset.zip").write_bytes(b"the dataset the earlier run was trained on")
    (out / "run" / "last.pt").write_bytes(b"checkpoint")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code = main(["run", str(synthetic_dir), "--out", str(out), "--epochs", "1", "--quiet"])
    assert code == 2
    assert "--resume" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_run_checks_the_predict_image_before_starting(synthetic_dir: Path, tmp_path: Path, capsys):
    code = main(
        [
            "run",
            str(synthetic_dir),
            "--out",
            str(tmp_path / "o"),
            "--quiet",
            "--predict-image",
            str(tmp_path / "missing.jpg"),
        ]
    )
    assert code == 2 and "--predict-image" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
