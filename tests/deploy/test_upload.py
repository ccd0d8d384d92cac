"""Bundle upload to a real S3 protocol server (moto on 127.0.0.1): skip, verify, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from skyclass.deploy import DeployConfig, DeployError, default_prefix, upload_bundle

from .helpers import write_bundle

ONNX = bytes(range(256)) * 40  # 10 KB standing in for a model file


def _quiet(_: str) -> None:
    pass


def test_upload_then_skip_unchanged_then_only_changed(s3: Any, bucket: str, tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", ONNX)
    first = upload_bundle(bundle, bucket, "models/m/1", s3, log=_quiet)
    assert first.actions == {"model.onnx": "uploaded", "skyclass.json": "uploaded"}
    for name in first.actions:
        obj = s3.get_object(Bucket=bucket, Key=f"models/m/1/{name}")
        data = obj["Body"].read()
        assert data == (bundle / name).read_bytes()
        assert obj["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()

    again = upload_bundle(bundle, bucket, "models/m/1", s3, log=_quiet)
    assert set(again.actions.values()) == {"unchanged"}

    write_bundle(bundle, ONNX[::-1])  # a new export: model.onnx and skyclass.json change
    third = upload_bundle(bundle, bucket, "models/m/1", s3, log=_quiet)
    assert third.actions == {"model.onnx": "uploaded", "skyclass.json": "uploaded"}
    stored = s3.get_object(Bucket=bucket, Key="models/m/1/model.onnx")["Body"].read()
    assert stored == ONNX[::-1]


def test_only_what_the_lambda_serves_is_uploaded(s3: Any, bucket: str, tmp_path: Path) -> None:
    """An INT8 bundle: skyclass.json + model.int8.onnx go to S3; model.pt and FP32 stay here."""
    bundle = write_bundle(tmp_path / "b", ONNX, int8_bytes=ONNX[:2500])
    result = upload_bundle(bundle, bucket, "m/int8", s3, log=_quiet)
    assert list(result.actions) == ["model.int8.onnx", "skyclass.json"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="m/int8/")["Contents"]]
    assert sorted(keys) == ["m/int8/model.int8.onnx", "m/int8/skyclass.json"]
    assert s3.get_object(Bucket=bucket, Key="m/int8/model.int8.onnx")["Body"].read() == ONNX[:2500]


@pytest.mark.parametrize(
    "model_file", ["../model.onnx", "/etc/passwd.onnx", "model.pt", "missing.onnx"]
)
def test_served_file_must_be_a_listed_onnx_name(
    s3: Any, bucket: str, tmp_path: Path, model_file: str
) -> None:
    bundle = write_bundle(tmp_path / "b", ONNX)
    manifest = json.loads((bundle / "skyclass.json").read_text())
    manifest["serving"]["model_file"] = model_file
    (bundle / "skyclass.json").write_text(json.dumps(manifest))
    with pytest.raises(DeployError, match="serv"):
        upload_bundle(bundle, bucket, "p", s3, log=_quiet)
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_manifest_is_uploaded_last(s3: Any, bucket: str, tmp_path: Path) -> None:
    lines: list[str] = []
    upload_bundle(write_bundle(tmp_path / "b", ONNX), bucket, "p", s3, log=lines.append)
    assert lines[-1].split()[1].endswith("/skyclass.json")


def test_object_changed_behind_our_back_is_uploaded_again(
    s3: Any, bucket: str, tmp_path: Path
) -> None:
    bundle = write_bundle(tmp_path / "b", ONNX)
    upload_bundle(bundle, bucket, "p", s3, log=_quiet)
    # Same size and even the same metadata, other bytes: S3's own checksum tells them apart.
    digest = hashlib.sha256(ONNX).hexdigest()
    s3.put_object(
        Bucket=bucket,
        Key="p/model.onnx",
        Body=ONNX[::-1],
        Metadata={"sha256": digest},
        ChecksumAlgorithm="SHA256",
    )
    result = upload_bundle(bundle, bucket, "p", s3, log=_quiet)
    assert result.actions["model.onnx"] == "uploaded"
    assert s3.get_object(Bucket=bucket, Key="p/model.onnx")["Body"].read() == ONNX


def test_damaged_bundle_is_refused_before_any_upload(s3: Any, bucket: str, tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", ONNX)
    (bundle / "model.onnx").write_bytes(ONNX + b"x")
    with pytest.raises(DeployError, match="sha256"):
        upload_bundle(bundle, bucket, "p", s3, log=_quiet)
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_folder_without_manifest_or_onnx_is_refused(tmp_path: Path, s3: Any, bucket: str) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DeployError, match=r"skyclass\.json"):
        upload_bundle(tmp_path / "empty", bucket, "p", s3, log=_quiet)
    bundle = write_bundle(tmp_path / "b", ONNX)
    manifest = json.loads((bundle / "skyclass.json").read_text())
    del manifest["files"]["model.onnx"]
    (bundle / "skyclass.json").write_text(json.dumps(manifest))
    with pytest.raises(DeployError, match=r"model\.onnx"):
        upload_bundle(bundle, bucket, "p", s3, log=_quiet)
    with pytest.raises(DeployError, match="does not exist"):
        upload_bundle(tmp_path / "nowhere", bucket, "p", s3, log=_quiet)


def test_missing_bucket_is_a_clear_error(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="no-such-bucket"):
        upload_bundle(write_bundle(tmp_path / "b", ONNX), "no-such-bucket", "p", s3, log=_quiet)


def test_default_prefix_comes_from_the_model() -> None:
    assert (
        default_prefix({"model": {"name": "bird drone", "version": "2026-11-24"}})
        == "models/bird-drone/2026-11-24"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": 29}, "29 s"),
        ({"memory": 64}, "--memory"),
        ({"stage": "dev prod"}, "--stage"),
        ({"bucket": None}, "--bucket"),
        ({"bundle": None}, "BUNDLE_DIR"),
        ({"prefix": "/"}, "--prefix"),
        ({"arch": "aarch64"}, "--arch"),
    ],
)
def test_config_rejects_bad_options(kwargs: dict[str, Any], message: str, tmp_path: Path) -> None:
    options: dict[str, Any] = {"bundle": tmp_path, "bucket": "b", **kwargs}
    with pytest.raises(DeployError, match=message):
        DeployConfig(**options)
