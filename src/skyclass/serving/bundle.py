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
cold starts as long as the skyclass.json in S3 is unchanged; a broken cache path (a file
where its folder should be) is repaired or bypassed. Every skyclass.json read is checked
against the schema of what serving uses (manifest_problems), so `serve` and `deploy` refuse
a wrong one with the reason, and a server answers 503 with it. Stdlib code (the schema
check reads the resize modes of skyclass.images); boto3 is imported only for s3:// URIs so a
local bundle needs no AWS library.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from skyclass.errors import BundleError
from skyclass.fileio import replace_folder, sha256_file

MANIFEST_NAME = "skyclass.json"
ONNX_NAME = "model.onnx"
TORCHSCRIPT_NAME = "model.pt"
BUNDLE_FORMAT = "skyclass-bundle"
BUNDLE_FORMAT_VERSION = 1
INT8_NAME = "model.int8.onnx"
# A served model file is a plain name inside the bundle, never a path (the manifest may be hostile).
_MODEL_FILE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.onnx")
CACHE_ENV = "SKYCLASS_CACHE_DIR"
LOG = logging.getLogger("skyclass.serving")
# The schema of what serving reads from skyclass.json (checked at every load, see
# validate_manifest): a wrong value must stop `serve`/`deploy`, not 500 every request.
SIZE_RANGE = (8, 1024)  # model input side in pixels
MAX_CLASSES = 10_000
MAX_CLASS_NAME_CHARS = 200
_SHA256 = re.compile(r"[0-9a-f]{64}")


def parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    """Decode and sanity-check a skyclass.json so a wrong file fails with a clear message."""
    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            f"{where} is not a skyclass bundle manifest (create one with "
            "`skyclass export RUN_DIR --out BUNDLE_DIR`)"
        )
    for key in ("class_names", "preprocess", "files", "model"):
        if key not in manifest:
            raise BundleError(f"{where} has no {key!r} entry")
    problems = manifest_problems(manifest)
    if problems:
        raise BundleError(
            f"{where} is not a valid bundle manifest: "
            + "; ".join(problems)
            + " (re-export it with `skyclass export`)"
        )
    return manifest


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _triple(pre: dict[str, Any], key: str, low: float, high: float) -> list[str]:
    value = pre.get(key)
    if not (isinstance(value, list) and len(value) == 3 and all(map(_number, value))):
        return [f"preprocess.{key} must be a list of 3 finite numbers, got {value!r:.60}"]
    if not all(low <= v <= high for v in value) or (key == "std" and min(value) <= 0):
        return [
            f"preprocess.{key} values must lie in {'(0' if key == 'std' else f'[{low}'}, "
            f"{high}], got {value!r:.60}"
        ]
    return []


def manifest_problems(manifest: dict[str, Any]) -> list[str]:
    """Everything wrong with the fields serving reads; [] for a valid manifest."""
    from skyclass.images import RESIZE_MODES  # serving decodes images anyway

    problems: list[str] = []
    names = manifest.get("class_names")
    if not (
        isinstance(names, list)
        and 1 <= len(names) <= MAX_CLASSES
        and all(isinstance(n, str) and 0 < len(n) <= MAX_CLASS_NAME_CHARS for n in names)
    ):
        problems.append(
            f"class_names must be a list of 1 to {MAX_CLASSES:,} non-empty names "
            f"of at most {MAX_CLASS_NAME_CHARS} characters"
        )
    elif len(set(names)) != len(names):
        problems.append("class_names holds the same name twice")
    pre = manifest.get("preprocess")
    if not isinstance(pre, dict):
        problems.append("preprocess must be an object")
    else:
        size = pre.get("size")
        if not (
            isinstance(size, int)
            and not isinstance(size, bool)
            and SIZE_RANGE[0] <= size <= SIZE_RANGE[1]
        ):
            problems.append(
                f"preprocess.size must be an integer from {SIZE_RANGE[0]} to "
                f"{SIZE_RANGE[1]}, got {size!r:.40}"
            )
        if pre.get("resize") not in RESIZE_MODES:
            problems.append(
                f"preprocess.resize must be one of {', '.join(RESIZE_MODES)}, "
                f"got {pre.get('resize')!r:.40}"
            )
        problems += _triple(pre, "mean", 0.0, 1.0) + _triple(pre, "std", 0.0, 10.0)
        if "version" in pre and not (
            isinstance(pre["version"], int) and not isinstance(pre["version"], bool)
        ):
            problems.append("preprocess.version must be an integer")
    files = manifest.get("files")
    if not (
        isinstance(files, dict)
        and all(
            isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and _SHA256.fullmatch(entry["sha256"])
            for entry in files.values()
        )
    ):
        problems.append('files must map each file name to {"sha256": 64 hex digits}')
    elif ONNX_NAME not in files:
        problems.append(f"files lists no {ONNX_NAME}")
    model = manifest.get("model")
    if not (
        isinstance(model, dict)
        and all(model.get(k) is None or isinstance(model.get(k), str) for k in ("name", "version"))
    ):
        problems.append("model must be an object whose name and version are strings")
    return problems


def served_model_name(manifest: dict[str, Any]) -> str:
    """The model file servers load: skyclass.json's serving.model_file, else model.onnx.

    Bundles from before quantization have no "serving" entry and serve model.onnx.
    """
    serving = manifest.get("serving")
    name = serving.get("model_file", ONNX_NAME) if isinstance(serving, dict) else ONNX_NAME
    if not isinstance(name, str) or not _MODEL_FILE_RE.fullmatch(name):
        raise BundleError(
            f"{MANIFEST_NAME}: serving.model_file {name!r} is not a plain .onnx file name"
        )
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
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise BundleError(f"bad MODEL_URI {uri!r}: expected s3://bucket/prefix")
    return bucket, prefix.strip("/")


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "skyclass-models")


def usable_cache_root() -> Path:
    """cache_root(), or, when something that is not a folder is in its way (a regular file,
    a dangling link) or it cannot be created, a private temporary folder instead: a broken
    cache path must cost a download, never every request."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        if root.is_dir() and os.access(root, os.W_OK | os.X_OK):
            return root
    except OSError:
        pass
    fallback = Path(tempfile.mkdtemp(prefix="skyclass-models-"))
    LOG.warning("model cache %s is not a usable folder; using %s instead", root, fallback)
    return fallback


def _s3_client() -> Any:
    try:
        import boto3
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise BundleError(
            "MODEL_URI is an s3:// URI but boto3 is not installed (pip install 'skyclass[s3]')"
        ) from exc
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
    folder = usable_cache_root() / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if _cached_copy_is_valid(folder, manifest_bytes, names):
        return folder
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=folder.parent))
    try:
        for name in names:
            (tmp / name).write_bytes(_s3_get(client, bucket, key.format(name)))
        verify_files(tmp, manifest, names)  # before it can ever be used
        (tmp / MANIFEST_NAME).write_bytes(manifest_bytes)
        try:
            replace_folder(tmp, folder)  # whatever held the slot (folder, file, link) goes
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
