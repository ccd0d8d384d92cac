"""MODEL_URI=s3://... against a real S3 protocol server (moto) on 127.0.0.1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

from skyclass.serving.bundle import BundleError, resolve_bundle, sha256_file  # noqa: E402
from skyclass.serving.lambda_handler import App, load_default_model  # noqa: E402

from .aws_events import v2_event  # noqa: E402
from .conftest import body_json  # noqa: E402

BUCKET = "skyclass-models"


@pytest.fixture(scope="module")
def s3_endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture()
def s3(s3_endpoint, monkeypatch, tmp_path):
    for key, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SKYCLASS_CACHE_DIR": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3")  # endpoint from AWS_ENDPOINT_URL, like the handler's
    if BUCKET not in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
        client.create_bucket(Bucket=BUCKET)
    return client


def _upload(client, bundle: Path, prefix: str, files=("skyclass.json", "model.onnx")) -> str:
    for name in files:
        client.upload_file(str(bundle / name), BUCKET, f"{prefix}/{name}")
    return f"s3://{BUCKET}/{prefix}"


def test_s3_bundle_is_downloaded_verified_and_served(s3, bundle_dir, photo_bytes, monkeypatch):
    uri = _upload(s3, bundle_dir, "models/v1")
    folder = resolve_bundle(uri)
    assert (folder / "model.onnx").read_bytes() == (bundle_dir / "model.onnx").read_bytes()
    assert not (folder / "model.pt").exists()  # serving downloads only what it runs

    monkeypatch.setenv("MODEL_URI", uri)  # what the Lambda function is configured with
    app = App(loader=load_default_model)
    response = app(
        v2_event(method="POST", headers={"content-type": "image/jpeg"}, body=photo_bytes)
    )
    assert response["statusCode"] == 200, response["body"]
    assert body_json(response)["model"]["sha256"] == sha256_file(bundle_dir / "model.onnx")


def test_cached_copy_is_reused_on_a_later_cold_start(s3, bundle_dir):
    uri = _upload(s3, bundle_dir, "models/cache")
    first = resolve_bundle(uri)
    stat = (first / "model.onnx").stat()
    # The model object disappears from S3: a later cold start must not need it again.
    s3.delete_object(Bucket=BUCKET, Key="models/cache/model.onnx")
    second = resolve_bundle(uri)
    assert second == first
    assert (second / "model.onnx").stat().st_mtime_ns == stat.st_mtime_ns
    # A damaged cached copy is not trusted: it is fetched again (and here, fails loudly).
    (first / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="cannot read"):
        resolve_bundle(uri)


def test_new_export_under_same_prefix_replaces_cached_copy(s3, bundle_dir, tmp_path):
    uri = _upload(s3, bundle_dir, "models/moving")
    first = resolve_bundle(uri)
    manifest = (bundle_dir / "skyclass.json").read_text()
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "model.onnx").write_bytes((bundle_dir / "model.onnx").read_bytes())
    (changed / "skyclass.json").write_text(
        manifest.replace('"format_version": 1', '"format_version": 1 ')
    )
    _upload(s3, changed, "models/moving")
    second = resolve_bundle(uri)
    assert (second / "skyclass.json").read_text() == (changed / "skyclass.json").read_text()
    assert second == first


def test_sha256_mismatch_is_rejected_and_not_cached(
    s3, bundle_dir, tmp_path, photo_bytes, monkeypatch
):
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    (tampered / "skyclass.json").write_bytes((bundle_dir / "skyclass.json").read_bytes())
    data = bytearray((bundle_dir / "model.onnx").read_bytes())
    data[-100] ^= 0xFF
    (tampered / "model.onnx").write_bytes(bytes(data))
    uri = _upload(s3, tampered, "models/tampered")
    with pytest.raises(BundleError, match="sha256"):
        resolve_bundle(uri)
    cache = Path(tmp_path / "cache")
    assert not any((p / "model.onnx").exists() for p in cache.iterdir())
    monkeypatch.setenv("MODEL_URI", uri)
    response = App(loader=load_default_model)(
        v2_event(method="POST", headers={"content-type": "image/jpeg"}, body=photo_bytes)
    )
    assert response["statusCode"] == 503
    assert "sha256" in body_json(response)["message"]


def test_missing_s3_bundle_is_a_clear_error(s3):
    with pytest.raises(BundleError, match="cannot read s3://skyclass-models/nothing"):
        resolve_bundle(f"s3://{BUCKET}/nothing/here")
    with pytest.raises(BundleError, match="expected s3://bucket/prefix"):
        resolve_bundle("s3:///x")


def test_a_file_where_the_cache_folder_should_be_is_bypassed(
    s3, bundle_dir, tmp_path, photo_bytes, monkeypatch
):
    """A regular file at SKYCLASS_CACHE_DIR: the model is still served (from another folder)."""
    (tmp_path / "cache").write_bytes(b"not a folder")
    uri = _upload(s3, bundle_dir, "models/blocked-root")
    folder = resolve_bundle(uri)
    assert folder.parent != tmp_path / "cache" and (folder / "model.onnx").is_file()
    assert (tmp_path / "cache").read_bytes() == b"not a folder"  # someone's file: left alone
    monkeypatch.setenv("MODEL_URI", uri)
    response = App(loader=load_default_model)(
        v2_event(method="POST", headers={"content-type": "image/jpeg"}, body=photo_bytes)
    )
    assert response["statusCode"] == 200, response["body"]


def test_a_file_in_the_bundles_cache_slot_is_repaired(s3, bundle_dir, tmp_path):
    uri = _upload(s3, bundle_dir, "models/blocked-slot")
    slot = resolve_bundle(uri)
    shutil.rmtree(slot)
    slot.write_bytes(b"stray file")  # where the cached bundle folder belongs
    again = resolve_bundle(uri)
    assert again == slot and (again / "model.onnx").is_file()
