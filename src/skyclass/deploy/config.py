"""What `skyclass deploy` is asked to do, the limits it checks, and its pre-flight checks.

Standard library only: the CLI builds `skyclass deploy`'s options from `DeployConfig`'s fields.
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
    """Everything `skyclass deploy` needs. Each field's metadata is its command-line option
    (`skyclass.cli.options`); paths may be given as text, they are made `Path`s here."""

    bundle: Path | None = field(
        default=None,
        metadata={
            "positional": True,
            "nargs": "?",
            "metavar": "BUNDLE_DIR",
            "help": "bundle folder written by `skyclass export`",
        },
    )
    bucket: str | None = field(
        default=None, metadata={"help": "S3 bucket for the model (must exist)"}
    )
    prefix: str | None = field(
        default=None,
        metadata={
            "default_help": "models/<model name>/<model version> from skyclass.json",
            "help": "key prefix in the bucket",
        },
    )
    stage: str = field(default="dev", metadata={"help": "Serverless stage"})
    region: str | None = field(
        default=None,
        metadata={"default_help": "AWS_REGION or us-east-1", "help": "AWS region"},
    )
    memory: int = field(
        default=DEFAULT_MEMORY_MB,
        metadata={"help": "Lambda memory in MB; CPU grows with it"},
    )
    timeout: int = field(
        default=MAX_TIMEOUT_S,
        metadata={
            "help": f"Lambda timeout in s, at most {MAX_TIMEOUT_S} (API Gateway stops at 29; "
            "default %(default)s)"
        },
    )
    private: bool = field(
        default=False,
        metadata={"help": "require an API key (x-api-key header); the key is printed"},
    )
    package_only: bool = field(
        default=False,
        metadata={
            "help": "build the Lambda zip (deploy/.serverless/skyclass.zip) but do not deploy; "
            "uploads the bundle only if AWS credentials are set"
        },
    )
    upload: bool = field(
        default=True,
        metadata={"flag": "--no-upload", "help": "do not upload the bundle (it is already in S3)"},
    )
    remove: bool = field(
        default=False,
        metadata={"help": "remove the deployed stack (the bundle stays in S3)"},
    )
    arch: str = field(
        default=DEFAULT_ARCH,
        metadata={
            "choices": tuple(ARCHITECTURES),
            "help": "Lambda architecture: x86_64 or arm64 (Graviton, ~20% cheaper per "
            "GB-second); picks the manylinux wheels, so give --wheelhouse of that architecture",
        },
    )
    wheelhouse: Path | None = field(
        default=None,
        metadata={
            "metavar": "DIR",
            "help": "install the Lambda's Python wheels from DIR only (offline)",
        },
    )
    service_dir: Path = field(
        default_factory=default_service_dir,
        metadata={
            "metavar": "DIR",
            "default_help": "deploy/ of this checkout",
            "help": "the Serverless service folder",
        },
    )
    python: str = field(default=sys.executable, metadata={"cli": False})

    def __post_init__(self) -> None:
        self.bundle = None if self.bundle is None else Path(self.bundle)
        self.wheelhouse = None if self.wheelhouse is None else Path(self.wheelhouse)
        self.service_dir = Path(self.service_dir)
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
