"""`skyclass predict` with a bundle folder and with a URL (an in-process server, real HTTP)."""

from __future__ import annotations

import json
import threading

import pytest

from skyclass.cli import main as cli_main
from skyclass.predict import PredictConfig, PredictError, encode_multipart, predict
from skyclass.serving.classifier import Classifier


@pytest.fixture(scope="module")
def images(eva4_images):
    return [paths[0] for paths in eva4_images.values()]


def test_predict_local_table_and_json(bundle_dir, images, capsys):
    classifier = Classifier.from_bundle(bundle_dir)
    assert cli_main(["predict", str(bundle_dir), *map(str, images)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["image", "#", "label", "probability"]
    assert len(table) == 1 + 3 * len(images)
    assert cli_main(["predict", str(bundle_dir), str(images[0]), "--json", "--top-k", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = classifier.predict_image(images[0], 2)
    assert [p["label"] for p in result[0]["predictions"]] == [p.label for p in expected]


def test_bad_image_is_reported_not_fatal(bundle_dir, images, eva4_dir, capsys):
    stray = eva4_dir / "SOURCES.csv"  # a real non-image file in the data set
    assert cli_main(["predict", str(bundle_dir), str(images[0]), str(stray), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert "predictions" in result[0] and result[1]["error"] == "bad_image"


def test_user_errors(bundle_dir, tmp_path, images, capsys):
    assert cli_main(["predict", str(bundle_dir), str(tmp_path / "none.jpg")]) == 2
    assert "no such image" in capsys.readouterr().err
    assert cli_main(["predict", str(tmp_path), str(images[0])]) == 2
    assert "not a model bundle" in capsys.readouterr().err
    with pytest.raises(PredictError, match="cannot reach"):
        predict(PredictConfig("http://127.0.0.1:9/", [images[0]], timeout=5))


def test_predict_url_matches_local(bundle_dir, images):
    from skyclass.serving.local_server import make_server

    server = make_server(str(bundle_dir), port=0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        remote = predict(PredictConfig(url, images, top_k=4))
        local = predict(PredictConfig(str(bundle_dir), images, top_k=4))
    finally:
        server.shutdown()
        server.server_close()
    for r, loc in zip(remote, local, strict=True):
        assert [p["label"] for p in r["predictions"]] == [p["label"] for p in loc["predictions"]]
        assert r["predictions"][0]["probability"] == pytest.approx(
            loc["predictions"][0]["probability"], abs=1e-6
        )


def test_multipart_encoding_is_parsed_by_the_server_parser():
    from skyclass.serving.events import Headers, Request, extract_image

    data = bytes(range(256)) * 10 + b"\r\n--x\r\n"
    body, ctype = encode_multipart("file", 'we"ird\nname.png', data, "image/png")
    request = Request("POST", "/", Headers({"Content-Type": ctype}), {}, body, "r")
    assert extract_image(request) == data


def test_predict_folder_writes_csv_and_jsonl_matching_the_bundle(
    bundle_dir, eva4_dir, tmp_path, capsys
):
    """A folder, searched recursively, batched: every class's probability per image, equal to
    what the bundle's classifier answers for that image alone; the stray file is reported."""
    import csv

    classifier = Classifier.from_bundle(bundle_dir)
    csv_path, jsonl_path = tmp_path / "p.csv", tmp_path / "p.jsonl"
    code = cli_main(
        [
            "predict",
            str(bundle_dir),
            str(eva4_dir),
            "--csv",
            str(csv_path),
            "--jsonl",
            str(jsonl_path),
            "--batch-size",
            "16",
            "--quiet",
        ]
    )
    assert code == 1  # SOURCES.csv is no image
    assert "175 images: 174 classified, 1 could not be read" in capsys.readouterr().err
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    files = sorted(p for p in eva4_dir.rglob("*") if p.is_file())
    assert [r["image"] for r in rows] == [str(p) for p in files]
    for row in rows:
        if row["image"].endswith("SOURCES.csv"):
            assert row["error"] and not row["predicted"]
            continue
        alone = classifier.predict_proba(classifier.preprocess(row["image"]))[0]
        assert [float(row[c]) for c in classifier.class_names] == pytest.approx(
            alone.tolist(), abs=1e-5
        )
        assert row["predicted"] == classifier.class_names[int(alone.argmax())]
        assert not row["error"]
    lines = [json.loads(line) for line in jsonl_path.read_text().splitlines()]
    assert len(lines) == len(rows)
    ok = next(r for r in lines if "predictions" in r)
    assert set(ok["probabilities"]) == set(classifier.class_names)
    assert sum(ok["probabilities"].values()) == pytest.approx(1, abs=1e-5)


def test_predict_output_file_checked_before_any_work(bundle_dir, images, tmp_path, capsys):
    assert cli_main(["predict", str(bundle_dir), str(images[0]), "--csv", str(tmp_path)]) == 2
    assert "is a folder: give a file name" in capsys.readouterr().err
    missing = tmp_path / "no" / "p.csv"
    assert cli_main(["predict", str(bundle_dir), str(images[0]), "--csv", str(missing)]) == 2
    assert "mkdir -p" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
