"""Real training runs on the 64-px eva4 fixture with a tiny MobileNetV2."""

from __future__ import annotations

import json

import pytest
import torch

from skyclass.checkpoint import load_checkpoint, load_trained_model, read_history
from skyclass.dataset_zip import PreparedDataset
from skyclass.images import PreprocessSpec
from skyclass.model import build_model
from skyclass.train import TrainConfig, TrainError, train
from skyclass.train.optim import penalty, trainable_parameters

TINY = {
    "width_mult": 0.25,
    "pretrained": False,
    "workers": 0,
    "quiet": True,
    "seed": 0,
    "amp": "off",
}  # bf16 pays off for the full model only; fp32 is faster here


def test_tiny_run_writes_the_run_dir_contract(tiny_run, eva4_zip):
    rows = read_history(tiny_run)
    assert [r["epoch"] for r in rows] == [1, 2]
    for row in rows:
        for key in (
            "train_loss",
            "train_acc",
            "val_loss",
            "val_acc",
            "lr",
            "images_per_s",
            "epoch_seconds",
            "val_recall",
        ):
            assert key in row
        assert not any(key.startswith("test_") for key in row)  # test is scored once, at the end
        assert row["train_images"] > 0 and row["images_per_s"] > 0
    state = load_checkpoint(tiny_run / "last.pt")  # torch.load(weights_only=True) inside
    assert state["epoch"] == 2
    assert state["class_names"] == [
        "Flying Birds",
        "Large QuadCopters",
        "Small QuadCopters",
        "Winged Drones",
    ]
    assert PreprocessSpec.from_dict(state["preprocess"]).size == 64
    assert state["config"]["width_mult"] == 0.25 and state["config"]["recipe"] == "default"
    assert {"optimizer", "scheduler", "rng", "metrics"} <= set(state)
    best = load_checkpoint(tiny_run / "best.pt")
    assert best["metrics"]["val_acc"] == max(r["val_acc"] for r in rows)
    assert best["metrics"]["validation_split"] == "val"
    test = json.loads((tiny_run / "test.json").read_text())
    assert test["test_acc"] == best["metrics"]["test_acc"] and test["epoch"] == best["epoch"]
    assert test["test_images"] == len(PreparedDataset(eva4_zip).split("test"))
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["class_names"] == state["class_names"]


def test_traced_and_scripted_models_match_the_checkpoint(tiny_run):
    trained = load_trained_model(tiny_run, "best")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = trained.model(x)
        traced = torch.jit.load(str(tiny_run / "model_traced_cpu.pt"))
        assert torch.allclose(traced(x), expected, atol=1e-5)
        scripted = torch.jit.load(str(tiny_run / "model_scripted.pt")).eval()
        assert scripted(x).shape == expected.shape


def test_frozen_blocks_and_their_bn_statistics_are_bit_identical(eva4_zip, tmp_path):
    k = 10
    torch.manual_seed(0)  # train() seeds the same way before building the model
    initial = build_model(4, width_mult=0.25, pretrained=False).state_dict()
    train(
        TrainConfig(
            data=str(eva4_zip),
            out=str(tmp_path / "run"),
            epochs=1,
            lr=0.05,
            unfreeze_from=k,
            balance="sampler",
            **TINY,
        )
    )
    final = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    frozen = [n for n in initial if n.startswith("features.") and int(n.split(".")[1]) < k]
    assert any("running_mean" in n for n in frozen) and any("num_batches" in n for n in frozen)
    for name in frozen:
        assert torch.equal(initial[name], final[name]), name
    # ...while the trainable part did learn (the test could fail).
    trained = [n for n in initial if n.startswith(("features.17.", "classifier."))]
    assert any(not torch.equal(initial[n], final[n]) for n in trained)


def test_penalties_cover_trainable_weights_only():
    model = build_model(3, width_mult=0.25, pretrained=False)
    for p in model.features[:15].parameters():
        p.requires_grad_(False)
    params = trainable_parameters(model)
    expected = sum(p.detach().abs().sum() for p in params) * 5e-4
    assert torch.isclose(penalty(params, 5e-4, 0.0), expected)
    everything = sum(p.detach().abs().sum() for p in model.parameters()) * 5e-4
    assert not torch.isclose(penalty(params, 5e-4, 0.0), everything)
    assert penalty(params, 0.0, 0.0) == 0.0


def test_diverging_loss_stops_with_epoch_and_lr(eva4_zip, tmp_path):
    config = TrainConfig(
        data=str(eva4_zip),
        out=str(tmp_path / "run"),
        epochs=2,
        lr=1e12,
        scheduler="constant",
        warmup_epochs=0,
        unfreeze_from=0,
        balance="loss",
        **TINY,
    )
    with pytest.raises(TrainError, match=r"epoch 1 at LR 1e\+12"):
        train(config)


def test_recipes_and_overrides():
    ref = TrainConfig.from_recipe("reference", data="d.zip", out="o")
    assert (ref.lr, ref.batch_size, ref.epochs, ref.l1, ref.l2) == (0.3, 32, 20, 5e-4, 1e-4)
    assert ref.scheduler == "plateau" and ref.plateau_factor == 0.1 and ref.unfreeze_from == 16
    # Plain momentum SGD, no decoupled decay or smoothing: the seed's optimizer, not ours.
    assert (ref.momentum, ref.nesterov, ref.weight_decay, ref.label_smoothing) == (0.9, False, 0, 0)
    assert ref.augment.crop_scale_min is None and ref.augment.cutout_frac == 0.25
    tuned = TrainConfig.from_recipe(
        "reference", data="d.zip", out="o", lr=0.05, epochs=None, augment={"rotate_limit": 0}
    )
    assert tuned.lr == 0.05 and tuned.epochs == 20 and tuned.augment.rotate_limit == 0
    assert TrainConfig.from_dict(tuned.to_dict()) == tuned
