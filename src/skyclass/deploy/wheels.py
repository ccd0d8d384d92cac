"""The Lambda's Python: skyclass's own wheel and the manylinux wheels of what it serves with.

deploy/.build/requirements.txt names `skyclass[serve] @ file://…whl`, so the Lambda zip holds
skyclass (serving + images) with onnxruntime, numpy and Pillow as manylinux wheels for CPython
3.12 on the chosen architecture, and no torch.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from skyclass.deploy.config import ARCHITECTURES, DEFAULT_ARCH, SOURCE_ROOT, DeployError


def lambda_pip_args(arch: str = DEFAULT_ARCH) -> tuple[str, ...]:
    """pip's platform arguments for the Lambda's wheels: manylinux, CPython 3.12, binary only.

    The same as pipCmdExtraArgs in deploy/serverless.yml (a test keeps the two equal).
    onnxruntime, numpy and Pillow publish manylinux_2_27/2_28 wheels, which pip does not
    consider for manylinux2014 alone, hence both platforms.
    """
    machine = ARCHITECTURES[arch]
    return (
        "--platform",
        f"manylinux2014_{machine}",
        "--platform",
        f"manylinux_2_28_{machine}",
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
        "--only-binary=:all:",
    )


LAMBDA_PIP_ARGS = lambda_pip_args()


def project_root() -> Path:
    """The source checkout skyclass runs from (an editable install): the wheel is built here."""
    if not (SOURCE_ROOT / "pyproject.toml").is_file() or not (SOURCE_ROOT / "src").is_dir():
        raise DeployError(
            f"{SOURCE_ROOT} is not a skyclass source checkout (no pyproject.toml + src/)"
        )
    return SOURCE_ROOT


def build_wheel(root: Path, out_dir: Path, python: str) -> Path:
    """Build skyclass's wheel from a clean copy of the sources (no stale build/ leftovers)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("skyclass-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="skyclass-wheel-") as tmp:
        src = Path(tmp) / "src"
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, Path(tmp) / name)
        shutil.copytree(
            root / "src" / "skyclass",
            src / "skyclass",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
        )
        cmd = [
            python,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out_dir),
            tmp,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DeployError(f"building the skyclass wheel failed:\n{done.stderr[-2000:]}")
    wheels = sorted(out_dir.glob("skyclass-*.whl"))
    if not wheels:
        raise DeployError(f"pip wheel produced no skyclass wheel in {out_dir}")
    return wheels[0]


def write_requirements(service_dir: Path, python: str) -> Path:
    """deploy/.build/requirements.txt = `skyclass[serve] @ file://<fresh wheel>`."""
    build = service_dir / ".build"
    wheel = build_wheel(project_root(), build, python)
    requirements = build / "requirements.txt"
    requirements.write_text(f"skyclass[serve] @ {wheel.resolve().as_uri()}\n", encoding="utf-8")
    return requirements


def download_wheels(
    service_dir: Path, dest: Path, python: str = sys.executable, arch: str = DEFAULT_ARCH
) -> list[Path]:
    """Fill a wheelhouse with the Lambda's wheels for one architecture (needs the index once).

    `make node` runs this (one wheelhouse per architecture) so that `serverless package` (and
    the test suite) can later install the Lambda's requirements with no network:
    `--wheelhouse DIR`.
    """
    requirements = write_requirements(service_dir, python)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        python,
        "-m",
        "pip",
        "download",
        "--quiet",
        *lambda_pip_args(arch),
        "--dest",
        str(dest),
        "-r",
        str(requirements),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DeployError(f"downloading the Lambda wheels failed:\n{done.stderr[-2000:]}")
    for own in dest.glob("skyclass-*.whl"):  # always rebuilt fresh from the sources
        own.unlink()
    return sorted(dest.glob("*.whl"))
