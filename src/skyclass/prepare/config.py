"""Configuration of the `prepare` stage: one dataclass, filled from the CLI or the API.

Each field's metadata is its command-line option (`skyclass.cli.options`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from skyclass.cores import usable_cores
from skyclass.decode_limits import MAX_FILE_BYTES
from skyclass.errors import PrepareError
from skyclass.images import DEFAULT_MAX_PIXELS, RESIZE_MODES

DEDUPE_MODES = ("exact", "near", "off")


OUTPUT_FORMATS = ("jpeg", "png")
MB = 1024 * 1024


@dataclass
class PrepareConfig:
    """How a raw photo folder (or zip) becomes a dataset zip."""

    raw: Path = field(
        metadata={
            "positional": True,
            "metavar": "RAW_DIR",
            "help": "folder (or .zip) of class folders",
        }
    )
    out: Path = field(
        metadata={
            "required": True,
            "metavar": "DATASET.zip",
            "help": "the zip file to write (its name must end in .zip)",
        }
    )
    size: int = field(
        default=224,
        metadata={
            "help": "output side in pixels. Measured on ddd_visible (objects of 16-48 px; "
            "train --frozen-bn adapt, 12 epochs, one seed, validation split): 320 gives best "
            "accuracy 80.6% vs 84.7% at 224, lowest loss 0.53 vs 0.56, for 2.1x the "
            "training time"
        },
    )
    resize: str = field(
        default="pad",
        metadata={
            "choices": RESIZE_MODES,
            "help": "pad: keep aspect ratio, longer side = size, pad to a square; fit: keep "
            "aspect ratio, no padding (not square); stretch: ignore ratio",
        },
    )
    # Held out per class: validation (model selection) and test (scored once, reported).
    val_fraction: float = field(
        default=0.15,
        metadata={
            "help": "share of each class held out as the validation split, on which train picks "
            "best.pt and steers the LR"
        },
    )
    test_fraction: float = field(
        default=0.15,
        metadata={
            "help": "share of each class held out as the test split, scored once at the end and "
            "reported; 70:15:15 with the default fractions"
        },
    )
    seed: int = field(default=0, metadata={"help": "seed of the split"})
    dedupe: str = field(
        default="near",
        metadata={
            "choices": DEDUPE_MODES,
            "help": "near: exact copies + perceptual near-copies under rotation/flip; exact: "
            "identical bytes only; off: keep everything",
        },
    )
    # Hamming distance (of 64) between perceptual hashes, minimised over the 8 rotations/flips.
    near_threshold: int = field(
        default=6,
        metadata={
            "help": "max differing bits (of 64) of the perceptual hash, under any rotation/flip, "
            "for near-copy candidates; a candidate counts only when its 32x32 thumbnail "
            "and edge detail match too; low-detail images (plain sky) are never "
            "near-copies"
        },
    )
    min_side: int = field(
        default=32, metadata={"help": "skip images whose shorter side is below this many pixels"}
    )
    workers: int = field(
        default_factory=usable_cores,
        metadata={"default_help": "all cores", "help": "parallel decode/resize processes"},
    )
    format: str = field(
        default="jpeg", metadata={"choices": OUTPUT_FORMATS, "help": "image format inside the zip"}
    )
    quality: int = field(default=95, metadata={"help": "JPEG quality"})
    max_pixels: int = field(
        default=DEFAULT_MAX_PIXELS,
        metadata={"help": "skip images with more pixels (decompression-bomb guard)"},
    )
    max_file_bytes: int = field(
        default=MAX_FILE_BYTES,
        metadata={
            "flag": "--max-file-mb",
            "unit": MB,
            "help": "skip files larger than this many MB",
        },
    )
    quiet: bool = field(default=False, metadata={"help": "no progress bar, no summary"})
    # Split units the user knows: a regex on the path inside the class folder (first capture
    # group), or a CSV of path,group. Such a group never straddles a split.
    group_by: str | None = field(
        default=None,
        metadata={
            "metavar": "REGEX",
            "help": "images whose path inside the class folder gives the same first capture group "
            "stay on one side of every split, e.g. frames of one video: "
            r"'^(V_[A-Z]+_\d+)_'",
        },
    )
    groups_file: Path | None = field(
        default=None,
        metadata={
            "flag": "--groups",
            "metavar": "FILE.csv",
            "help": "CSV of path,group (path as in report.json, e.g. bird/x.jpg): each group stays "
            "on one side of every split",
        },
    )
    # `skyclass review`'s decisions.csv: relabel/exclude photos (by source path and sha256).
    decisions: Path | None = field(
        default=None,
        metadata={
            "metavar": "DECISIONS.csv",
            "help": "apply the relabel/exclude decisions of `skyclass review` (matched by source "
            "path and sha256; RAW is never changed; report.json lists every applied and "
            "every refused decision)",
        },
    )

    def __post_init__(self) -> None:
        self.raw = Path(self.raw)
        self.out = Path(self.out)
        if self.groups_file is not None:
            self.groups_file = Path(self.groups_file)
        self.decisions = None if self.decisions is None else Path(self.decisions)
        checks = [
            (self.size >= 16, f"--size must be at least 16, got {self.size}"),
            (self.resize in RESIZE_MODES, f"--resize must be one of {RESIZE_MODES}"),
            (0.0 <= self.val_fraction < 1.0, "--val-fraction must be in [0, 1)"),
            (0.0 <= self.test_fraction < 1.0, "--test-fraction must be in [0, 1)"),
            (
                self.val_fraction + self.test_fraction < 1.0,
                "--val-fraction + --test-fraction must leave images for training (sum < 1)",
            ),
            (
                not (self.group_by and self.groups_file),
                "give either --group-by or --groups, not both",
            ),
            (self.dedupe in DEDUPE_MODES, f"--dedupe must be one of {DEDUPE_MODES}"),
            (0 <= self.near_threshold <= 32, "--near-threshold must be in 0..32"),
            (self.min_side >= 1, "--min-side must be at least 1"),
            (self.workers >= 1, "--workers must be at least 1"),
            (self.format in OUTPUT_FORMATS, f"--format must be one of {OUTPUT_FORMATS}"),
            (1 <= self.quality <= 100, "--quality must be in 1..100"),
        ]
        for ok, message in checks:
            if not ok:
                raise PrepareError(message)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["raw"] = str(self.raw)
        data["out"] = str(self.out)
        data["groups_file"] = None if self.groups_file is None else str(self.groups_file)
        data["decisions"] = None if self.decisions is None else str(self.decisions)
        return data
