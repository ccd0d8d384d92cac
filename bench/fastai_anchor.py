"""fastai's `fine_tune` on a skyclass dataset zip: the anchor `bench/train_accuracy.py` runs.

    .venv/bin/python bench/fastai_anchor.py --data ddd.zip --epochs 12 --workers 0

fastai's defaults, as a user of it would run them: `vision_learner` with torchvision's
ImageNet MobileNetV2 (the same weights file skyclass uses, found offline), its own head
(concat pooling, BatchNorm, dropout), `aug_transforms()`, `fine_tune(epochs - 1,
freeze_epochs=1)` (one epoch with the body frozen, BatchNorm layers training: `train_bn`),
its LR 2e-3 with one-cycle. Trained on the zip's train split, validated on its val split,
scored once on its test split at the end. Needs `pip install fastai==2.8.*` (not a skyclass
dependency). Prints one JSON line.

fastai's `vision_learner` ignores `cut=` for torchvision's `mobilenet_v2` (its model_meta has
no entry): the offline constructor below is registered with `cut=-1` (drop the classifier).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path


def offline_mobilenet_v2(pretrained: bool = True, **_: object):
    """torchvision's MobileNetV2 with the ImageNet weights skyclass resolves offline."""
    import torch
    from torchvision.models import mobilenet_v2

    from skyclass.model import resolve_weights

    model = mobilenet_v2(weights=None)
    if pretrained:
        model.load_state_dict(
            torch.load(resolve_weights(allow_download=False), map_location="cpu", weights_only=True)
        )
    return model


def fine_tune(data: Path, epochs: int, workers: int, batch_size: int = 32) -> dict:
    import torch
    from fastai.vision.all import (
        Callback,
        ImageDataLoaders,
        accuracy,
        aug_transforms,
        get_image_files,
        model_meta,
        vision_learner,
    )
    from fastai.vision.learner import _default_meta

    class TrainTime(Callback):
        """Seconds spent in the training phases only (not validation), like skyclass's."""

        seconds = 0.0

        def before_train(self) -> None:
            self.start = time.perf_counter()

        def after_train(self) -> None:
            TrainTime.seconds += time.perf_counter() - self.start

    model_meta[offline_mobilenet_v2] = {**_default_meta, "cut": -1}
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(data) as zf:
            zf.extractall(tmp)
        root = Path(tmp)
        torch.manual_seed(0)
        dls = ImageDataLoaders.from_folder(
            root,
            train="train",
            valid="val",
            bs=batch_size,
            num_workers=workers,
            batch_tfms=aug_transforms(),
            seed=0,
        )
        learn = vision_learner(dls, offline_mobilenet_v2, metrics=accuracy, cbs=TrainTime())
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        with learn.no_bar(), learn.no_logging():
            learn.fine_tune(epochs - 1, freeze_epochs=1)
        wall_seconds = time.perf_counter() - start
        val_loss, val_acc = learn.validate()
        test_files = get_image_files(root / "test")
        test_dl = learn.dls.test_dl(test_files, with_labels=True)
        preds, targets = learn.get_preds(dl=test_dl)
        test_acc = (preds.argmax(1) == targets).float().mean().item()
        vocab = list(learn.dls.vocab)
        recall = {
            c: ((preds.argmax(1) == targets) & (targets == i)).sum().item()
            / max(1, (targets == i).sum().item())
            for i, c in enumerate(vocab)
        }
        train_images = len(dls.train_ds) * epochs
        return {
            "framework": "fastai",
            "epochs": epochs,
            "final_val_acc": float(val_acc),
            "final_val_loss": float(val_loss),
            "test_acc": test_acc,
            "test_recall": recall,
            "test_images": len(test_files),
            "wall_seconds": wall_seconds,
            "train_seconds": TrainTime.seconds,
            "train_images_per_s": train_images / TrainTime.seconds,
            "loadavg_1min": [load_before, os.getloadavg()[0]],
            "workers": workers,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(fine_tune(args.data, args.epochs, args.workers)))


if __name__ == "__main__":
    main()
