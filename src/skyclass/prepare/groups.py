"""Groups the user knows (`--group-by REGEX`, `--groups FILE.csv`) and the split units.

A split unit is a set of images that must land on one side of every split: one near-duplicate
group, one user group (frames of one video, photos of one contributor), or several of them
joined because a near copy links them. Without user groups, file names that look like frames
or bursts (many files sharing a prefix with a running number) get a warning, since such
frames are near-copies the perceptual hash cannot always see.
"""

from __future__ import annotations

import csv
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from skyclass.errors import PrepareError
from skyclass.prepare.process import Processed
from skyclass.textsafe import display_text

# A stem ending in a running number: the prefix before it names the burst/video.
_RUNNING_NUMBER = re.compile(r"^(.*\D)\d+$")
# The --group-by pattern suggested by the warning: everything before the trailing number.
SUGGESTED_GROUP_BY = r"^(.*\D)\d+\.\w+$"
BURST_MIN_FILES = 3  # files sharing a prefix before it counts as a burst
BURST_WARN_SHARE = 0.25  # warn when at least this share of the images sit in bursts
GROUPS_CSV_COLUMNS = ("path", "group")


@dataclass
class UserGroups:
    """Processed.index -> the user's group name, and what the report says about it."""

    of: dict[int, str] = field(default_factory=dict)
    source: str | None = None  # "group_by" / "groups_file" / None
    ungrouped: list[str] = field(default_factory=list)  # paths no group was found for
    unknown_paths: list[str] = field(default_factory=list)  # CSV rows matching no kept image


def path_in_class(it: Processed) -> str:
    """The path relative to the class folder (what --group-by is matched against)."""
    parts = PurePosixPath(it.source.path).parts
    return "/".join(parts[1:]) if len(parts) > 1 else it.source.path


def compile_group_by(pattern: str) -> re.Pattern:
    """Check the --group-by pattern once, before any work is done."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise PrepareError(
            f"--group-by {pattern!r} is not a valid regular expression: {exc}"
        ) from exc
    if regex.groups < 1:
        raise PrepareError(
            f"--group-by {pattern!r} needs a capture group, e.g. "
            r"'^(V_[A-Z]+_\d+)_' (the group is its first parenthesis)"
        )
    return regex


def read_groups_csv(path: Path) -> dict[str, str]:
    """`path,group` rows (a header row is optional); path as prepare shows it (class/...)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PrepareError(f"cannot read --groups {path}: {exc}") from exc
    mapping: dict[str, str] = {}
    for n, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if n == 1 and tuple(c.strip().lower() for c in row[:2]) == GROUPS_CSV_COLUMNS:
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise PrepareError(f"--groups {path} line {n}: expected 'path,group', got {row!r}")
        mapping[row[0].strip().replace("\\", "/")] = row[1].strip()
    if not mapping:
        raise PrepareError(f"--groups {path} holds no 'path,group' rows")
    return mapping


def user_groups(
    kept: list[Processed], group_by: str | None, groups_file: Path | None
) -> UserGroups:
    """The user's group of each kept image (images without one are their own group)."""
    result = UserGroups()
    if group_by:
        regex = compile_group_by(group_by)
        result.source = "group_by"
        for it in kept:
            match = regex.search(path_in_class(it))
            if match and match.group(1):
                result.of[it.index] = match.group(1)
            else:
                result.ungrouped.append(it.source.path)
    elif groups_file:
        mapping = read_groups_csv(groups_file)
        result.source = "groups_file"
        seen = set()
        for it in kept:
            for key in (it.source.path, path_in_class(it)):
                if key in mapping:
                    result.of[it.index] = mapping[key]
                    seen.add(key)
                    break
            else:
                result.ungrouped.append(it.source.path)
        result.unknown_paths = sorted(set(mapping) - seen)
    return result


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb, key=str)] = min(ra, rb, key=str)


def split_units(
    kept: list[Processed], near_group_of: dict[int, int], users: UserGroups
) -> dict[int, str]:
    """Processed.index -> split unit name: near-duplicate groups joined with user groups.

    The unit is named after its (first) user group when it has one, else `near-<id>`.
    """
    uf = _UnionFind()
    for it in kept:
        uf.find(("img", it.index))
        if it.index in near_group_of:
            uf.union(("img", it.index), ("near", near_group_of[it.index]))
        if it.index in users.of:
            uf.union(("img", it.index), ("user", users.of[it.index]))
    names: dict = {}
    for it in kept:
        root = uf.find(("img", it.index))
        if it.index in users.of:
            name = users.of[it.index]
            names[root] = min(names.get(root, name), name)
    units = {}
    for it in kept:
        root = uf.find(("img", it.index))
        fallback = f"near-{near_group_of.get(it.index, it.index)}"
        units[it.index] = names.get(root, fallback)
    return units


def group_summary(
    kept: list[Processed], units: dict[int, str], users: UserGroups, pattern: str | None
) -> dict:
    """What report.json says about the groups: how many, how big, what was not grouped."""
    sizes = Counter(units[it.index] for it in kept)
    multi = sorted(sizes.values(), reverse=True)
    summary: dict = {
        "source": users.source,
        "pattern": pattern,
        "split_units": len(sizes),
        "user_groups": len(set(users.of.values())),
        "sizes": {
            "min": min(multi, default=0),
            "median": statistics.median(multi) if multi else 0,
            "max": max(multi, default=0),
            "histogram": {str(k): v for k, v in sorted(Counter(multi).items())},
        },
        "largest": [
            {"group": display_text(str(name)), "images": n} for name, n in sizes.most_common(5)
        ],
        "ungrouped": len(users.ungrouped),
        "ungrouped_examples": [display_text(p) for p in users.ungrouped[:5]],
    }
    if users.source == "groups_file":
        summary["unknown_paths"] = len(users.unknown_paths)
        summary["unknown_path_examples"] = [display_text(p) for p in users.unknown_paths[:5]]
    return summary


def burst_warning(kept: list[Processed]) -> dict | None:
    """Warn when many file names look like frames of one video or a burst (prefix + number)."""
    by_prefix: dict[tuple[str, str], list[str]] = defaultdict(list)
    for it in kept:
        rel = PurePosixPath(path_in_class(it))
        match = _RUNNING_NUMBER.match(rel.stem)
        if match:
            by_prefix[(it.source.label, str(rel.parent / match.group(1)))].append(rel.name)
    bursts = {key: files for key, files in by_prefix.items() if len(files) >= BURST_MIN_FILES}
    in_bursts = sum(len(files) for files in bursts.values())
    if not kept or in_bursts < BURST_WARN_SHARE * len(kept) or len(bursts) < 2:
        return None
    examples = sorted(bursts.items(), key=lambda kv: -len(kv[1]))[:3]
    return {
        "images_in_bursts": in_bursts,
        "prefixes": len(bursts),
        "examples": [
            {"class": display_text(label), "prefix": display_text(prefix), "files": len(files)}
            for (label, prefix), files in examples
        ],
        "message": (
            f"{in_bursts} of {len(kept)} images share a name prefix with a running number "
            f"({len(bursts)} prefixes, e.g. {display_text(examples[0][0][1])}*): "
            "frames of one video or burst are near-copies; keep each on one side of the "
            f"split with --group-by '{SUGGESTED_GROUP_BY}' (or a pattern of your own, or "
            "--groups FILE.csv)"
        ),
    }
