"""Helpers of the deploy tests (importable, unlike conftest)."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICE_DIR = REPO / "deploy"
WHEELHOUSE = SERVICE_DIR / ".wheelhouse"
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


def need_wheelhouse() -> Path:
    """Tests never reach the internet: the Lambda wheels come from `make node`'s wheelhouse."""
    if not any(WHEELHOUSE.glob("onnxruntime-*-cp312-*.whl")):
        pytest.skip(f"no Lambda wheels in {WHEELHOUSE}: run `make node` (it downloads them "
                    "once with `skyclass deploy --download-wheels`)")
    return WHEELHOUSE


def write_bundle(folder: Path, onnx_bytes: bytes, pt_bytes: bytes = b"torchscript",
                 version: str = "1") -> Path:
    """A bundle folder in export's layout, with the sha256 values export writes."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(onnx_bytes)
    (folder / "model.pt").write_bytes(pt_bytes)
    files = {name: {"sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest(),
                    "bytes": (folder / name).stat().st_size}
             for name in ("model.onnx", "model.pt")}
    manifest = {"format": "skyclass-bundle", "format_version": 1,
                "class_names": ["bird", "drone"],
                "preprocess": {"size": 64, "resize": "pad"},
                "files": files,
                "model": {"name": "test-model", "version": version,
                          "sha256": files["model.onnx"]["sha256"]}}
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

    candidates = [shutil.which("python3.12"),
                  *sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))]
    for exe in filter(None, candidates):
        done = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30, check=False)
        if done.returncode == 0 and done.stdout.strip() == "(3, 12)":
            return exe
    return None
