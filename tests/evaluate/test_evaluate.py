"""Real evaluation of a tiny trained run (tests/conftest.py `tiny_run`) on real images."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skyclass.checkpoint import load_checkpoint
from skyclass.cli import main
from skyclass.dataset_zip import PreparedDataset
from skyclass.errors import EvaluateError
from skyclass.evaluate import REPORT_FILES, EvaluateConfig, evaluate
from skyclass.evaluate.plots import gallery_size_px

EVA4_NAMES = ["Flying Birds", "Large QuadCopters", "Small QuadCopters", "Winged Drones"]


@pytest.fixture(scope="module")
def report(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The run evaluated on its own test split (the dataset recorded in its checkpoint)."""
    out = tmp_path_factory.mktemp("report")
    metrics = evaluate(EvaluateConfig(target=str(tiny_run), out=str(out), quiet=True))
    return metrics, out


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        img.load()  # decodes every pixel: a truncated PNG fails here
        return img.size


def test_report_numbers_are_consistent(report, eva4_zip: Path) -> None:
    metrics, out = report
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    saved = json.loads((out / "metrics.json").read_text())
    cm = np.array(saved["confusion_matrix"])
    test_split = PreparedDataset(eva4_zip).split("test")
    assert cm.shape == (4, 4)
    assert cm.sum() == saved["num_images"] == len(test_split)
    assert saved["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert saved["accuracy"] == pytest.approx(metrics["accuracy"])
    assert len(saved["misclassified"]) == cm.sum() - np.trace(cm)
    for i, name in enumerate(EVA4_NAMES):
        assert (
            saved["per_class"][name]["support"]
            == cm[i].sum()
            == sum(e.label == name for e in test_split)
        )
    confidences = [m["confidence"] for m in saved["misclassified"]]
    assert confidences == sorted(confidences, reverse=True)
    assert all(m["true"] != m["predicted"] and m["path"] for m in saved["misclassified"])
    assert saved["short_names"] == ["FB", "LQ", "SQ", "WD"]
    assert saved["skipped"] == []


def test_accuracy_matches_what_training_measured(report, tiny_run: Path) -> None:
    """Same checkpoint, same split, same eval transform: the training loop's number."""
    metrics, _ = report
    recorded = load_checkpoint(tiny_run / "best.pt")["metrics"]["test_acc"]
    assert metrics["accuracy"] == pytest.approx(recorded, abs=1e-6)


def test_pngs_decode_with_expected_grids(report) -> None:
    metrics, out = report
    cm = np.array(metrics["confusion_matrix"])
    most_wrong = max(int(cm[i].sum() - cm[i, i]) for i in range(4))
    assert _png_size(out / "misclassified.png") == gallery_size_px(
        4,
        max(1, min(10, most_wrong)),
        "Misclassified (most confident mistakes first)",
        row_labels=True,
    )
    correct = min(25, int(np.trace(cm)))
    assert _png_size(out / "correct.png") == gallery_size_px(
        max(1, math.ceil(correct / 5)), 5, f"Correctly classified ({correct} shown)"
    )
    assert _png_size(out / "curves.png")[0] > 600
    assert _png_size(out / "confusion_matrix.png")[0] > 400


def test_html_is_self_contained(report) -> None:
    _, out = report
    page = (out / "report.html").read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, flags=re.I)
    assert "http://" not in page and "https://" not in page
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 4
    assert "width mult" in page  # run config
    assert "near_duplicate_images" in page  # prepare's dataset summary


def _folder(root: Path, eva4_images: dict[str, list[Path]], per_class: int = 3) -> Path:
    for name in EVA4_NAMES:
        (root / name).mkdir(parents=True)
        for src in eva4_images[name][:per_class]:
            (root / name / src.name).write_bytes(src.read_bytes())
    return root


def test_cli_folder_skips_and_lists_unreadable_files(
    tiny_run: Path, eva4_images, tmp_path: Path, capsys
) -> None:
    folder = _folder(tmp_path / "photos", eva4_images)
    good = eva4_images["Winged Drones"][0].read_bytes()
    (folder / "Winged Drones" / "truncated.png").write_bytes(good[: len(good) // 3])
    (folder / "Flying Birds" / "notes.txt").write_text("not a photo")
    out = tmp_path / "report"
    rc = main(
        [
            "evaluate",
            str(tiny_run),
            "--data",
            str(folder),
            "--out",
            str(out),
            "--checkpoint",
            "last",
        ]
    )
    assert rc == 0
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["num_images"] == sum(map(sum, saved["confusion_matrix"])) == 12
    skipped = {s["path"]: s["reason"] for s in saved["skipped"]}
    assert skipped == {
        "Winged Drones/truncated.png": "corrupt",
        "Flying Birds/notes.txt": "not_an_image",
    }
    assert saved["source"]["preprocessing"].startswith("serving preprocessing")
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "skipped Winged Drones/truncated.png: corrupt" in printed


def test_class_mismatch_is_a_clear_error(
    tiny_run: Path, eva4_images, tmp_path: Path, capsys
) -> None:
    folder = _folder(tmp_path / "photos", eva4_images, per_class=1)
    (folder / "Flying Birds").rename(folder / "Helicopters")
    rc = main(["evaluate", str(tiny_run), "--data", str(folder), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "do not match the model's" in err and "Helicopters" in err
    assert not (tmp_path / "r").exists()


def test_dataset_zip_with_other_classes_is_refused(
    tiny_run: Path, eva4_images, tmp_path: Path
) -> None:
    from skyclass.prepare import PrepareConfig, prepare

    raw = tmp_path / "raw"
    for name in ("bird", "drone"):
        (raw / name).mkdir(parents=True)
    for i, src in enumerate(eva4_images["Flying Birds"][:4] + eva4_images["Winged Drones"][:4]):
        (raw / ("bird" if i < 4 else "drone") / src.name).write_bytes(src.read_bytes())
    other = tmp_path / "other.zip"
    prepare(PrepareConfig(raw=raw, out=other, size=64, workers=1, quiet=True, dedupe="off"))
    with pytest.raises(EvaluateError, match=r"missing from the data.*different class list"):
        evaluate(EvaluateConfig(target=str(tiny_run), data=str(other), out=str(tmp_path / "r")))


def test_unfinished_run_and_empty_folder(tiny_run: Path, tmp_path: Path, capsys) -> None:
    empty_run = tmp_path / "run"
    empty_run.mkdir()
    assert main(["evaluate", str(empty_run)]) == 2
    assert "has no best.pt" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["evaluate", str(tiny_run), "--data", str(empty), "--out", str(tmp_path)]) == 2
    assert "no class folders" in capsys.readouterr().err
    (empty / "Flying Birds").mkdir()
    assert main(["evaluate", str(tiny_run), "--data", str(empty), "--out", str(tmp_path)]) == 2
    assert "are empty" in capsys.readouterr().err


BUNDLE_SCRIPT = """
import json, sys
from skyclass.evaluate import EvaluateConfig, evaluate
metrics = evaluate(EvaluateConfig(target=sys.argv[1], data=sys.argv[2], out=sys.argv[3],
                                  quiet=True))
print(json.dumps({"torch": "torch" in sys.modules, "cm": metrics["confusion_matrix"]}))
"""


def test_bundle_is_evaluated_without_torch_and_agrees_with_the_run(
    tiny_run: Path, bundle_dir: Path, eva4_images, tmp_path: Path
) -> None:
    import subprocess
    import sys

    folder = _folder(tmp_path / "photos", eva4_images, per_class=4)
    out = tmp_path / "bundle-report"
    done = subprocess.run(
        [sys.executable, "-c", BUNDLE_SCRIPT, str(bundle_dir), str(folder), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["torch"] is False  # ONNX Runtime path: the serving extras are enough
    assert (out / "report.html").is_file() and not (out / "curves.png").exists()
    run_metrics = evaluate(
        EvaluateConfig(
            target=str(tiny_run), data=str(folder), out=str(tmp_path / "run-report"), quiet=True
        )
    )
    assert result["cm"] == run_metrics["confusion_matrix"]
    assert sum(map(sum, result["cm"])) == 16


def test_folder_with_no_readable_image(tiny_run: Path, tmp_path: Path) -> None:
    (tmp_path / "photos" / "Winged Drones").mkdir(parents=True)
    (tmp_path / "photos" / "Winged Drones" / "a.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(EvaluateError, match=r"none of the 1 files.*a\.jpg"):
        evaluate(
            EvaluateConfig(
                target=str(tiny_run),
                data=str(tmp_path / "photos"),
                out=str(tmp_path / "r"),
                quiet=True,
            )
        )


def test_moved_dataset_asks_for_data(tiny_run: Path, tmp_path: Path) -> None:
    from skyclass.checkpoint import save_checkpoint

    state = load_checkpoint(tiny_run / "best.pt")
    state["config"]["data"] = str(tmp_path / "gone.zip")
    save_checkpoint(tmp_path / "run" / "best.pt", state)
    with pytest.raises(EvaluateError, match=r"gone\.zip, which does not exist.*--data"):
        evaluate(EvaluateConfig(target=str(tmp_path / "run"), quiet=True))
