"""Progress bars that stay quiet in logs and CI: shown only on a terminal and unless --quiet."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress_enabled(quiet: bool = False) -> bool:
    return not quiet and sys.stderr.isatty()


def progress(
    items: Iterable[T], total: int | None = None, desc: str = "", quiet: bool = False
) -> Iterator[T]:
    """Wrap an iterable in a tqdm bar on a TTY; yield the items unchanged otherwise."""
    if not progress_enabled(quiet):
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, total=total, desc=desc, unit="img", dynamic_ncols=True, leave=False)
