"""What `skyclass review` is asked to do: `ReviewConfig`, light to import (no numpy, no torch).

Each field's metadata is its command-line option (`skyclass.cli.options`). `ReviewPage` holds the
options of the page that `--serve` opens after scoring (`skyclass.review.server`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from skyclass.errors import ReviewError

DEFAULT_PORT = 8001  # of the review page (skyclass serve's API listens on 8000)


@dataclass
class ReviewConfig:
    dataset: Path = field(
        metadata={
            "positional": True,
            "metavar": "DATASET.zip",
            "help": "a zip written by `prepare`",
        }
    )
    out: Path = field(metadata={"required": True, "metavar": "REVIEW_DIR", "help": "output folder"})
    run: Path | None = field(
        default=None,
        metadata={
            "metavar": "RUN_DIR",
            "default_help": "ImageNet MobileNetV2",
            "help": "embed with this training run's fine-tuned backbone",
        },
    )
    weights: Path | None = field(
        default=None,
        metadata={"metavar": "PATH", "help": "ImageNet MobileNetV2 weights file"},
    )
    folds: int = field(default=5, metadata={"help": "cross-validation folds"})
    seed: int = field(default=0, metadata={"help": "seed of the folds"})
    recompute: bool = field(
        default=False,
        metadata={"help": "score again even if REVIEW_DIR holds a review of this dataset"},
    )
    # Embeddings cache (default: out/embeddings.npz), e.g. one shared by several reviews.
    cache: Path | None = field(default=None, metadata={"cli": False})
    quiet: bool = field(default=False, metadata={"help": "no progress bar, no summary"})
    # Facts a caller (a benchmark) wants in summary.json.
    extra: dict = field(default_factory=dict, metadata={"cli": False})

    def __post_init__(self) -> None:
        self.dataset, self.out = Path(self.dataset), Path(self.out)
        self.run = None if self.run is None else Path(self.run)
        self.weights = None if self.weights is None else Path(self.weights)
        self.cache = None if self.cache is None else Path(self.cache)
        if self.folds < 2:
            raise ReviewError(f"--folds must be at least 2, got {self.folds}")
        if self.out.exists() and not self.out.is_dir():
            raise ReviewError(f"--out {self.out} is a file; give a folder")

    @property
    def backbone(self) -> str:
        return f"run:{self.run}" if self.run else "imagenet"


@dataclass
class ReviewPage:
    """`--serve`: after scoring, open the page where each suspect is decided."""

    serve: bool = field(
        default=False, metadata={"help": "then open the review page on http://127.0.0.1:PORT/"}
    )
    port: int = field(default=DEFAULT_PORT, metadata={"help": "port of the page"})
