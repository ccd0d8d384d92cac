"""Running the Serverless Framework service in deploy/ and reading what it printed."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from skyclass.deploy.config import DeployConfig, DeployError

SERVERLESS_QUIET_ENV = {
    # No telemetry or update notices from the Serverless Framework: it runs offline in tests.
    "SLS_TELEMETRY_DISABLED": "1",
    "SLS_NOTIFICATIONS_MODE": "off",
}
ENDPOINT_RE = re.compile(
    r"^\s*(ANY|GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS)\s+-\s+(https://\S+)", re.MULTILINE
)
API_KEY_RE = re.compile(r"^\s*(skyclass-[\w-]+):\s*(\S+)", re.MULTILINE)


def serverless_params(config: DeployConfig, prefix: str | None) -> list[str]:
    """The service's --param values (serverless.yml reads them as ${param:NAME})."""
    # `remove` resolves the whole file too, but the values no longer matter then.
    bucket = config.bucket or "unused-by-remove"
    params = {
        "bucket": bucket,
        "prefix": prefix or "unused-by-remove",
        "arch": config.arch,
        "memory": str(config.memory),
        "timeout": str(config.timeout),
        "private": "true" if config.private else "false",
    }
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


def run_streaming(
    cmd: Sequence[str], cwd: Path, env: dict[str, str], log: Callable[[str], None] = print
) -> str:
    """Run a command, echo its output line by line as it comes, return all of it."""
    lines: list[str] = []
    with subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            log(line.rstrip("\n"))
        code = proc.wait()
    output = "".join(lines)
    if code != 0:
        raise DeployError(
            f"`{' '.join(cmd[:4])}` failed with exit code {code} (its output is above)"
        )
    return output


def parse_endpoints(output: str) -> list[tuple[str, str]]:
    """The `endpoints:` lines of `serverless deploy`/`info` output: [(method, url), ...]."""
    return ENDPOINT_RE.findall(output)


def serverless_api_keys(output: str) -> list[tuple[str, str]]:
    """The `api keys:` lines of a private deployment's output: [(name, key), ...]."""
    return API_KEY_RE.findall(output)


def predict_url(endpoints: list[tuple[str, str]]) -> str | None:
    return next((url for _, url in endpoints if url.rstrip("/").endswith("/predict")), None)


def predict_hint(url: str, private: bool, api_key: str | None) -> str:
    if private:
        key = api_key or "<API KEY>"
        return (
            f"curl -H 'x-api-key: {key}' -F 'file=@image.jpg' '{url}'  "
            "(private API: requests need the x-api-key header)"
        )
    return f"skyclass predict {url} image.jpg"
