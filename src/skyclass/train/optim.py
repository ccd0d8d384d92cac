"""What learns and how fast: trainable parameters, L1/L2 penalties, optimizer, LR schedule
and the weight average (--ema). Built from a TrainConfig; no data, no devices."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from skyclass.train.config import TrainConfig


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def penalty(params: list[nn.Parameter], l1: float, l2: float) -> torch.Tensor | float:
    """The reference's L1/L2 loss terms, over trainable weights only."""
    total: torch.Tensor | float = 0.0
    if l1:
        total = total + l1 * sum(p.abs().sum() for p in params)
    if l2:
        total = total + l2 * sum(p.pow(2).sum() for p in params)
    return total


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Head at `lr`, unfrozen feature blocks at `lr * backbone_lr_mult`; no decay on BN/bias."""
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = "head" if name.startswith("classifier") else "backbone"
        groups.setdefault((part, p.ndim > 1), []).append(p)
    param_groups = []
    for (part, decay), params in sorted(groups.items()):
        lr = config.lr * (config.backbone_lr_mult if part == "backbone" else 1.0)
        param_groups.append(
            {
                "params": params,
                "lr": lr,
                "initial_lr": lr,
                "weight_decay": config.weight_decay if decay else 0.0,
            }
        )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(param_groups, lr=config.lr)
    return torch.optim.SGD(
        param_groups,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov and config.momentum > 0,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """Per-step schedules (cosine/onecycle/constant, with linear warm-up) or epoch plateau."""
    if config.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience
        )
    total = max(1, config.epochs * steps_per_epoch)
    if config.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            total_steps=total,
            pct_start=0.25,
        )
    warmup = int(config.warmup_epochs * steps_per_epoch)
    cosine = config.scheduler == "cosine"

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if not cosine:
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def build_ema(
    model: nn.Module, half_life_epochs: float, steps_per_epoch: int
) -> AveragedModel | None:
    """An exponential moving average of weights and BatchNorm statistics (--ema), or None.

    The decay comes from a half-life in epochs, so one setting means the same on 700 photos
    as on 70,000.
    """
    if half_life_epochs <= 0:
        return None
    decay = 0.5 ** (1.0 / max(1.0, half_life_epochs * steps_per_epoch))
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
