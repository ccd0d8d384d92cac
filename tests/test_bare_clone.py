"""The whole chain from a bare clone: no ../shared/datasets, only the generated photo folder.

conftest's synthetic_zip/run/bundle are `skyclass prepare`, `train` and `export` run through
the command line on tests/synthetic.py's photos; this test checks what they wrote, serves the
bundle with `skyclass serve`'s server on a free port and calls it with `skyclass predict URL`,
comparing the answer with the bundle's classifier in this process.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from skyclass.checkpoint import load_checkpoint
from skyclass.cli import main
from skyclass.dataset_zip import PreparedDataset
from skyclass.serving.classifier import Classifier
from skyclass.serving.local_server import make_server
from synthetic import CLASSES


def test_prepare_train_export_serve_predict(
    synthetic_dir: Path,
    synthetic_zip: Path,
    synthetic_run: Path,
    synthetic_bundle: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dataset = PreparedDataset(synthetic_zip)
    assert dataset.classes == sorted(CLASSES) and len(dataset.entries) == 48
    assert load_checkpoint(synthetic_run / "best.pt")["config"]["width_mult"] == 0.25
    manifest = json.loads((synthetic_bundle / "skyclass.json").read_text())
    assert manifest["class_names"] == sorted(CLASSES)
    assert manifest["parity"]["top1_identical"] is True

    server = make_server(str(synthetic_bundle), port=0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host, port = server.server_address[:2]
        photo = synthetic_dir / "ufo" / "ufo_00.jpg"
        capsys.readouterr()
        assert main(["predict", f"http://{host}:{port}/", str(photo), "--json"]) == 0
        [answer] = json.loads(capsys.readouterr().out)
    finally:
        server.shutdown()
        server.server_close()
    direct = Classifier.from_bundle(synthetic_bundle).predict_image(photo, top_k=3)
    assert [p["label"] for p in answer["predictions"]] == [p.label for p in direct]
    assert [p["probability"] for p in answer["predictions"]] == pytest.approx(
        [p.probability for p in direct], abs=1e-6
    )
