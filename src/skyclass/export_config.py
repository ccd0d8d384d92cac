"""What `skyclass export` is asked to do: `ExportConfig`, light to import (no torch).

Each field's metadata is its command-line option (`skyclass.cli.options`); the INT8 options
are `skyclass.quantize.QuantizeOptions`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from skyclass.errors import ExportError
from skyclass.quantize import QuantizeOptions

CHECKPOINT_CHOICES = ("best", "last")


@dataclass
class ExportConfig:
    run: Path = field(
        metadata={
            "positional": True,
            "metavar": "RUN_DIR",
            "help": "run directory of `skyclass train` (or a .pt checkpoint)",
        }
    )
    out: Path = field(
        metadata={"required": True, "metavar": "BUNDLE_DIR", "help": "bundle folder to create"}
    )
    checkpoint: str = field(
        default="best",
        metadata={"choices": CHECKPOINT_CHOICES, "help": "which checkpoint of the run to export"},
    )
    # Used when the run's dataset zip is not reachable.
    parity_images: Path | None = field(
        default=None,
        metadata={
            "metavar": "FOLDER",
            "default_help": "the run's test split",
            "help": "real photos for the parity check when the run's dataset zip is not reachable",
        },
    )
    parity_count: int = field(
        default=32, metadata={"help": "how many images the parity check uses"}
    )
    name: str | None = field(
        default=None,
        metadata={
            "default_help": "run folder",
            "help": "model name in skyclass.json and responses",
        },
    )
    version: str | None = field(
        default=None,
        metadata={
            "flag": "--model-version",
            "default_help": "epoch + checkpoint sha256 prefix",
            "help": "model version string",
        },
    )
    opset: int = field(default=18, metadata={"help": "ONNX opset"})
    force: bool = field(default=False, metadata={"help": "replace an existing BUNDLE_DIR"})
    quiet: bool = field(default=False, metadata={"help": "print nothing on success"})
    quantize: QuantizeOptions = field(default_factory=QuantizeOptions, metadata={"cli": False})

    def __post_init__(self) -> None:
        self.run = Path(self.run)
        self.out = Path(self.out)
        if self.parity_images is not None:
            self.parity_images = Path(self.parity_images)
        if self.parity_count < 1:
            raise ExportError("--parity-count must be at least 1")
        if self.quantize.problems():
            raise ExportError("; ".join(self.quantize.problems()))
