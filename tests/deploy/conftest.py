"""Fixtures of the deploy tests: a local S3 (moto server on 127.0.0.1) and its environment."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from .helpers import VENV_BIN, free_port


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real S3 protocol server (moto) on a free port of 127.0.0.1, for the whole session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def aws_env(moto_endpoint: str) -> dict[str, str]:
    """Environment of a subprocess that must use the local S3 with dummy credentials."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_ENDPOINT_URL"
    }
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL=moto_endpoint,
        PATH=os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")]),
    )
    return env


@pytest.fixture()
def s3(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """boto3 S3 client on the local server; the process env is pointed there too."""
    import boto3

    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in aws_env.items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    return boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name="us-east-1")


@pytest.fixture()
def bucket(s3: Any, request: pytest.FixtureRequest) -> str:
    name = "skyclass-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]
    s3.create_bucket(Bucket=name)
    return name
