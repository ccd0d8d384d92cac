"""Helpers of the deploy tests (importable, unlike conftest)."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
SERVICE_DIR = REPO / "deploy"
WHEELHOUSE = SERVICE_DIR / ".wheelhouse"
# One wheelhouse per Lambda architecture, as `make node` fills them.
WHEELHOUSES = {"x86_64": WHEELHOUSE, "arm64": SERVICE_DIR / ".wheelhouse-arm64"}
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def need_node() -> None:
    """The only reason to skip: no Node.js toolchain or no `npm ci` in deploy/."""
    missing = [t for t in ("node", "npm", "npx") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not on PATH: the Serverless Framework needs Node.js")
    if not (SERVICE_DIR / "node_modules" / ".bin" / "serverless").exists():
        pytest.skip("deploy/node_modules missing: run `make node` (npm ci in deploy/)")


def need_wheelhouse(arch: str = "x86_64") -> Path:
    """Tests never reach the internet: the Lambda wheels come from `make node`'s wheelhouse."""
    wheelhouse = WHEELHOUSES[arch]
    machine = "aarch64" if arch == "arm64" else "x86_64"
    versions = [
        w.name.split("-")[1] for w in wheelhouse.glob(f"onnxruntime-*-cp312-*{machine}.whl")
    ]
    if not versions:
        pytest.skip(
            f"no {arch} Lambda wheels in {wheelhouse}: run `make node` (it downloads "
            f"them once with `skyclass deploy --download-wheels DIR --arch {arch}`)"
        )
    pin = lambda_requirement("onnxruntime")
    if pin is not None and not any(pin.specifier.contains(v) for v in versions):
        pytest.fail(
            f"{wheelhouse} holds onnxruntime {', '.join(versions)} but pyproject.toml's serve "
            f"extra asks for {pin.specifier}: run `make node` (it downloads again when "
            "pyproject.toml is newer than the wheelhouse)"
        )
    return wheelhouse


def lambda_requirement(name: str) -> Requirement | None:
    """The serve extra's requirement on `name` as the Lambda's CPython 3.12 reads it (None
    on Python 3.10, which has no tomllib to read pyproject.toml with)."""
    if sys.version_info < (3, 11):
        return None
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for spec in project["optional-dependencies"]["serve"]:
        req = Requirement(spec)
        if req.name == name and (
            req.marker is None or req.marker.evaluate({"python_version": "3.12"})
        ):
            return req
    raise LookupError(f"pyproject.toml's serve extra does not name {name}")


def write_bundle(
    folder: Path,
    onnx_bytes: bytes,
    pt_bytes: bytes = b"torchscript",
    version: str = "1",
    int8_bytes: bytes | None = None,
) -> Path:
    """A bundle folder in export's layout, with the sha256 values export writes.

    With int8_bytes it also holds model.int8.onnx and serves it, as an export whose INT8 model
    passed the accuracy gate.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(onnx_bytes)
    (folder / "model.pt").write_bytes(pt_bytes)
    names = ["model.onnx", "model.pt"]
    if int8_bytes is not None:
        (folder / "model.int8.onnx").write_bytes(int8_bytes)
        names.append("model.int8.onnx")
    files = {
        name: {
            "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest(),
            "bytes": (folder / name).stat().st_size,
        }
        for name in names
    }
    manifest = {
        "format": "skyclass-bundle",
        "format_version": 1,
        "class_names": ["bird", "drone"],
        "preprocess": {
            "size": 64,
            "resize": "pad",
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        },
        "files": files,
        "model": {
            "name": "test-model",
            "version": version,
            "sha256": files["model.onnx"]["sha256"],
        },
        "serving": {"model_file": names[-1] if int8_bytes is not None else "model.onnx"},
    }
    (folder / "skyclass.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


SERVICE_FILES = ("serverless.yml", "package.json", "package-lock.json", "README.md", "plugins")


def copy_service(dest: Path) -> Path:
    """A private copy of deploy/ (node_modules linked) so runs never share .serverless/."""
    dest.mkdir(parents=True)
    for name in SERVICE_FILES:
        src = SERVICE_DIR / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        elif src.is_file():
            shutil.copy2(src, dest / name)
    (dest / "node_modules").symlink_to(SERVICE_DIR / "node_modules", target_is_directory=True)
    return dest


def find_python312() -> str | None:
    """A CPython 3.12 interpreter (Lambda's runtime) on this machine, if any."""
    import subprocess

    candidates = [
        shutil.which("python3.12"),
        *sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")),
    ]
    for exe in filter(None, candidates):
        done = subprocess.run(
            [exe, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode == 0 and done.stdout.strip() == "(3, 12)":
            return exe
    return None
