"""What `skyclass deploy` is asked to do, the limits it checks, and its pre-flight checks.

Standard library only (the CLI imports the architecture list from here to build --help).
"""

from __future__ import annotations

import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skyclass.errors import DeployError
from skyclass.serving.bundle import BundleError, read_manifest, serving_files, verify_files

# The source checkout skyclass runs from (an editable install): src/skyclass/deploy/ is 3 levels
# below it. deploy/ (the Serverless service) and pyproject.toml (the wheel) live there.
SOURCE_ROOT = Path(__file__).resolve().parents[3]

# API Gateway stops waiting after 29 s whatever the Lambda timeout is: keep below it.
MAX_TIMEOUT_S = 28
DEFAULT_MEMORY_MB = 1536
MIN_MEMORY_MB, MAX_MEMORY_MB = 128, 10240
# Lambda architecture -> the machine name of manylinux wheel tags.
ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}
DEFAULT_ARCH = "x86_64"


def default_service_dir() -> Path:
    """deploy/ of the source checkout this skyclass was installed from (editable install)."""
    return SOURCE_ROOT / "deploy"


@dataclass
class DeployConfig:
    """Everything `skyclass deploy` needs; built from the CLI options."""

    bundle: Path | None = None
    bucket: str | None = None
    prefix: str | None = None  # default: models/<model name>/<model version> from skyclass.json
    stage: str = "dev"
    region: str | None = None
    memory: int = DEFAULT_MEMORY_MB
    timeout: int = MAX_TIMEOUT_S
    private: bool = False
    package_only: bool = False
    remove: bool = False
    upload: bool = True
    wheelhouse: Path | None = None  # install the Lambda's wheels from here only (offline)
    arch: str = DEFAULT_ARCH  # Lambda architecture: x86_64 or arm64 (Graviton)
    service_dir: Path = field(default_factory=default_service_dir)
    python: str = sys.executable

    def __post_init__(self) -> None:
        if not MIN_MEMORY_MB <= self.memory <= MAX_MEMORY_MB:
            raise DeployError(
                f"--memory must be {MIN_MEMORY_MB}..{MAX_MEMORY_MB} MB, not {self.memory}"
            )
        if not 1 <= self.timeout <= MAX_TIMEOUT_S:
            raise DeployError(
                f"--timeout must be 1..{MAX_TIMEOUT_S} s (API Gateway gives up "
                f"after 29 s whatever the Lambda timeout), not {self.timeout}"
            )
        if not re.fullmatch(r"[a-zA-Z0-9-]{1,16}", self.stage):
            raise DeployError(
                f"--stage must be letters, digits or '-' (max 16), not {self.stage!r}"
            )
        if self.arch not in ARCHITECTURES:
            raise DeployError(
                f"--arch must be one of {', '.join(ARCHITECTURES)}, not {self.arch!r}"
            )
        if self.prefix is not None:
            self.prefix = self.prefix.strip("/")
            if not self.prefix:
                raise DeployError("--prefix must not be empty")
        if self.remove:
            return
        if self.bundle is None:
            raise DeployError("give the BUNDLE_DIR to deploy (or --remove to tear down)")
        if not self.bucket:
            raise DeployError("--bucket is required: the S3 bucket that holds the model")
        self.bundle = Path(self.bundle)

    @property
    def command(self) -> str:
        """The Serverless Framework command this configuration runs."""
        if self.remove:
            return "remove"
        return "package" if self.package_only else "deploy"


def check_service_dir(service_dir: Path) -> None:
    if not (service_dir / "serverless.yml").is_file():
        raise DeployError(
            f"{service_dir} holds no serverless.yml: `skyclass deploy` runs from "
            "a skyclass source checkout (its deploy/ folder)"
        )


def check_node_tools(service_dir: Path) -> None:
    """node + npm on PATH and the pinned Serverless Framework installed in deploy/."""
    missing = [tool for tool in ("node", "npm", "npx") if shutil.which(tool) is None]
    if missing:
        raise DeployError(
            f"{', '.join(missing)} not found on PATH: install Node.js 18 or newer "
            "(e.g. `apt-get install nodejs npm`), then `make node`"
        )
    if not (service_dir / "node_modules" / ".bin" / "serverless").exists():
        raise DeployError(
            f"the Serverless Framework is not installed in {service_dir}: run "
            f"`make node` (or `cd {service_dir} && npm ci`)"
        )


def check_aws_credentials() -> None:
    """boto3 finds credentials the way the Serverless Framework does (env, profile, SSO)."""
    if not has_aws_credentials():
        raise DeployError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "or AWS_PROFILE (see `aws configure`), or use --package-only"
        )


def has_aws_credentials() -> bool:
    import boto3

    return boto3.Session().get_credentials() is not None


def validate_bundle(bundle: Path) -> dict[str, Any]:
    """skyclass.json readable and the model it serves present, matching its sha256."""
    if not bundle.is_dir():
        raise DeployError(
            f"bundle {bundle} does not exist or is not a folder "
            "(create one with `skyclass export RUN_DIR --out BUNDLE_DIR`)"
        )
    try:
        manifest = read_manifest(bundle)
        verify_files(bundle, manifest, serving_files(manifest))
    except BundleError as exc:
        raise DeployError(f"invalid bundle: {exc}") from exc
    return manifest


def default_prefix(manifest: dict[str, Any]) -> str:
    """models/<model name>/<model version>, both reduced to characters safe in an S3 key."""
    model = manifest.get("model", {})
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", str(model.get("name") or "skyclass"))
    version = re.sub(r"[^A-Za-z0-9._-]+", "-", str(model.get("version") or "latest"))
    return f"models/{name}/{version}"
