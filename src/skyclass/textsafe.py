"""Make file names safe to print, to write in CSV/JSON and to use inside a zip."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def display_text(text: str) -> str:
    """Undecodable bytes (surrogate escapes) and control characters shown as escapes."""
    raw = text.encode("utf-8", "surrogateescape")
    shown = raw.decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in shown)


def safe_stem(text: str, limit: int = 80) -> str:
    """A portable file-name stem: ASCII letters, digits, '.', '_' and '-' only."""
    stem = _UNSAFE.sub("_", display_text(text)).strip("._")
    return stem[:limit] or "image"
