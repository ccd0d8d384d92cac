"""The hard-data recipe options on real tiny runs: BatchNorm of the frozen blocks, EMA,
early stopping and the LR range test."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from skyclass.checkpoint import load_checkpoint, read_history
from skyclass.model import build_model, feature_blocks, freeze_backbone, set_train_mode
from skyclass.train import TrainConfig, train
from skyclass.train.loop import epochs_without_better_val_loss, training_prefix
from skyclass.train.lr_find import find_lr, valley

TINY = {
    "width_mult": 0.25,
    "pretrained": False,
    "workers": 0,
    "quiet": True,
    "seed": 0,
    "amp": "off",
}
K = 10  # features[:10] frozen


def _frozen_names(state: dict, kind: str) -> list[str]:
    return [
        n
        for n in state
        if n.startswith("features.") and int(n.split(".")[1]) < K and n.endswith(kind)
    ]


def _run(eva4_zip, tmp_path, name: str, **options) -> dict:
    out = tmp_path / name
    train(
        TrainConfig(
            data=str(eva4_zip),
            out=str(out),
            unfreeze_from=K,
            lr=0.05,
            **{"epochs": 1, **TINY, **options},
        )
    )
    return load_checkpoint(out / "last.pt")


@pytest.fixture(scope="module")
def initial() -> dict:
    torch.manual_seed(0)  # train() seeds the same way before building the model
    return build_model(4, width_mult=0.25, pretrained=False).state_dict()


def test_adapt_re_estimates_frozen_statistics_but_keeps_frozen_weights(eva4_zip, tmp_path, initial):
    final = _run(eva4_zip, tmp_path, "adapt", frozen_bn="adapt")["model"]
    for name in _frozen_names(initial, "weight") + _frozen_names(initial, "bias"):
        assert torch.equal(initial[name], final[name]), name
    means = _frozen_names(initial, "running_mean")
    assert means and all(not torch.equal(initial[n], final[n]) for n in means)


def test_frozen_keeps_the_frozen_blocks_as_built_weights_and_statistics(
    eva4_zip, tmp_path, initial
):
    """The default trains on a BatchNorm-folded copy of the prefix; the model it saves keeps
    every layer and every frozen value as built."""
    final = _run(eva4_zip, tmp_path, "frozen", frozen_bn="frozen")["model"]
    assert set(final) == set(initial)
    frozen = [n for kind in ("weight", "bias", "running_mean", "running_var") for n in
              _frozen_names(initial, kind)]  # fmt: skip
    assert any(n.endswith("running_mean") for n in frozen)
    for name in frozen:
        assert torch.equal(initial[name], final[name]), name


def _prefix_run(frozen_bn: str) -> SimpleNamespace:
    """What training_prefix reads of a Run: the config and a prefix in its training state."""
    torch.manual_seed(0)
    model = build_model(4, width_mult=0.25, pretrained=False)
    for m in model.modules():  # statistics and affine values far from the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.2, 3)
            m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    freeze_backbone(model, K)
    set_train_mode(model, K, frozen_bn)
    config = TrainConfig(data="-", out="-", unfreeze_from=K, frozen_bn=frozen_bn)
    return SimpleNamespace(config=config, prefix=feature_blocks(model)[:K])


def test_frozen_prefix_is_folded_and_computes_the_same_features():
    run = _prefix_run("frozen")
    folded = training_prefix(run)
    assert folded is not run.prefix
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in run.prefix.modules())
    x = torch.randn(3, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        want, got = run.prefix(x), folded(x)
    assert torch.allclose(want, got, rtol=1e-4, atol=1e-4), (want - got).abs().max()


@pytest.mark.parametrize("frozen_bn", ["adapt", "train"])
def test_prefix_whose_statistics_change_runs_as_it_is(frozen_bn):
    run = _prefix_run(frozen_bn)
    assert training_prefix(run) is run.prefix


def test_train_bn_learns_frozen_bn_scale_and_shift_only(eva4_zip, tmp_path, initial):
    final = _run(eva4_zip, tmp_path, "train_bn", frozen_bn="train")["model"]
    model = build_model(4, width_mult=0.25, pretrained=False)
    bn = {
        f"features.{i}.{n}"
        for i, block in enumerate(model.features[:K])
        for n, m in block.named_modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    }
    conv_weights = [n for n in _frozen_names(initial, "weight") if n.rsplit(".", 1)[0] not in bn]
    bn_weights = [n for n in _frozen_names(initial, "weight") if n.rsplit(".", 1)[0] in bn]
    assert conv_weights and bn_weights
    for name in conv_weights:
        assert torch.equal(initial[name], final[name]), name
    assert all(not torch.equal(initial[n], final[n]) for n in bn_weights)


def test_ema_weights_are_the_validated_and_saved_ones_and_resume_exactly(eva4_zip, tmp_path):
    # A constant LR: the schedule of a 1-epoch run resumed to 2 is the 2-epoch run's.
    flat = {"ema": 0.5, "scheduler": "constant", "warmup_epochs": 0.0}
    straight = _run(eva4_zip, tmp_path, "ema", epochs=2, **flat)
    assert set(straight) >= {"model", "train_model", "ema"}
    differs = [
        n
        for n, t in straight["model"].items()
        if t.is_floating_point() and not torch.equal(t, straight["train_model"][n])
    ]
    assert differs  # the average is not the last step's weights
    best = load_checkpoint(tmp_path / "ema" / "best.pt")
    assert best["metrics"]["best_epoch"] in (1, 2)
    # One epoch, then --resume to two: the same average as the straight run.
    _run(eva4_zip, tmp_path, "ema_resumed", epochs=1, **flat)
    config = TrainConfig.from_recipe(
        "default",
        data=str(eva4_zip),
        out=str(tmp_path / "ema_resumed"),
        resume=True,
        epochs=2,
        **TINY,
    )
    train(config)
    resumed = load_checkpoint(tmp_path / "ema_resumed" / "last.pt")
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name


def test_patience_stops_when_the_validation_loss_stops_falling(eva4_zip, tmp_path):
    assert epochs_without_better_val_loss([{"val_loss": v} for v in (3, 2, 2.5, 2.1)]) == 2
    assert epochs_without_better_val_loss([{"val_loss": v} for v in (3, 2, 1)]) == 0
    out = tmp_path / "patience"
    summary = train(
        TrainConfig(
            data=str(eva4_zip), out=str(out), epochs=8, lr=0.5, unfreeze_from=0, patience=1, **TINY
        )
    )
    rows = read_history(out)
    losses = [r["val_loss"] for r in rows]
    # It stopped at the first epoch whose loss was not a new minimum, and not before.
    first_worse = next(i for i in range(1, len(losses)) if losses[i] >= min(losses[:i]))
    assert len(rows) == first_worse + 1 < 8
    assert summary["stopped_early"] is True
    assert summary["best_epoch"] <= len(rows)


def test_valley_picks_the_steady_descent():
    lrs = [10 ** (-5 + i / 10) for i in range(50)]
    # Flat, then falling steadily from index 10 to 40, then blowing up.
    losses = [2.0] * 10 + [2.0 - 0.05 * i for i in range(30)] + [0.6 + 0.5 * i for i in range(10)]
    pick = valley(lrs, losses)
    assert 10 < pick < 40


def test_find_lr_writes_curve_plot_and_a_suggestion(eva4_zip, tmp_path):
    config = TrainConfig.from_recipe(
        "default",
        data=str(eva4_zip),
        out=str(tmp_path / "lr"),
        unfreeze_from=0,
        batch_size=8,
        **TINY,
    )
    result = find_lr(config, steps=40)
    saved = json.loads((tmp_path / "lr" / "lr_find.json").read_text())
    assert saved["lrs"] == result["lrs"] and len(saved["lrs"]) >= 10
    assert all(math.isfinite(v) for v in saved["losses"])
    assert saved["lrs"] == sorted(saved["lrs"])
    assert saved["lrs"][0] <= result["suggested_lr"] <= saved["lrs"][-1]
    assert (tmp_path / "lr" / "lr_find.png").stat().st_size > 1000
    assert not (tmp_path / "lr" / "last.pt").exists()  # nothing of a run is kept


def test_reference_recipe_adapts_batchnorm_like_the_notebook():
    assert TrainConfig.from_recipe("reference", data="d", out="o").frozen_bn == "adapt"
    assert TrainConfig.from_recipe("default", data="d", out="o").frozen_bn in (
        "frozen",
        "adapt",
        "train",
    )


def test_find_lr_from_the_command_line(eva4_zip, tmp_path, capsys):
    from skyclass.cli import main

    out = tmp_path / "cli_lr"
    code = main(
        [
            "train",
            str(eva4_zip),
            "--out",
            str(out),
            "--find-lr",
            "--width-mult",
            "0.25",
            "--no-pretrained",
            "--unfreeze-from",
            "0",
            "--batch-size",
            "8",
            "--workers",
            "0",
            "--amp",
            "off",
            "--frozen-bn",
            "adapt",
            "--quiet",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "suggested --lr" in printed and str(out / "lr_find.png") in printed
    saved = json.loads((out / "lr_find.json").read_text())
    assert f"{saved['suggested_lr']:.3g}" in printed
