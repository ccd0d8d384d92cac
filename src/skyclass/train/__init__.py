"""`skyclass train`: fine-tune MobileNetV2 on a prepared dataset zip.

    from skyclass.train import TrainConfig, train
    summary = train(TrainConfig.from_recipe("default", data="ds.zip", out="runs/a"))
"""

from skyclass.train.config import RECIPES, TrainConfig
from skyclass.train.loop import TrainError, train

__all__ = ["RECIPES", "TrainConfig", "TrainError", "train"]
