"""What `skyclass evaluate` is asked to do: `EvaluateConfig`, light to import (no numpy, no torch).

Each field's metadata is its command-line option (`skyclass.cli.options`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

DEFAULT_BATCH = 32
SPLIT_CHOICES = ("test", "val", "train")
CHECKPOINT_CHOICES = ("best", "last")


def comma_names(text: str) -> list[str]:
    """`A,B,C` -> ['A', 'B', 'C'] (an empty name is refused)."""
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"empty name in --short-names {text!r}")
    return names


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


@dataclass
class EvaluateConfig:
    """What `skyclass evaluate` was asked to do."""

    target: str = field(
        metadata={
            "positional": True,
            "metavar": "RUN_DIR|BUNDLE_DIR",
            "help": "training run directory (or a .pt checkpoint) or exported bundle",
        }
    )
    data: str | None = field(
        default=None,
        metadata={
            "metavar": "DATASET.zip|FOLDER",
            "default_help": "the run's own dataset",
            "help": "data to evaluate on",
        },
    )
    split: str = field(
        default="test",
        metadata={
            "choices": SPLIT_CHOICES,
            "help": "split of a dataset zip to evaluate: test is scored by no selection, val "
            "chose best.pt, train is what it learnt from",
        },
    )
    checkpoint: str = field(
        default="best",
        metadata={"choices": CHECKPOINT_CHOICES, "help": "which checkpoint of a run"},
    )
    out: str | None = field(
        default=None,
        metadata={
            "metavar": "DIR",
            "default_help": "RUN_DIR/report, or BUNDLE_DIR-report",
            "help": "report folder",
        },
    )
    short_names: list[str] | None = field(
        default=None,
        metadata={
            "type": comma_names,
            "metavar": "A,B,...",
            "default_help": "initials such as FB,LQ,SQ,WD when names are long",
            "help": "comma-separated class labels for the plots, in class order",
        },
    )
    batch_size: int = field(
        default=DEFAULT_BATCH, metadata={"type": positive_int, "help": "images per forward pass"}
    )
    quiet: bool = field(default=False, metadata={"help": "no progress bar, no table"})
    # Recorded as-is in metrics.json (bench labels).
    extra: dict[str, Any] = field(default_factory=dict, metadata={"cli": False})
    # The report's heading; default: the run or bundle folder's name (`skyclass run`: --name).
    title: str | None = field(default=None, metadata={"cli": False})
