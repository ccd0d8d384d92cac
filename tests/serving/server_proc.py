"""Start `skyclass serve` as a real process on a free 127.0.0.1 port and stop it again."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from skyclass.serving.local_server import serve_in_subprocess


@contextmanager
def running_server(bundle: Path | str, env: dict[str, str] | None = None,
                   timeout: float = 60.0) -> Iterator[str]:
    """Yield the base URL of `skyclass serve BUNDLE --port 0` once it is listening."""
    with serve_in_subprocess(bundle, env=env, timeout=timeout) as (url, _proc):
        yield url
