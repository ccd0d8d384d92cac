"""`skyclass run`: the whole pipeline on real images, end to end, through the CLI."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from skyclass.cli import main


def test_run_goes_from_raw_folder_to_a_served_prediction(eva4_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    code = main(["run", str(eva4_dir), "--out", str(out), "--epochs", "1", "--size", "64",
                 "--width-mult", "0.25", "--no-pretrained", "--workers", "1", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0
    with zipfile.ZipFile(out / "dataset.zip") as zf:
        assert "manifest.csv" in zf.namelist()
    assert (out / "run" / "best.pt").is_file()
    metrics = json.loads((out / "run" / "report" / "metrics.json").read_text())
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["num_images"]
    manifest = json.loads((out / "bundle" / "skyclass.json").read_text())
    assert manifest["class_names"] == sorted(p.name for p in eva4_dir.iterdir() if p.is_dir())
    # The last line is the handler's answer for one real photo: a known label with a probability.
    answers = printed.strip().splitlines()[-1].split(": ", 1)[1].split(", ")
    labels = [a.rsplit(" ", 1)[0] for a in answers]
    assert len(labels) == 3 and set(labels) <= set(manifest["class_names"])
    assert all(a.endswith("%") for a in answers)


def test_run_reports_a_missing_input_folder(tmp_path: Path, capsys):
    code = main(["run", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "o" / "dataset.zip").exists()


def test_run_over_an_earlier_run_writes_nothing(eva4_dir: Path, tmp_path: Path, capsys):
    """prepare used to overwrite OUT/dataset.zip before train refused the existing run."""
    out = tmp_path / "out"
    (out / "run").mkdir(parents=True)
    (out / "dataset.zip").write_bytes(b"the dataset the earlier run was trained on")
    (out / "run" / "last.pt").write_bytes(b"checkpoint")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code = main(["run", str(eva4_dir), "--out", str(out), "--epochs", "1", "--quiet"])
    assert code == 2
    assert "--resume" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_run_checks_the_predict_image_before_starting(eva4_dir: Path, tmp_path: Path, capsys):
    code = main(["run", str(eva4_dir), "--out", str(tmp_path / "o"), "--quiet",
                 "--predict-image", str(tmp_path / "missing.jpg")])
    assert code == 2 and "--predict-image" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
