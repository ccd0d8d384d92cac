"""Start `skyclass serve` as a real process on a free 127.0.0.1 port and stop it again."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def running_server(bundle: Path | str, env: dict[str, str] | None = None,
                   timeout: float = 60.0) -> Iterator[str]:
    """Yield the base URL of `skyclass serve BUNDLE --port 0` once it is listening."""
    exe = Path(sys.executable).with_name("skyclass")  # the installed console script
    cmd = [str(exe), "serve", str(bundle), "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        while True:
            line = proc.stdout.readline()
            match = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
            if match:
                yield match.group(1)
                break
            if not line and proc.poll() is not None:
                raise AssertionError(f"skyclass serve exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError("skyclass serve did not start in time")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
