"""File helpers every stage shares: sha256 of a file, and atomic writes.

Standard library only, so the Lambda package (serving) can use them without torch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO


def sha256_file(path: str | Path) -> str:
    """sha256 hex digest, read in 1 MiB blocks (model files and datasets can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(
    path: str | Path,
    write: Callable[[BinaryIO], object],
    prefix: str | None = None,
    suffix: str = ".tmp",
) -> None:
    """Call `write(fileobj)` on a temp file beside `path`, fsync, then rename over `path`.

    A crash, a kill -9 or a full disk leaves either the old file or the new one, never half.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix or f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a full disk names the file it could not write
        raise


def replace_folder(tmp: str | Path, out: str | Path) -> None:
    """Put the finished folder `tmp` at `out` (same file system) by renames only.

    Whatever is at `out` (an old folder, a file, a link) is renamed aside first and deleted
    after, so `out` is at every moment the old thing or the complete new folder, never half of
    one. If the final rename fails (e.g. another process published `out` in between), the old
    thing is gone and the OSError is raised: the caller decides whether that is fine.
    """
    tmp, out = Path(tmp), Path(out)
    aside = None
    if out.is_symlink() or out.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent)) / "old"
        os.replace(out, aside)
    try:
        os.replace(tmp, out)
    finally:
        if aside is not None:
            if aside.is_dir() and not aside.is_symlink():
                shutil.rmtree(aside.parent, ignore_errors=True)
            else:
                aside.unlink(missing_ok=True)
                aside.parent.rmdir()


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def atomic_write_csv(
    path: str | Path, columns: list[str] | tuple[str, ...], rows: Iterable[dict]
) -> None:
    """A UTF-8 CSV with a header, written atomically: a kill leaves the old or the new file."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    data = buf.getvalue().encode("utf-8")
    atomic_write(path, lambda fh: fh.write(data))


def special_file_kind(path: str | Path) -> str | None:
    """What `path` is when it is neither a folder nor a regular file (e.g. "a FIFO (named
    pipe)"), else None. Reading such a path blocks for ever or never ends, so inputs given on
    the command line are checked with this before anything opens them."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # missing or unreadable: the caller's own check reports it
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _SPECIAL_KINDS if test(mode)), "not a regular file")
