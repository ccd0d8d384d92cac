"""`skyclass train --find-lr`: the LR range test (Smith 2015; fastai's `lr_find`).

The recipe's model, data and optimizer train for a few dozen steps while the LR grows
exponentially from `start_lr` to `end_lr`; the smoothed training loss against the LR shows
where learning starts and where it blows up. The suggestion is fastai's "valley": the middle
of the longest stretch over which the loss keeps falling. Nothing of the run is kept except
RUN_DIR/lr_find.json and lr_find.png; the recipe's LR ratios between head and backbone and
its BatchNorm handling are the ones being tested.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from skyclass.model import set_train_mode
from skyclass.train.config import TrainConfig
from skyclass.train.distributed import DistContext
from skyclass.train.loop import forward, setup, to_device
from skyclass.train.runtime import pick_device
from skyclass.train.state import write_json

LR_FIND_JSON = "lr_find.json"
LR_FIND_PLOT = "lr_find.png"


def valley(lrs: list[float], losses: list[float]) -> int:
    """Index of fastai's `valley` suggestion: the longest decreasing run of the loss curve,
    a little past its first third (where the loss falls steadily, far from the blow-up)."""
    n = len(losses)
    run_length = [1] * n
    best_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and run_length[i] < run_length[j] + 1:
                run_length[i] = run_length[j] + 1
        if run_length[i] > run_length[best_end]:
            best_end = i
    start = best_end - run_length[best_end] + 1
    third = (best_end - start) / 3
    return min(n - 1, start + int(third) + int(third / 2))


def lr_range_test(
    config: TrainConfig,
    start_lr: float = 1e-5,
    end_lr: float = 1.0,
    steps: int = 100,
    diverge_factor: float = 4.0,
) -> dict:
    """Run the test; returns {lrs, losses (smoothed), suggested_lr, ...} (rank 0, one process)."""
    config = config.replace(scheduler="constant", warmup_epochs=0.0, ema=0.0, resume=False)
    device = pick_device(config.device)
    run = setup(config, DistContext(), device)
    ratios = [group["lr"] / config.lr for group in run.optimizer.param_groups]
    growth = (end_lr / start_lr) ** (1.0 / max(1, steps - 1))
    lrs: list[float] = []
    losses: list[float] = []
    smoothed, best, beta = 0.0, math.inf, 0.98
    set_train_mode(run.model, config.unfreeze_from, config.frozen_bn)
    run.head.train()
    batches = iter(run.train_loader)
    for step in range(steps):
        lr = start_lr * growth**step
        for group, ratio in zip(run.optimizer.param_groups, ratios, strict=True):
            group["lr"] = lr * ratio
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(run.train_loader)
            x, y = next(batches)
        x, y = to_device(run, x, y)
        with run.autocast():
            loss = run.criterion(forward(run, x).float(), y)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        smoothed = beta * smoothed + (1 - beta) * loss.item()
        value = smoothed / (1 - beta ** (step + 1))
        if not math.isfinite(value) or (step > 10 and value > diverge_factor * best):
            break
        best = min(best, value)
        lrs.append(lr)
        losses.append(value)
        if not config.quiet:
            print(
                f"\rlr {lr:.2e}  loss {value:.4f}  ({step + 1}/{steps})",
                end="",
                file=sys.stderr,
                flush=True,
            )
    print(file=sys.stderr)
    if len(lrs) < 5:
        return {"lrs": lrs, "losses": losses, "suggested_lr": None, "steps_run": len(lrs)}
    pick = valley(lrs, losses)
    return {
        "lrs": lrs,
        "losses": losses,
        "suggested_lr": lrs[pick],
        "min_loss_lr": lrs[losses.index(min(losses))],
        "steps_run": len(lrs),
        "start_lr": start_lr,
        "end_lr": end_lr,
        "recipe": config.recipe,
        "batch_size": config.batch_size,
    }


def plot_lr_find(result: dict, path: Path) -> None:
    """Loss against LR (log axis), with the suggestion marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(result["lrs"], result["losses"])
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (head)")
    ax.set_ylabel("training loss (smoothed)")
    if result["suggested_lr"]:
        lr = result["suggested_lr"]
        ax.axvline(lr, color="tab:red", linestyle="--", label=f"suggested --lr {lr:.2g}")
        ax.legend()
    ax.set_title("LR range test (skyclass train --find-lr)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def find_lr(config: TrainConfig, steps: int = 100) -> dict:
    """The range test, written to RUN_DIR/lr_find.json and lr_find.png."""
    result = lr_range_test(config, steps=steps)
    out = Path(config.out)
    write_json(out / LR_FIND_JSON, result)
    plot_lr_find(result, out / LR_FIND_PLOT)
    return {**result, "json": str(out / LR_FIND_JSON), "plot": str(out / LR_FIND_PLOT)}
