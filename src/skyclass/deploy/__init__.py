"""`skyclass deploy`: put a model bundle in S3 and the handler on AWS Lambda, in one command.

Steps, each with a clear error when it cannot run, one module each:
  1. config: check the tools (node, npm, the Serverless Framework installed by `npm ci` in
     deploy/), AWS credentials (not needed for `--package-only`) and the bundle (skyclass.json
     + the model it serves, whose sha256 matches);
  2. s3: upload what the Lambda serves (skyclass.json + the model file it names, never
     model.pt) to s3://BUCKET/PREFIX/, skipping unchanged files and verifying every one;
  3. wheels: build the skyclass wheel and write deploy/.build/requirements.txt, so the Lambda
     zip holds skyclass[serve] as manylinux CPython 3.12 wheels for the chosen architecture
     (--arch x86_64 or arm64 = Graviton, ~20% cheaper per GB-s), and no torch;
  4. serverless: run `npx serverless deploy|package|remove` in deploy/ (streaming its output),
     then check the zip (package) or print the endpoint with a ready `skyclass predict` line.

Only the standard library at import time; boto3 is imported when S3 is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from skyclass.deploy.config import (
    ARCHITECTURES,
    DEFAULT_ARCH,
    DEFAULT_MEMORY_MB,
    MAX_MEMORY_MB,
    MAX_TIMEOUT_S,
    MIN_MEMORY_MB,
    DeployConfig,
    DeployError,
    check_aws_credentials,
    check_node_tools,
    check_service_dir,
    default_prefix,
    default_service_dir,
    has_aws_credentials,
    validate_bundle,
)
from skyclass.deploy.package import (
    ELF_MACHINES,
    GOAL_UNZIPPED_BYTES,
    GOAL_ZIPPED_BYTES,
    MAX_UNZIPPED_BYTES,
    MAX_ZIPPED_BYTES,
    PackageStats,
    check_package,
    elf_machine,
    foreign_binaries,
    native_machines,
    package_stats,
)
from skyclass.deploy.s3 import UploadResult, object_matches, s3_client, upload_bundle
from skyclass.deploy.serverless import (
    parse_endpoints,
    predict_hint,
    predict_url,
    run_streaming,
    serverless_api_keys,
    serverless_command,
    serverless_env,
    serverless_params,
)
from skyclass.deploy.wheels import (
    LAMBDA_PIP_ARGS,
    download_wheels,
    lambda_pip_args,
    write_requirements,
)

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_ARCH",
    "DEFAULT_MEMORY_MB",
    "ELF_MACHINES",
    "GOAL_UNZIPPED_BYTES",
    "GOAL_ZIPPED_BYTES",
    "LAMBDA_PIP_ARGS",
    "MAX_MEMORY_MB",
    "MAX_TIMEOUT_S",
    "MAX_UNZIPPED_BYTES",
    "MAX_ZIPPED_BYTES",
    "MIN_MEMORY_MB",
    "DeployConfig",
    "DeployError",
    "PackageStats",
    "UploadResult",
    "check_aws_credentials",
    "check_node_tools",
    "check_package",
    "check_service_dir",
    "default_prefix",
    "default_service_dir",
    "deploy",
    "download_wheels",
    "elf_machine",
    "foreign_binaries",
    "has_aws_credentials",
    "lambda_pip_args",
    "native_machines",
    "object_matches",
    "package_stats",
    "parse_endpoints",
    "predict_hint",
    "predict_url",
    "run_streaming",
    "s3_client",
    "serverless_api_keys",
    "serverless_command",
    "serverless_env",
    "serverless_params",
    "upload_bundle",
    "validate_bundle",
    "write_requirements",
]

Log = Callable[[str], None]


def deploy(config: DeployConfig, log: Log = print) -> dict[str, Any]:
    """Run the whole deployment; returns what happened (upload, package, endpoint)."""
    service_dir = config.service_dir
    check_service_dir(service_dir)
    check_node_tools(service_dir)
    result: dict[str, Any] = {"command": config.command, "stage": config.stage}
    prefix = config.prefix
    if not config.remove:
        prefix = _stage_bundle(config, result, log)
    elif not config.package_only:
        check_aws_credentials()
    output = run_streaming(
        serverless_command(config, prefix), service_dir, serverless_env(config), log
    )
    if config.command == "package":
        result["package"] = _check_built_package(config, log)
    elif config.command == "deploy":
        result["endpoints"] = _report_endpoints(output, config.private, log)
    return result


def _stage_bundle(config: DeployConfig, result: dict[str, Any], log: Log) -> str:
    """Validate and upload the bundle, write the Lambda's requirements; returns the S3 prefix."""
    assert config.bundle is not None and config.bucket is not None
    manifest = validate_bundle(config.bundle)
    prefix = config.prefix or default_prefix(manifest)
    result["model_uri"] = f"s3://{config.bucket}/{prefix}"
    if config.package_only and config.upload and not has_aws_credentials():
        log("note: no AWS credentials, so the bundle is not uploaded (--package-only)")
    elif config.upload:
        check_aws_credentials()
        result["upload"] = upload_bundle(
            config.bundle, config.bucket, prefix, s3_client(config.region), log
        ).actions
    write_requirements(config.service_dir, config.python)
    return prefix


def _check_built_package(config: DeployConfig, log: Log) -> dict[str, Any]:
    stats = package_stats(config.service_dir / ".serverless" / "skyclass.zip")
    check_package(stats, config.arch)
    log(
        f"package {stats.path} ({config.arch}): {stats.zipped_bytes / 2**20:.1f} MiB zipped, "
        f"{stats.unzipped_bytes / 2**20:.1f} MiB unzipped (Lambda limits: "
        f"{MAX_ZIPPED_BYTES // 2**20} / {MAX_UNZIPPED_BYTES // 2**20})"
    )
    return {
        "path": str(stats.path),
        "arch": config.arch,
        "zipped_bytes": stats.zipped_bytes,
        "unzipped_bytes": stats.unzipped_bytes,
    }


def _report_endpoints(output: str, private: bool, log: Log) -> list[str]:
    endpoints = parse_endpoints(output)
    url = predict_url(endpoints)
    keys = serverless_api_keys(output) if private else []
    if url:
        log(f"\nendpoint: {url}")
        log(predict_hint(url, private, keys[0][1] if keys else None))
    else:
        log("warning: could not find the endpoint URL in the output above")
    return [f"{method} {address}" for method, address in endpoints]
