"""`skyclass deploy` pre-checks and output parsing: clear errors (exit 2) before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from skyclass.deploy import (
    DeployConfig,
    parse_endpoints,
    predict_hint,
    predict_url,
    serverless_command,
    serverless_env,
)

from .helpers import VENV_BIN, copy_service, write_bundle

ONNX = b"onnx-bytes" * 100


def _env_without_aws(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No credentials anywhere boto3 looks (and no instance metadata lookups)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
        **extra,
    )
    return env


def _skyclass(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skyclass", "deploy", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_missing_node_is_a_clear_error(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", ONNX)
    done = _skyclass(
        [str(bundle), "--bucket", "b", "--package-only"],
        _env_without_aws(tmp_path, PATH=str(VENV_BIN)),
    )
    assert done.returncode == 2
    assert "node" in done.stderr and "make node" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_npm_ci_is_a_clear_error(tmp_path: Path) -> None:
    service = tmp_path / "deploy"
    service.mkdir()
    (service / "serverless.yml").write_text("service: x\n")
    done = _skyclass(
        [str(write_bundle(tmp_path / "b", ONNX)), "--bucket", "b", "--service-dir", str(service)],
        _env_without_aws(tmp_path),
    )
    if "not found on PATH" in done.stderr:
        pytest.skip("node/npm not on PATH")
    assert done.returncode == 2
    assert "npm ci" in done.stderr


def test_no_aws_credentials_is_a_clear_error(tmp_path: Path) -> None:
    from .helpers import need_node

    need_node()
    service = copy_service(tmp_path / "deploy")
    bundle = write_bundle(tmp_path / "b", ONNX)
    done = _skyclass(
        [str(bundle), "--bucket", "b", "--service-dir", str(service)], _env_without_aws(tmp_path)
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no AWS credentials" in done.stderr and "--package-only" in done.stderr
    done = _skyclass(["--remove", "--service-dir", str(service)], _env_without_aws(tmp_path))
    assert done.returncode == 2
    assert "no AWS credentials" in done.stderr
    assert not (service / ".serverless").exists()  # nothing ran


def test_invalid_bundle_and_options_are_clear_errors(tmp_path: Path) -> None:
    env = _env_without_aws(tmp_path)
    (tmp_path / "notabundle").mkdir()
    done = _skyclass([str(tmp_path / "notabundle"), "--bucket", "b", "--package-only"], env)
    if "not found on PATH" in done.stderr:
        pytest.skip("node/npm not on PATH")
    assert done.returncode == 2
    assert "skyclass.json" in done.stderr
    done = _skyclass(
        [str(write_bundle(tmp_path / "b", ONNX)), "--bucket", "b", "--timeout", "30"], env
    )
    assert done.returncode == 2 and "29 s" in done.stderr
    done = _skyclass([str(tmp_path / "b")], env)
    assert done.returncode == 2 and "--bucket" in done.stderr


def test_serverless_command_carries_the_settings(tmp_path: Path) -> None:
    config = DeployConfig(
        bundle=tmp_path,
        bucket="models-bucket",
        prefix="/models/m/3/",
        stage="prod",
        region="eu-central-1",
        memory=3008,
        timeout=25,
        private=True,
        wheelhouse=tmp_path / "wh",
        arch="arm64",
    )
    cmd = serverless_command(config, config.prefix)
    assert cmd[:6] == ["npx", "--no", "serverless", "deploy", "--stage", "prod"]
    assert cmd[6:8] == ["--region", "eu-central-1"]
    assert set(cmd[8:]) == {
        "--param=bucket=models-bucket",
        "--param=prefix=models/m/3",
        "--param=memory=3008",
        "--param=timeout=25",
        "--param=private=true",
        "--param=arch=arm64",
    }
    env = serverless_env(config)
    assert env["PIP_NO_INDEX"] == "1" and env["PIP_FIND_LINKS"] == str(tmp_path / "wh")
    assert env["SLS_TELEMETRY_DISABLED"] == "1"
    remove = serverless_command(DeployConfig(remove=True), None)
    assert remove[3] == "remove"


# The endpoint section as Serverless Framework v3 prints it after `serverless deploy`.
DEPLOY_OUTPUT = """\
Deploying skyclass to stage dev (eu-central-1)

✔ Service deployed to stack skyclass-dev (96s)

api keys:
  skyclass-dev: Zq1xExampleKey0123456789
endpoints:
  ANY - https://a1b2c3.execute-api.eu-central-1.amazonaws.com/dev/predict
  GET - https://a1b2c3.execute-api.eu-central-1.amazonaws.com/dev/
  GET - https://a1b2c3.execute-api.eu-central-1.amazonaws.com/dev/health
functions:
  predict: skyclass-dev-predict (33 MB)
"""


def test_endpoint_and_predict_line_from_deploy_output() -> None:
    endpoints = parse_endpoints(DEPLOY_OUTPUT)
    assert len(endpoints) == 3
    url = predict_url(endpoints)
    assert url == "https://a1b2c3.execute-api.eu-central-1.amazonaws.com/dev/predict"
    assert predict_hint(url, False, None) == f"skyclass predict {url} image.jpg"
    hint = predict_hint(url, True, "Zq1xExampleKey0123456789")
    assert "x-api-key: Zq1xExampleKey0123456789" in hint and "file=@image.jpg" in hint


def _serverless_print(service: Path, *params: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLS_TELEMETRY_DISABLED": "1", "SLS_NOTIFICATIONS_MODE": "off"}
    return subprocess.run(
        [
            "npx",
            "--no",
            "serverless",
            "print",
            "--format",
            "json",
            *[f"--param={p}" for p in params],
        ],
        cwd=service,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_private_switch_and_params_resolve_in_serverless(tmp_path: Path) -> None:
    """The real Serverless Framework resolves the params `skyclass deploy` passes."""
    import json

    from .helpers import need_node

    need_node()
    service = copy_service(tmp_path / "deploy")
    done = _serverless_print(
        service, "bucket=b", "prefix=m/v", "private=true", "memory=3008", "timeout=15"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    config = json.loads(done.stdout[done.stdout.index("{") :])
    provider = config["provider"]
    assert (provider["memorySize"], provider["timeout"]) == (3008, 15)
    assert provider["apiGateway"]["apiKeys"] == [{"name": "skyclass-dev"}]
    assert all(e["http"]["private"] is True for e in config["functions"]["predict"]["events"])
    assert provider["architecture"] == "x86_64"
    done = _serverless_print(service, "bucket=b", "prefix=m/v", "arch=arm64")
    config = json.loads(done.stdout[done.stdout.index("{") :])
    assert config["provider"]["architecture"] == "arm64"
    pip_args = config["custom"]["pythonRequirements"]["pipCmdExtraArgs"]
    assert "--platform manylinux_2_28_aarch64" in pip_args
    assert not [a for a in pip_args if "x86_64" in a]
    assert config["provider"]["apiGateway"]["apiKeys"] == []
    assert not any(e["http"]["private"] for e in config["functions"]["predict"]["events"])


def test_misspelt_setting_fails_instead_of_being_ignored(tmp_path: Path) -> None:
    """`memory:` for `memorySize:` (a reference pain) stops the command."""
    from .helpers import need_node

    need_node()
    service = copy_service(tmp_path / "deploy")
    yml = service / "serverless.yml"
    yml.write_text(
        yml.read_text().replace("  memorySize: ${param:memory}", "  memory: ${param:memory}")
    )
    done = _serverless_print(service, "bucket=b", "prefix=m/v")
    assert done.returncode != 0
    assert "unrecognized property 'memory'" in done.stdout + done.stderr


def test_serverless_package_by_hand_without_requirements_stops_clearly(tmp_path: Path) -> None:
    """Without `skyclass deploy` the plugin would package no Python code at all."""
    from .helpers import need_node

    need_node()
    service = copy_service(tmp_path / "deploy")
    env = {**os.environ, "SLS_TELEMETRY_DISABLED": "1", "SLS_NOTIFICATIONS_MODE": "off"}
    done = subprocess.run(
        ["npx", "--no", "serverless", "package", "--param=bucket=b", "--param=prefix=m/v"],
        cwd=service,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0
    assert ".build/requirements.txt is missing" in done.stdout + done.stderr
    assert not (service / ".serverless" / "skyclass.zip").exists()
