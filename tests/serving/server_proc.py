"""Start `skyclass serve` as a real process on a free 127.0.0.1 port and stop it again.

A test (and benchmark) helper: it lives here, not in the package, so it never ships in the
Lambda zip. bench/serve_load.py imports it with tests/ on sys.path.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def serve_in_subprocess(
    bundle: str | Path, env: dict[str, str] | None = None, timeout: float = 60.0
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run `skyclass serve BUNDLE --port 0` in a child process on 127.0.0.1.

    Yields (base URL, process) once it listens, and stops it afterwards. For tests and
    benchmarks that need a real server process, not one in their own interpreter. The child
    runs `python -m skyclass` with this interpreter and sys.path, so it serves the skyclass
    being tested (an installed one or a source checkout).
    """
    cmd = [
        sys.executable,
        "-m",
        "skyclass",
        "serve",
        str(bundle),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]
    child_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        **(env or {}),
    }
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env
    )
    try:
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        while True:
            line = proc.stdout.readline()
            match = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
            if match:
                break
            if not line and proc.poll() is not None:
                raise RuntimeError(f"skyclass serve exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("skyclass serve did not start in time")
        # Drain its output so a full pipe can never block the server.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield match.group(1), proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running_server(
    bundle: Path | str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> Iterator[str]:
    """Yield the base URL of `skyclass serve BUNDLE --port 0` once it is listening."""
    with serve_in_subprocess(bundle, env=env, timeout=timeout) as (url, _proc):
        yield url
