"""TrainConfig and the named recipes.

A recipe is a dict of TrainConfig values; `TrainConfig.from_recipe(name, **overrides)` starts
from the dataclass defaults, applies the recipe, then every override that is not None, so any
recipe value can be changed on the command line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from skyclass.augment import AugmentConfig
from skyclass.errors import SkyclassError

BALANCE_MODES = ("off", "sampler", "loss")
DEVICES = ("auto", "cpu", "cuda", "mps")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULERS = ("plateau", "cosine", "onecycle", "constant")
AMP_MODES = ("auto", "off", "bf16", "fp16")
# What the BatchNorm layers of the frozen blocks do while training: keep ImageNet's statistics
# ("frozen"), re-estimate them on these photos ("adapt": train mode, no gradient; what the
# reference notebook's model.train() did) or also learn their scale and shift ("train": like
# fastai's train_bn; the gradient then runs through the whole backbone).
FROZEN_BN_MODES = ("frozen", "adapt", "train")


@dataclass
class TrainConfig:
    """Everything one training run depends on (saved in config.json and every checkpoint).

    The defaults are the `default` recipe, so `TrainConfig(data=..., out=...)` is a sane run.
    """

    data: str = ""
    out: str = ""
    recipe: str = "default"
    # model
    width_mult: float = 1.0
    dropout: float = 0.2
    pretrained: bool = True
    weights: str | None = None
    unfreeze_from: int = 14
    frozen_bn: str = "frozen"
    # optimisation
    epochs: int = 20
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4  # optimizer (decoupled from the loss) weight decay
    backbone_lr_mult: float = 0.5  # LR of unfrozen feature blocks relative to the head
    l1: float = 0.0  # penalties added to the loss, over trainable weights only
    l2: float = 0.0
    label_smoothing: float = 0.1
    scheduler: str = "cosine"
    plateau_factor: float = 0.1
    plateau_patience: int = 2
    warmup_epochs: float = 0.5
    grad_clip: float = 0.0
    ema: float = 0.0  # half-life, in epochs, of an exponential moving average of the weights
    patience: int = 0  # stop after this many epochs without a lower validation loss (0: off)
    # augmentation
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    balance: str = "off"
    # runtime
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = True
    workers: int = -1  # -1: choose from the core count
    threads: int = 0  # 0: all cores (divided between DDP ranks)
    seed: int = 0
    resume: bool = False
    quiet: bool = False
    script_at: float = 0.8  # save the scripted model at this fraction of the epochs
    # Options the user gave over the recipe (from_recipe fills it): on --resume, a given
    # --epochs extends (or confirms) the saved run's count, an absent one keeps it.
    explicit: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**self.augment)

    def validate(self) -> TrainConfig:
        checks = [
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (self.width_mult > 0, f"--width-mult must be > 0, got {self.width_mult}"),
            (self.balance in BALANCE_MODES, f"--balance must be one of {BALANCE_MODES}"),
            (self.device in DEVICES, f"--device must be one of {DEVICES}"),
            (self.optimizer in OPTIMIZERS, f"--optimizer must be one of {OPTIMIZERS}"),
            (self.scheduler in SCHEDULERS, f"--scheduler must be one of {SCHEDULERS}"),
            (self.amp in AMP_MODES, f"--amp must be one of {AMP_MODES}"),
            (self.frozen_bn in FROZEN_BN_MODES,
             f"--frozen-bn must be one of {FROZEN_BN_MODES}"),
            (self.ema >= 0, f"--ema must be >= 0 (epochs of half-life), got {self.ema}"),
            (self.patience >= 0, f"--patience must be >= 0, got {self.patience}"),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
            (bool(self.data), "a dataset zip is required"),
            (bool(self.out), "--out RUN_DIR is required"),
        ]
        for ok, message in checks:
            if not ok:
                raise SkyclassError(message)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_recipe(cls, name: str = "default", **overrides: Any) -> TrainConfig:
        """Defaults <- recipe <- overrides (None means 'keep the recipe value')."""
        if name not in RECIPES:
            raise SkyclassError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
        values: dict[str, Any] = dict(RECIPES[name])
        aug = dict(values.pop("augment", {}))
        aug.update(overrides.pop("augment", None) or {})
        given = {k: v for k, v in overrides.items() if v is not None}
        values.update(given)
        values["explicit"] = sorted(set(given) - {"data", "out", "resume", "quiet"})
        values["recipe"] = name
        for key, value in values.items():
            if isinstance(value, Path):
                values[key] = str(value)
        return cls(augment=AugmentConfig(**aug), **values)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


# The reference notebook, exactly: the whole model in train mode (so the frozen blocks'
# BatchNorm statistics adapt: frozen_bn "adapt"), SGD(momentum 0.9) at LR 0.3,
# ReduceLROnPlateau(x0.1),
# L2 1e-4 and L1 5e-4 added to the loss, batch 32, 20 epochs, features[16:] trainable,
# Rotate + HorizontalFlip + Resize + RGBShift + Normalize + Cutout(one hole, 1/4 side).
REFERENCE: dict[str, Any] = {
    "epochs": 20, "batch_size": 32, "optimizer": "sgd", "lr": 0.3, "momentum": 0.9,
    "nesterov": False,
    "scheduler": "plateau", "plateau_factor": 0.1, "plateau_patience": 2,
    "l2": 1e-4, "l1": 5e-4, "weight_decay": 0.0, "label_smoothing": 0.0,
    "unfreeze_from": 16, "frozen_bn": "adapt", "backbone_lr_mult": 1.0, "warmup_epochs": 0.0,
    "augment": {"rotate_limit": 20.0, "hflip": 0.5, "rgb_shift": 20, "rgb_shift_p": 0.5,
                "cutout_frac": 0.25, "cutout_p": 0.5, "crop_scale_min": None},
}

# The default recipe is the dataclass defaults above (and AugmentConfig's), chosen from
# bench/train_accuracy.py measurements (see bench/results/train_accuracy.md).
DEFAULT: dict[str, Any] = {}

RECIPES: dict[str, dict[str, Any]] = {"reference": REFERENCE, "default": DEFAULT}
