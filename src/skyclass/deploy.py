"""`skyclass deploy`: put a model bundle in S3 and the handler on AWS Lambda, in one command.

Steps, each with a clear error when it cannot run:
  1. check the tools (node, npm, the Serverless Framework installed by `npm ci` in deploy/),
     AWS credentials (not needed for `--package-only`) and the bundle (skyclass.json +
     model.onnx whose sha256 matches);
  2. upload what the Lambda serves (skyclass.json + the model file it names, never model.pt)
     to s3://BUCKET/PREFIX/ with boto3: a file whose sha256 (kept in the
     object's metadata and checked by S3 itself through ChecksumSHA256) already matches is not
     sent again; every object is verified after upload; skyclass.json goes last, so a Lambda
     that cold-starts mid-upload never reads a manifest newer than the model files;
  3. build the skyclass wheel and write deploy/.build/requirements.txt
     (`skyclass[serve] @ file://…whl`): the Lambda zip then holds skyclass (serving + images)
     with onnxruntime, numpy and Pillow as manylinux wheels for CPython 3.12 on the chosen
     architecture (--arch x86_64 or arm64 = Graviton, ~20% cheaper per GB-s), and no torch;
  4. run `npx serverless deploy|package|remove` in deploy/ (streaming its output) and print
     the endpoint with a ready `skyclass predict URL image.jpg` line.

Only the standard library at import time; boto3 is imported when S3 is used.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skyclass.errors import SkyclassError
from skyclass.serving.bundle import (
    MANIFEST_NAME,
    BundleError,
    read_manifest,
    serving_files,
    sha256_file,
    verify_files,
)

# API Gateway stops waiting after 29 s whatever the Lambda timeout is: keep below it.
MAX_TIMEOUT_S = 28
MIN_MEMORY_MB, MAX_MEMORY_MB = 128, 10240
# Lambda's limits for a zip deployment package.
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
# Lambda architecture -> the machine name of manylinux wheel tags, and the ELF e_machine value
# every native library in that architecture's zip must carry.
ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}
ELF_MACHINES = {"x86_64": 62, "arm64": 183}  # EM_X86_64, EM_AARCH64
DEFAULT_ARCH = "x86_64"


def lambda_pip_args(arch: str = DEFAULT_ARCH) -> tuple[str, ...]:
    """pip's platform arguments for the Lambda's wheels: manylinux, CPython 3.12, binary only.

    The same as pipCmdExtraArgs in deploy/serverless.yml (a test keeps the two equal).
    onnxruntime, numpy and Pillow publish manylinux_2_27/2_28 wheels, which pip does not
    consider for manylinux2014 alone, hence both platforms.
    """
    machine = ARCHITECTURES[arch]
    return ("--platform", f"manylinux2014_{machine}", "--platform", f"manylinux_2_28_{machine}",
            "--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:")


LAMBDA_PIP_ARGS = lambda_pip_args()
SHA256_META = "sha256"
SERVERLESS_QUIET_ENV = {
    # No telemetry or update notices from the Serverless Framework: it runs offline in tests.
    "SLS_TELEMETRY_DISABLED": "1",
    "SLS_NOTIFICATIONS_MODE": "off",
}
COMMANDS = ("deploy", "package", "remove")


class DeployError(SkyclassError):
    """Deployment cannot start or did not succeed; the message says what to do."""


@dataclass
class DeployConfig:
    """Everything `skyclass deploy` needs; built from the CLI options."""

    bundle: Path | None = None
    bucket: str | None = None
    prefix: str | None = None  # default: models/<model name>/<model version> from skyclass.json
    stage: str = "dev"
    region: str | None = None
    memory: int = 1536
    timeout: int = MAX_TIMEOUT_S
    private: bool = False
    package_only: bool = False
    remove: bool = False
    upload: bool = True
    wheelhouse: Path | None = None  # install the Lambda's wheels from here only (offline)
    arch: str = DEFAULT_ARCH  # Lambda architecture: x86_64 or arm64 (Graviton)
    service_dir: Path = field(default_factory=lambda: default_service_dir())
    python: str = sys.executable

    def __post_init__(self) -> None:
        if not MIN_MEMORY_MB <= self.memory <= MAX_MEMORY_MB:
            raise DeployError(f"--memory must be {MIN_MEMORY_MB}..{MAX_MEMORY_MB} MB, "
                              f"not {self.memory}")
        if not 1 <= self.timeout <= MAX_TIMEOUT_S:
            raise DeployError(f"--timeout must be 1..{MAX_TIMEOUT_S} s (API Gateway gives up "
                              f"after 29 s whatever the Lambda timeout), not {self.timeout}")
        if not re.fullmatch(r"[a-zA-Z0-9-]{1,16}", self.stage):
            raise DeployError(f"--stage must be letters, digits or '-' (max 16), "
                              f"not {self.stage!r}")
        if self.arch not in ARCHITECTURES:
            raise DeployError(f"--arch must be one of {', '.join(ARCHITECTURES)}, "
                              f"not {self.arch!r}")
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
        if self.remove:
            return "remove"
        return "package" if self.package_only else "deploy"


@dataclass
class UploadResult:
    """What upload_bundle did with each file (name -> 'uploaded' or 'unchanged')."""

    bucket: str
    prefix: str
    actions: dict[str, str]

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass
class PackageStats:
    path: Path
    zipped_bytes: int
    unzipped_bytes: int
    names: list[str]


# --------------------------------------------------------------------------- checks


def default_service_dir() -> Path:
    """deploy/ of the source checkout this skyclass was installed from (editable install)."""
    return Path(__file__).resolve().parents[2] / "deploy"


def check_service_dir(service_dir: Path) -> None:
    if not (service_dir / "serverless.yml").is_file():
        raise DeployError(f"{service_dir} holds no serverless.yml: `skyclass deploy` runs from "
                          "a skyclass source checkout (its deploy/ folder)")


def check_node_tools(service_dir: Path) -> None:
    """node + npm on PATH and the pinned Serverless Framework installed in deploy/."""
    missing = [tool for tool in ("node", "npm", "npx") if shutil.which(tool) is None]
    if missing:
        raise DeployError(f"{', '.join(missing)} not found on PATH: install Node.js 18 or newer "
                          "(e.g. `apt-get install nodejs npm`), then `make node`")
    if not (service_dir / "node_modules" / ".bin" / "serverless").exists():
        raise DeployError(f"the Serverless Framework is not installed in {service_dir}: run "
                          f"`make node` (or `cd {service_dir} && npm ci`)")


def check_aws_credentials() -> None:
    """boto3 finds credentials the way the Serverless Framework does (env, profile, SSO)."""
    if not has_aws_credentials():
        raise DeployError("no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                          "or AWS_PROFILE (see `aws configure`), or use --package-only")


def has_aws_credentials() -> bool:
    import boto3

    return boto3.Session().get_credentials() is not None


def validate_bundle(bundle: Path) -> dict[str, Any]:
    """skyclass.json readable and the model it serves present, matching its sha256."""
    if not bundle.is_dir():
        raise DeployError(f"bundle {bundle} does not exist or is not a folder "
                          "(create one with `skyclass export RUN_DIR --out BUNDLE_DIR`)")
    try:
        manifest = read_manifest(bundle)
        verify_files(bundle, manifest, serving_files(manifest))
    except BundleError as exc:
        raise DeployError(f"invalid bundle: {exc}") from exc
    return manifest


def default_prefix(manifest: dict[str, Any]) -> str:
    model = manifest.get("model", {})
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", str(model.get("name") or "skyclass"))
    version = re.sub(r"[^A-Za-z0-9._-]+", "-", str(model.get("version") or "latest"))
    return f"models/{name}/{version}"


# --------------------------------------------------------------------------- S3 upload


def _checksum_b64(hex_digest: str) -> str:
    """S3's ChecksumSHA256 is the base64 of the raw digest."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def _head(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def object_matches(head: dict[str, Any] | None, digest: str, size: int) -> bool:
    """The object holds these bytes: size, our sha256 metadata and S3's own checksum agree."""
    if head is None or head.get("ContentLength") != size:
        return False
    if head.get("Metadata", {}).get(SHA256_META) != digest:
        return False
    s3_checksum = head.get("ChecksumSHA256")
    return s3_checksum is None or s3_checksum == _checksum_b64(digest)


def upload_order(manifest: dict[str, Any]) -> list[str]:
    """The served model first, skyclass.json last (it is what a cold start reads first).

    Only what the Lambda loads: model.pt (TorchScript, for torch users) and an unserved FP32
    model.onnx stay in the local bundle.
    """
    return [*serving_files(manifest), MANIFEST_NAME]


def upload_file(client: Any, path: Path, bucket: str, key: str, digest: str) -> None:
    """One PUT with S3 checking the body against our sha256 (a torn upload is refused)."""
    with open(path, "rb") as body:
        client.put_object(Bucket=bucket, Key=key, Body=body, Metadata={SHA256_META: digest},
                          ChecksumSHA256=_checksum_b64(digest),
                          ContentType="application/octet-stream")


def upload_bundle(bundle: Path, bucket: str, prefix: str, client: Any = None,
                  log: Callable[[str], None] = print) -> UploadResult:
    """Upload the bundle's files to s3://bucket/prefix/, skipping unchanged ones; verify all."""
    manifest = validate_bundle(bundle)
    client = client or s3_client()
    actions: dict[str, str] = {}
    for name in upload_order(manifest):
        path = bundle / name
        digest, size, key = sha256_file(path), path.stat().st_size, f"{prefix}/{name}"
        try:
            if object_matches(_head(client, bucket, key), digest, size):
                actions[name] = "unchanged"
            else:
                upload_file(client, path, bucket, key, digest)
                actions[name] = "uploaded"
            if not object_matches(_head(client, bucket, key), digest, size):
                raise DeployError(f"s3://{bucket}/{key} does not match {path} after upload "
                                  "(size or sha256 differ); try again")
        except DeployError:
            raise
        except Exception as exc:  # botocore's many error types all mean "S3 refused"
            raise DeployError(f"cannot upload {path} to s3://{bucket}/{key}: {exc}") from exc
        log(f"{actions[name]:>9}  s3://{bucket}/{key}  ({size / 1e6:.2f} MB, "
            f"sha256 {digest[:12]})")
    return UploadResult(bucket=bucket, prefix=prefix, actions=actions)


def s3_client(region: str | None = None) -> Any:
    """boto3 S3 client; boto3 itself honours AWS_ENDPOINT_URL (a local S3 in tests)."""
    import boto3

    return boto3.client("s3", region_name=region)


# --------------------------------------------------------------------------- Lambda package


def project_root() -> Path:
    """The source checkout skyclass runs from (an editable install): the wheel is built here."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "src" / "skyclass").is_dir():
        raise DeployError(f"{root} is not a skyclass source checkout (no pyproject.toml + src/)")
    return root


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
        shutil.copytree(root / "src" / "skyclass", src / "skyclass",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        cmd = [python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
               "--wheel-dir", str(out_dir), tmp]
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


def download_wheels(service_dir: Path, dest: Path, python: str = sys.executable,
                    arch: str = DEFAULT_ARCH) -> list[Path]:
    """Fill a wheelhouse with the Lambda's wheels for one architecture (needs the index once).

    `make node` runs this (one wheelhouse per architecture) so that `serverless package` (and
    the test suite) can later install the Lambda's requirements with no network:
    `--wheelhouse DIR`.
    """
    requirements = write_requirements(service_dir, python)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [python, "-m", "pip", "download", "--quiet", *lambda_pip_args(arch), "--dest",
           str(dest), "-r", str(requirements)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DeployError(f"downloading the Lambda wheels failed:\n{done.stderr[-2000:]}")
    for own in dest.glob("skyclass-*.whl"):  # always rebuilt fresh from the sources
        own.unlink()
    return sorted(dest.glob("*.whl"))


def package_stats(zip_path: Path) -> PackageStats:
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
    return PackageStats(path=zip_path, zipped_bytes=zip_path.stat().st_size,
                        unzipped_bytes=sum(i.file_size for i in infos),
                        names=[i.filename for i in infos])


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
    return sorted(name for name, machine in native_machines(zip_path).items()
                  if machine != wanted)


def check_package(stats: PackageStats, arch: str = DEFAULT_ARCH) -> None:
    """Refuse a package Lambda would reject, one that dragged torch in, or a wrong binary."""
    if any(n.startswith(("torch/", "torchvision/")) for n in stats.names):
        raise DeployError(f"{stats.path} contains torch: the Lambda package must hold only "
                          "skyclass[serve] (onnxruntime, numpy, Pillow)")
    if stats.unzipped_bytes > MAX_UNZIPPED_BYTES:
        raise DeployError(f"{stats.path} unzips to {stats.unzipped_bytes / 2**20:.0f} MiB, over "
                          f"Lambda's {MAX_UNZIPPED_BYTES // 2**20} MiB limit")
    foreign = foreign_binaries(stats.path, arch)
    if foreign:
        raise DeployError(f"{stats.path} holds {len(foreign)} native files that are not "
                          f"{ARCHITECTURES[arch]} (e.g. {foreign[0]}): a wheelhouse for another "
                          f"architecture? Use one wheelhouse per --arch")


# --------------------------------------------------------------------------- serverless


def serverless_params(config: DeployConfig, prefix: str | None) -> list[str]:
    # `remove` resolves the whole file too, but the values no longer matter then.
    bucket = config.bucket or "unused-by-remove"
    params = {"bucket": bucket, "prefix": prefix or "unused-by-remove", "arch": config.arch,
              "memory": str(config.memory), "timeout": str(config.timeout),
              "private": "true" if config.private else "false"}
    return [f"--param={key}={value}" for key, value in params.items()]


def serverless_command(config: DeployConfig, prefix: str | None) -> list[str]:
    cmd = ["npx", "--no", "serverless", config.command, "--stage", config.stage]
    if config.region:
        cmd += ["--region", config.region]
    return cmd + serverless_params(config, prefix)


def serverless_env(config: DeployConfig) -> dict[str, str]:
    env = {**os.environ, **SERVERLESS_QUIET_ENV, "SKYCLASS_PYTHON_BIN": config.python}
    if config.wheelhouse is not None:
        # pip reads these itself: install the Lambda's wheels from the wheelhouse only.
        env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(Path(config.wheelhouse).resolve()))
    return env


def run_streaming(cmd: Sequence[str], cwd: Path, env: dict[str, str],
                  log: Callable[[str], None] = print) -> str:
    """Run a command, echo its output line by line as it comes, return all of it."""
    lines: list[str] = []
    with subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                          bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            log(line.rstrip("\n"))
        code = proc.wait()
    output = "".join(lines)
    if code != 0:
        raise DeployError(f"`{' '.join(cmd[:4])}` failed with exit code {code} (its output is "
                          "above)")
    return output


ENDPOINT_RE = re.compile(r"^\s*(ANY|GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS)\s+-\s+(https://\S+)",
                         re.MULTILINE)
API_KEY_RE = re.compile(r"^\s*(skyclass-[\w-]+):\s*(\S+)", re.MULTILINE)


def parse_endpoints(output: str) -> list[tuple[str, str]]:
    """The `endpoints:` lines of `serverless deploy`/`info` output: [(method, url), ...]."""
    return ENDPOINT_RE.findall(output)


def predict_url(endpoints: list[tuple[str, str]]) -> str | None:
    return next((url for _, url in endpoints if url.rstrip("/").endswith("/predict")), None)


def predict_hint(url: str, private: bool, api_key: str | None) -> str:
    if private:
        key = api_key or "<API KEY>"
        return (f"curl -H 'x-api-key: {key}' -F 'file=@image.jpg' '{url}'  "
                "(private API: requests need the x-api-key header)")
    return f"skyclass predict {url} image.jpg"


# --------------------------------------------------------------------------- the stage


def deploy(config: DeployConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the whole deployment; returns what happened (upload, package, endpoint)."""
    service_dir = config.service_dir
    check_service_dir(service_dir)
    check_node_tools(service_dir)
    result: dict[str, Any] = {"command": config.command, "stage": config.stage}
    prefix = config.prefix
    if not config.remove:
        assert config.bundle is not None and config.bucket is not None
        manifest = validate_bundle(config.bundle)
        prefix = prefix or default_prefix(manifest)
        result["model_uri"] = f"s3://{config.bucket}/{prefix}"
        if config.package_only and config.upload and not has_aws_credentials():
            log("note: no AWS credentials, so the bundle is not uploaded (--package-only)")
        elif config.upload:
            check_aws_credentials()
            result["upload"] = upload_bundle(config.bundle, config.bucket, prefix,
                                             s3_client(config.region), log).actions
        write_requirements(service_dir, config.python)
    elif not config.package_only:
        check_aws_credentials()
    output = run_streaming(serverless_command(config, prefix), service_dir,
                           serverless_env(config), log)
    if config.command == "package":
        stats = package_stats(service_dir / ".serverless" / "skyclass.zip")
        check_package(stats, config.arch)
        result["package"] = {"path": str(stats.path), "arch": config.arch,
                             "zipped_bytes": stats.zipped_bytes,
                             "unzipped_bytes": stats.unzipped_bytes}
        log(f"package {stats.path} ({config.arch}): {stats.zipped_bytes / 2**20:.1f} MiB zipped, "
            f"{stats.unzipped_bytes / 2**20:.1f} MiB unzipped (Lambda limits: 50 / 250)")
    elif config.command == "deploy":
        endpoints = parse_endpoints(output)
        url = predict_url(endpoints)
        keys = API_KEY_RE.findall(output) if config.private else []
        result["endpoints"] = [f"{method} {address}" for method, address in endpoints]
        if url:
            log(f"\nendpoint: {url}")
            log(predict_hint(url, config.private, keys[0][1] if keys else None))
        else:
            log("warning: could not find the endpoint URL in the output above")
    return result
