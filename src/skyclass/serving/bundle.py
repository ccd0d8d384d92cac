"""The model bundle: what `export` writes and what every server reads.

BUNDLE_DIR/
  model.onnx     the network for ONNX Runtime (dynamic batch, one file)
  model.int8.onnx  the same network quantized to INT8 (only when it passed export's accuracy
                 gate); skyclass.json's "serving" entry names the file servers load
  model.pt       the same network as CPU TorchScript (for torch users; serving ignores it)
  skyclass.json  class names, preprocessing, training recipe/metrics, sha256 of each file

`MODEL_URI` is a local folder or `s3://bucket/prefix`. An S3 bundle is downloaded once into
a cache under /tmp (the only writable place on Lambda, and it survives warm restarts of the
same container), checked against the sha256 values in its skyclass.json, and reused on later
cold starts as long as the skyclass.json in S3 is unchanged. Only numpy-free stdlib code
here; boto3 is imported only for s3:// URIs so a local bundle needs no AWS library.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from skyclass.errors import SkyclassError
from skyclass.fileio import sha256_file

MANIFEST_NAME = "skyclass.json"
ONNX_NAME = "model.onnx"
TORCHSCRIPT_NAME = "model.pt"
BUNDLE_FORMAT = "skyclass-bundle"
BUNDLE_FORMAT_VERSION = 1
INT8_NAME = "model.int8.onnx"
# A served model file is a plain name inside the bundle, never a path (the manifest may be hostile).
_MODEL_FILE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.onnx")
CACHE_ENV = "SKYCLASS_CACHE_DIR"


class BundleError(SkyclassError):
    """A bundle that is missing, incomplete, or whose files do not match their sha256."""


def parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    """Decode and sanity-check a skyclass.json so a wrong file fails with a clear message."""
    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{where} is not a skyclass bundle manifest (create one with "
                          "`skyclass export RUN_DIR --out BUNDLE_DIR`)")
    for key in ("class_names", "preprocess", "files", "model"):
        if key not in manifest:
            raise BundleError(f"{where} has no {key!r} entry")
    return manifest


def served_model_name(manifest: dict[str, Any]) -> str:
    """The model file servers load: skyclass.json's serving.model_file, else model.onnx.

    Bundles from before quantization have no "serving" entry and serve model.onnx.
    """
    serving = manifest.get("serving")
    name = serving.get("model_file", ONNX_NAME) if isinstance(serving, dict) else ONNX_NAME
    if not isinstance(name, str) or not _MODEL_FILE_RE.fullmatch(name):
        raise BundleError(f"{MANIFEST_NAME}: serving.model_file {name!r} is not a plain .onnx "
                          "file name")
    if name not in manifest["files"]:
        raise BundleError(f"{MANIFEST_NAME} serves {name} but lists no such file")
    return name


def serving_files(manifest: dict[str, Any]) -> tuple[str, ...]:
    """What a server needs from the bundle (model.pt and an unserved model are never fetched)."""
    return (served_model_name(manifest),)


def read_manifest(bundle: Path) -> dict[str, Any]:
    path = Path(bundle) / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(f"{bundle} is not a model bundle: it has no {MANIFEST_NAME}")
    return parse_manifest(path.read_bytes(), str(path))


def verify_files(bundle: Path, manifest: dict[str, Any], names: tuple[str, ...]) -> None:
    """Refuse a file whose sha256 differs from the manifest: a torn download or a wrong model."""
    for name in names:
        expected = manifest["files"].get(name, {}).get("sha256")
        path = Path(bundle) / name
        if expected is None:
            raise BundleError(f"{MANIFEST_NAME} lists no sha256 for {name}")
        if not path.is_file():
            raise BundleError(f"bundle {bundle} has no {name}")
        actual = sha256_file(path)
        if actual != expected:
            raise BundleError(
                f"{path}: sha256 {actual[:16]}... does not match {MANIFEST_NAME} "
                f"({expected[:16]}...); the file is damaged or from another export"
            )


def open_local(bundle: str | Path, names: tuple[str, ...] | None = None) -> Path:
    """Check a local bundle folder (default: its served model) and return it."""
    path = Path(bundle)
    if not path.is_dir():
        raise BundleError(f"model bundle {path} does not exist or is not a folder")
    manifest = read_manifest(path)
    verify_files(path, manifest, names or serving_files(manifest))
    return path


def split_s3_uri(uri: str) -> tuple[str, str]:
    rest = uri[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise BundleError(f"bad MODEL_URI {uri!r}: expected s3://bucket/prefix")
    return bucket, prefix.strip("/")


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "skyclass-models")


def _s3_client() -> Any:
    try:
        import boto3
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise BundleError("MODEL_URI is an s3:// URI but boto3 is not installed "
                          "(pip install 'skyclass[s3]')") from exc
    # boto3 reads AWS_ENDPOINT_URL itself, which is how tests point it at a local S3 server.
    return boto3.client("s3")


def _s3_get(client: Any, bucket: str, key: str) -> bytes:
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:  # botocore raises many types; all mean "can't read"
        raise BundleError(f"cannot read s3://{bucket}/{key}: {exc}") from exc


def _cached_copy_is_valid(folder: Path, manifest_bytes: bytes, names: tuple[str, ...]) -> bool:
    cached = folder / MANIFEST_NAME
    if not cached.is_file() or cached.read_bytes() != manifest_bytes:
        return False
    try:
        verify_files(folder, parse_manifest(manifest_bytes, str(cached)), names)
    except BundleError:
        return False
    return True


def fetch_s3(uri: str, names: tuple[str, ...] | None = None) -> Path:
    """Download an S3 bundle into the /tmp cache once; later calls reuse the verified copy.

    Only skyclass.json (a few KB) is read from S3 on a cold start that finds a cached copy: if
    it is byte-identical to the cached one and the cached files still hash right, the model
    is not downloaded again. A new export under the same prefix changes skyclass.json (its
    sha256 values), so a stale model is never served.
    """
    bucket, prefix = split_s3_uri(uri)
    key = f"{prefix}/{{}}" if prefix else "{}"
    client = _s3_client()
    manifest_bytes = _s3_get(client, bucket, key.format(MANIFEST_NAME))
    manifest = parse_manifest(manifest_bytes, f"{uri}/{MANIFEST_NAME}")
    names = names or serving_files(manifest)
    folder = cache_root() / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if _cached_copy_is_valid(folder, manifest_bytes, names):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=folder.parent))
    try:
        for name in names:
            (tmp / name).write_bytes(_s3_get(client, bucket, key.format(name)))
        verify_files(tmp, manifest, names)  # before it can ever be used
        (tmp / MANIFEST_NAME).write_bytes(manifest_bytes)
        shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            # Another process on this machine published the same bundle first: use theirs.
            if not _cached_copy_is_valid(folder, manifest_bytes, names):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def resolve_bundle(uri: str | Path, names: tuple[str, ...] | None = None) -> Path:
    """MODEL_URI (folder or s3://bucket/prefix) -> a verified local bundle folder."""
    text = str(uri)
    if not text:
        raise BundleError("no model given: set MODEL_URI to a bundle folder or s3://bucket/prefix")
    if text.startswith("s3://"):
        return fetch_s3(text, names)
    return open_local(Path(text), names)
