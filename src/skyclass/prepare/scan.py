"""Find the candidate photos of a raw folder or zip and the files to ignore, with reasons.

The class of a photo is its top folder under the root; nested folders are fine. Nothing is
decoded here: this only decides what will be tried and reports what will not.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from skyclass.errors import PrepareError
from skyclass.fileio import special_file_kind
from skyclass.textsafe import display_text

JUNK_DIRS = frozenset({"__MACOSX", "@eaDir", "$RECYCLE.BIN", "System Volume Information"})


@dataclass(frozen=True)
class Source:
    """One candidate file: where it is and which class folder it sits in."""

    path: str  # relative path shown to the user and written to the manifest
    label: str
    location: str  # file-system path, or member name inside `archive`
    archive: str | None = None


@dataclass(frozen=True)
class Skipped:
    """A file that is not in the dataset, and why."""

    path: str
    label: str | None
    reason: str
    detail: str = ""

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "class": None if self.label is None else display_text(self.label),
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass
class ScanResult:
    classes: list[str]
    sources: list[Source] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name in ("Thumbs.db", "desktop.ini")


def scan(raw: Path) -> ScanResult:
    """Scan a class-folder tree or a zip of one."""
    if not raw.exists():
        raise PrepareError(f"input {raw} does not exist")
    special = special_file_kind(raw)
    if special:
        raise PrepareError(f"input {raw} is {special}, not a folder or a zip file")
    if raw.is_dir():
        result = _scan_dir(raw)
    elif zipfile.is_zipfile(raw):
        result = _scan_zip(raw)
    else:
        raise PrepareError(f"input {raw} is neither a folder nor a zip file")
    if not result.classes:
        raise PrepareError(
            f"no class folders in {raw}: expected {raw}/<class name>/<photos>, "
            "e.g. 'Flying Birds/', 'Winged Drones/'"
        )
    result.sources.sort(key=lambda s: (s.label, s.path))
    return result


def _scan_dir(root: Path) -> ScanResult:
    result = ScanResult(classes=[])
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise PrepareError(f"cannot list {root}: {exc.strerror or exc}") from exc
    for entry in entries:
        shown = display_text(entry.name)
        if entry.name in JUNK_DIRS:
            result.skipped.append(Skipped(shown, None, "junk", "operating-system metadata"))
        elif _is_hidden(entry.name):
            result.skipped.append(Skipped(shown, None, "hidden", "hidden file or folder"))
        elif entry.is_dir(follow_symlinks=False):
            result.classes.append(entry.name)
            _walk_class(root, entry.name, result)
        elif entry.is_symlink() and entry.is_dir():
            result.skipped.append(Skipped(shown, None, "symlink", "symlinked folder not followed"))
        else:
            result.skipped.append(
                Skipped(shown, None, "not_in_class_folder", "file directly in the input folder")
            )
    return result


def _walk_class(root: Path, label: str, result: ScanResult) -> None:
    def on_error(exc: OSError) -> None:
        rel = os.path.relpath(exc.filename or str(root / label), root)
        result.skipped.append(
            Skipped(display_text(rel), label, "unreadable", exc.strerror or str(exc))
        )

    for dirpath, dirnames, filenames in os.walk(root / label, onerror=on_error):
        rel_dir = os.path.relpath(dirpath, root)
        keep_dirs = []
        for name in sorted(dirnames):
            full = os.path.join(dirpath, name)
            shown = display_text(os.path.join(rel_dir, name))
            if name in JUNK_DIRS:
                result.skipped.append(Skipped(shown, label, "junk", "operating-system metadata"))
            elif _is_hidden(name):
                result.skipped.append(Skipped(shown, label, "hidden", "hidden folder"))
            elif os.path.islink(full):
                result.skipped.append(
                    Skipped(shown, label, "symlink", "symlinked folder not followed")
                )
            else:
                keep_dirs.append(name)
        dirnames[:] = keep_dirs
        for name in sorted(filenames):
            _add_file(dirpath, rel_dir, name, label, result)


def _add_file(dirpath: str, rel_dir: str, name: str, label: str, result: ScanResult) -> None:
    full = os.path.join(dirpath, name)
    shown = display_text(os.path.join(rel_dir, name))
    if _is_hidden(name):
        result.skipped.append(Skipped(shown, label, "hidden", "hidden file"))
        return
    try:
        mode = os.stat(full).st_mode  # follows file symlinks
    except OSError as exc:
        reason = "broken_symlink" if os.path.islink(full) else "unreadable"
        result.skipped.append(Skipped(shown, label, reason, exc.strerror or str(exc)))
        return
    if not stat.S_ISREG(mode):
        result.skipped.append(Skipped(shown, label, "not_a_file", "not a regular file"))
        return
    result.sources.append(Source(path=shown, label=label, location=full))


def _zip_member_problem(name: str) -> str | None:
    """Why a zip member name is unsafe (zip-slip), or None."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path in zip"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "'..' in zip path (zip-slip)"
    return None


def _is_folder_zip(usable: list[tuple[zipfile.ZipInfo, tuple[str, ...]]]) -> bool:
    """A zip of a folder ("ThumbnailData/<class>/...") has one top folder holding the classes.

    Files directly in that top folder (a stray SOURCES.csv) do not change that; they are then
    reported as not being in a class folder.
    """
    tops = {parts[0] for _, parts in usable}
    return len(tops) == 1 and any(len(parts) > 2 for _, parts in usable)


def _member_parts(name: str) -> tuple[str, ...]:
    """A member name's folders and file name; "./" and "//" mean nothing ("./bird/x.jpg" is
    "bird/x.jpg", not a hidden file)."""
    return tuple(p for p in name.replace("\\", "/").split("/") if p and p != ".")


def _last_of_each_name(infos: list[zipfile.ZipInfo], result: ScanResult) -> list[zipfile.ZipInfo]:
    """One entry per name: a zip may hold several entries of the same (normalised) name.

    Unzipping keeps the last one (each overwrites the one before), so that one is used; every
    earlier one is reported as a skipped duplicate, never lost silently.
    """
    keys = [_member_parts(info.filename) for info in infos]
    last = {key: i for i, key in enumerate(keys)}
    counts = Counter(keys)
    kept = []
    for i, (info, key) in enumerate(zip(infos, keys, strict=True)):
        if last[key] == i:
            kept.append(info)
            continue
        count = counts[key]
        result.skipped.append(
            Skipped(
                display_text(info.filename),
                None,
                "duplicate_zip_entry",
                f"entry {i + 1} of the zip; the zip holds {count} entries named "
                f"{display_text('/'.join(key))!r}: the last one (entry {last[key] + 1}) is used, "
                "as unzip would leave it",
            )
        )
    return kept


def _scan_zip(archive: Path) -> ScanResult:
    result = ScanResult(classes=[])
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = [info for info in zf.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise PrepareError(f"cannot read zip {archive}: {exc}") from exc
    usable: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    for info in _last_of_each_name(infos, result):
        shown = display_text(info.filename)
        problem = _zip_member_problem(info.filename)
        parts = _member_parts(info.filename)
        if problem:
            result.skipped.append(Skipped(shown, None, "unsafe_path", problem))
        elif any(p in JUNK_DIRS for p in parts):
            result.skipped.append(Skipped(shown, None, "junk", "operating-system metadata"))
        elif any(_is_hidden(p) for p in parts):
            result.skipped.append(Skipped(shown, None, "hidden", "hidden file or folder"))
        elif info.flag_bits & 0x1:
            result.skipped.append(Skipped(shown, None, "encrypted", "encrypted zip entry"))
        else:
            usable.append((info, parts))
    strip = 1 if _is_folder_zip(usable) else 0
    classes: set[str] = set()
    for info, parts in usable:
        rel = parts[strip:]
        shown = display_text("/".join(parts))
        if len(rel) < 2:
            result.skipped.append(
                Skipped(shown, None, "not_in_class_folder", "file not inside a class folder")
            )
            continue
        classes.add(rel[0])
        result.sources.append(
            Source(path=shown, label=rel[0], location=info.filename, archive=str(archive))
        )
    result.classes = sorted(classes)
    return result
