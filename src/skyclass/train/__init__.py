"""`skyclass train`: fine-tune MobileNetV2 on a prepared dataset zip.

    from skyclass.train import TrainConfig, train
    summary = train(TrainConfig.from_recipe("default", data="ds.zip", out="runs/a"))

`TrainConfig` and `RECIPES` import without torch (the CLI reads them to build its options);
`train` loads the training loop, and torch, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from skyclass.errors import TrainError
from skyclass.train.config import RECIPES, TrainConfig

if TYPE_CHECKING:
    from skyclass.train.loop import train

__all__ = ["RECIPES", "TrainConfig", "TrainError", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from skyclass.train.loop import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
