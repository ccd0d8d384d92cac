"""Checks on the Lambda zip `serverless package` built: Lambda's size limits, no torch, and
every native library built for the Lambda's architecture."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from skyclass.deploy.config import ARCHITECTURES, DEFAULT_ARCH, DeployError

# Lambda's limits for a zip deployment package.
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
# Issue 17's goal for both architectures (package size drives cold starts): the package tests
# hold every build to it, bench/lambda_size.py measures against it.
GOAL_ZIPPED_BYTES = 25 * 1024 * 1024
GOAL_UNZIPPED_BYTES = 75 * 1024 * 1024
# The ELF e_machine value every native library in an architecture's zip must carry.
ELF_MACHINES = {"x86_64": 62, "arm64": 183}  # EM_X86_64, EM_AARCH64


@dataclass
class PackageStats:
    path: Path
    zipped_bytes: int
    unzipped_bytes: int
    names: list[str]


def package_stats(zip_path: Path) -> PackageStats:
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
    return PackageStats(
        path=zip_path,
        zipped_bytes=zip_path.stat().st_size,
        unzipped_bytes=sum(i.file_size for i in infos),
        names=[i.filename for i in infos],
    )


def elf_machine(header: bytes) -> int | None:
    """e_machine of an ELF file's first 20 bytes (None: not ELF). Byte order from EI_DATA."""
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def native_machines(zip_path: Path) -> dict[str, int]:
    """Every ELF file in the zip (by its header, whatever its name) -> its e_machine."""
    found: dict[str, int] = {}
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            if info.is_dir() or info.file_size < 20:
                continue
            with zf.open(info) as member:
                machine = elf_machine(member.read(20))
            if machine is not None:
                found[info.filename] = machine
    return found


def foreign_binaries(zip_path: Path, arch: str) -> list[str]:
    """Native files in the zip that the Lambda's architecture cannot load."""
    wanted = ELF_MACHINES[arch]
    return sorted(name for name, machine in native_machines(zip_path).items() if machine != wanted)


def check_package(stats: PackageStats, arch: str = DEFAULT_ARCH) -> None:
    """Refuse a package Lambda would reject, one that dragged torch in, or a wrong binary."""
    if any(n.startswith(("torch/", "torchvision/")) for n in stats.names):
        raise DeployError(
            f"{stats.path} contains torch: the Lambda package must hold only "
            "skyclass[serve] (onnxruntime, numpy, Pillow)"
        )
    if stats.unzipped_bytes > MAX_UNZIPPED_BYTES:
        raise DeployError(
            f"{stats.path} unzips to {stats.unzipped_bytes / 2**20:.0f} MiB, over "
            f"Lambda's {MAX_UNZIPPED_BYTES // 2**20} MiB limit"
        )
    foreign = foreign_binaries(stats.path, arch)
    if foreign:
        raise DeployError(
            f"{stats.path} holds {len(foreign)} native files that are not "
            f"{ARCHITECTURES[arch]} (e.g. {foreign[0]}): a wheelhouse for another "
            f"architecture? Use one wheelhouse per --arch"
        )
