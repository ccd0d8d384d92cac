"""The training loop: read the recipe, top to bottom.

The parts it drives live beside it: `config` (TrainConfig, the recipes), `optim` (optimizer,
schedule, penalties, EMA), `loaders` (DataLoaders), `runtime` (device, precision, threads),
`state` (run-dir files, history, RNG), `distributed` (torchrun), `lr_find` (--find-lr).

Fixes over the reference notebook, each a cause of lost accuracy there:
- the frozen prefix runs under `torch.no_grad()` and stays in eval mode (BatchNorm statistics
  do not drift; `model.set_train_mode`);
- L1/L2 penalties cover trainable weights only;
- the test transform is the serving preprocessing (`torch_data.EvalTransform`);
- best.pt and the plateau scheduler follow the validation split; the test split is scored
  once, at the end, with best.pt (`final_test`), so the reported figure was never selected on.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, DistributedSampler

from skyclass import cpu_memory
from skyclass.checkpoint import TEST_METRICS_NAME, load_checkpoint, save_checkpoint
from skyclass.cores import usable_cores
from skyclass.dataset_zip import PreparedDataset
from skyclass.errors import RunDirError, TrainError
from skyclass.model import (
    build_model,
    feature_blocks,
    fold_batchnorm,
    freeze_backbone,
    set_train_mode,
)
from skyclass.progress import progress_enabled
from skyclass.torch_data import (
    TrainTransform,
    ZipImageDataset,
    check_trainable,
    class_counts,
    inverse_frequency_weights,
)
from skyclass.train.config import TrainConfig
from skyclass.train.distributed import (
    DistContext,
    all_reduce_sum,
    average_buffers,
    barrier,
    broadcast_flag,
    cleanup_distributed,
    init_distributed,
)
from skyclass.train.loaders import eval_loader, loader_options, make_loaders
from skyclass.train.optim import (
    build_ema,
    build_optimizer,
    build_scheduler,
    penalty,
    trainable_parameters,
)
from skyclass.train.runtime import amp_dtype, opencv_threads, pick_device
from skyclass.train.state import (
    SCRIPTED_NAME,
    TRACED_NAME,
    append_history,
    capture_rng,
    dataset_fingerprint,
    ensure_writable,
    recorded_dataset,
    restore_rng,
    save_scripted,
    save_traced_cpu,
    truncate_history,
    write_config,
    write_json,
)

# Config fields that may differ on --resume (how to run, not what to learn).
RUNTIME_FIELDS = TrainConfig.runtime_fields()


class TrainInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; its message says which epoch is saved and how to resume."""


# --------------------------------------------------------------------------- model pieces


class TrainableHead(nn.Module):
    """features[k:] + pool + classifier: the part that learns (and the part DDP wraps)."""

    def __init__(self, model: nn.Module, k: int) -> None:
        super().__init__()
        self.blocks = feature_blocks(model)[k:]
        self.classifier = cast(nn.Module, model.classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


# --------------------------------------------------------------------------- the run


@dataclass(kw_only=True)
class Run:
    """Everything a training run holds; built by `setup`, driven by `train`."""

    config: TrainConfig
    ctx: DistContext
    device: torch.device
    run_dir: Path
    dataset: PreparedDataset
    fingerprint: str
    model: nn.Module
    prefix: nn.Sequential  # features[:k] as forward() runs it (`training_prefix`)
    head: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler | ReduceLROnPlateau
    criterion: nn.Module
    train_loader: DataLoader
    test_loader: DataLoader
    generator: torch.Generator
    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None
    start_epoch: int = 0
    best_acc: float = -1.0  # best validation accuracy so far
    best_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    val_loader: DataLoader | None = None  # None: an old two-way zip, validate on test
    warnings: list[str] = field(default_factory=list)
    bar: Any = None  # the epoch's progress bar, closed on Ctrl-C before the message
    ema: AveragedModel | None = None  # --ema: the averaged weights are the ones evaluated

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated, saved as best.pt and exported."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def validation_split(self) -> str:
        return "val" if self.val_loader is not None else "test"

    @property
    def per_step_schedule(self) -> bool:
        return self.config.scheduler != "plateau"

    @property
    def class_names(self) -> list[str]:
        return self.dataset.classes

    def autocast(self, evaluating: bool = False):
        """Mixed precision; CPU evaluation stays fp32 like the exported model that serves."""
        if self.dtype is None or (evaluating and self.device.type == "cpu"):
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def lr(self) -> float:
        """The head's LR (the recipe's `lr`)."""
        return max(g["lr"] for g in self.optimizer.param_groups)


def open_dataset(path: str) -> PreparedDataset:
    dataset = PreparedDataset(path)
    check_trainable(dataset)
    return dataset


def load_resume_state(config: TrainConfig, dataset: PreparedDataset, fingerprint: str) -> dict:
    """The last checkpoint of RUN_DIR, after checking it belongs to this dataset."""
    state = load_checkpoint(Path(config.out) / "last.pt")
    if list(state["class_names"]) != dataset.classes:
        raise TrainError(
            f"cannot resume {config.out}: it was trained on classes {state['class_names']}, "
            f"{config.data} has {dataset.classes}"
        )
    if state.get("dataset_fingerprint") != fingerprint:
        raise TrainError(
            f"cannot resume {config.out}: {config.data} is not the dataset it was trained on "
            "(different images or split); start a new run with another --out"
        )
    return state


def resolve_config(
    config: TrainConfig, dataset: PreparedDataset, fingerprint: str
) -> tuple[TrainConfig, dict | None]:
    """On --resume the saved recipe wins (same epochs, LR...), only runtime options change."""
    run_dir = Path(config.out)
    has_run = (run_dir / "last.pt").is_file()
    if not config.resume:
        if has_run:
            raise RunDirError(
                f"--out {run_dir} already holds a training run (last.pt); pass --resume to "
                "continue it or choose another --out"
            )
        return config, None
    if not has_run:
        return config, None  # nothing finished yet: start from epoch 1
    state = load_resume_state(config, dataset, fingerprint)
    saved = TrainConfig.from_dict(state["config"])
    runtime = {name: getattr(config, name) for name in RUNTIME_FIELDS}
    return saved.replace(**runtime, epochs=resume_epochs(config, saved, state)), state


def resume_epochs(config: TrainConfig, saved: TrainConfig, state: dict) -> int:
    """`--resume --epochs N` continues the run to N epochs (a finished run too)."""
    if "epochs" not in config.explicit or config.epochs == saved.epochs:
        return saved.epochs
    done = int(state["epoch"])
    if config.epochs < done:
        raise TrainError(
            f"cannot resume {config.out} to --epochs {config.epochs}: it has "
            f"already trained {done} epochs"
        )
    if saved.scheduler == "onecycle":
        raise TrainError(
            f"cannot change the epochs of {config.out} on --resume: its onecycle "
            "schedule is fixed to the original count; start a new run"
        )
    return config.epochs


def setup(config: TrainConfig, ctx: DistContext, device: torch.device) -> Run:
    dataset = open_dataset(config.data)
    fingerprint = dataset_fingerprint(dataset)
    config, state = resolve_config(config, dataset, fingerprint)
    run_dir = Path(config.out)
    if ctx.is_main:
        ensure_writable(run_dir)
    barrier(ctx)
    cores = usable_cores()
    torch.set_num_threads(config.threads or max(1, cores // ctx.world_size))
    torch.manual_seed(config.seed)

    model = build_model(
        len(dataset.classes),
        width_mult=config.width_mult,
        pretrained=config.pretrained,
        weights=config.weights,
        dropout=config.dropout,
    )
    freeze_backbone(model, config.unfreeze_from, train_bn=config.frozen_bn == "train")
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(device=device)
    model.to(memory_format=memory_format)
    # Trainable BatchNorm in the frozen blocks needs their autograd graph: no no_grad prefix.
    k = 0 if config.frozen_bn == "train" else config.unfreeze_from
    prefix = feature_blocks(model)[:k]
    head: nn.Module = TrainableHead(model, k)
    if ctx.enabled:
        ids = [device.index] if device.type == "cuda" else None
        head = nn.parallel.DistributedDataParallel(head, device_ids=ids)

    generator = torch.Generator()
    train_loader, test_loader = make_loaders(config, dataset, ctx, generator, device)
    val_loader = None
    if dataset.validation_split == "val":
        val_loader = eval_loader(config, dataset, "val", ctx, loader_options(test_loader))
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, len(train_loader))
    weights = None
    if config.balance == "loss":
        counts = class_counts(dataset.split("train"), len(dataset.classes))
        weights = torch.tensor(inverse_frequency_weights(counts), device=device)
    criterion = nn.CrossEntropyLoss(weight=weights, label_smoothing=config.label_smoothing)
    dtype = amp_dtype(config, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    run = Run(
        config=config,
        ctx=ctx,
        device=device,
        run_dir=run_dir,
        dataset=dataset,
        fingerprint=fingerprint,
        model=model,
        prefix=prefix,
        head=head,
        optimizer=optimizer,
        scheduler=scheduler,
        criterion=criterion,
        train_loader=train_loader,
        test_loader=test_loader,
        generator=generator,
        dtype=dtype,
        scaler=scaler,
        val_loader=val_loader,
        ema=build_ema(model, config.ema, len(train_loader)),
    )
    if val_loader is None:
        run.warnings.append(NO_VAL_WARNING.format(data=config.data))
        if ctx.is_main and not config.quiet:
            print(f"warning: {run.warnings[-1]}", file=sys.stderr, flush=True)
    if state is not None:
        restore(run, state)
    run.prefix = training_prefix(run)  # after restore: from the weights the run really has
    return run


NO_VAL_WARNING = (
    "{data} has no validation split (a two-way zip from an older skyclass): best.pt and the "
    "LR schedule were chosen on the test split, so the test accuracy is optimistic. Prepare "
    "the data again (70:15:15 by default) for an honest figure"
)


def restore(run: Run, state: dict) -> None:
    run.model.load_state_dict(state.get("train_model", state["model"]))
    if run.ema is not None:
        run.ema.load_state_dict(state["ema"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    if run.scaler is not None and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    restore_rng(state["rng"])
    run.start_epoch = int(state["epoch"])
    metrics = state["metrics"]
    run.best_acc = float(metrics.get("best_val_acc", metrics.get("best_test_acc", -1.0)))
    run.best_epoch = int(state["metrics"].get("best_epoch", 0))
    if run.ctx.is_main:
        run.history = truncate_history(run.run_dir, run.start_epoch)


# --------------------------------------------------------------------------- one epoch


def _bar(run: Run, total: int, desc: str):
    if not (run.ctx.is_main and progress_enabled(run.config.quiet)):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", dynamic_ncols=True, leave=False)


def forward(run: Run, x: torch.Tensor) -> torch.Tensor:
    """Frozen prefix without an autograd graph, then the trainable head."""
    if len(run.prefix):
        with torch.no_grad():
            x = run.prefix(x)
    return run.head(x)


def training_prefix(run: Run) -> nn.Sequential:
    """The frozen prefix as the forward passes run it. With --frozen-bn frozen neither its
    weights nor its BatchNorm statistics can change, so a copy with every BatchNorm folded into
    its convolution computes the same features with less work: model steps 1.4x faster on 2 CPU
    cores at 224 px with features[:14] frozen (bench/results/epoch_breakdown_fold.json). The
    model itself, which checkpoints and export read, keeps its layers as built. "adapt" and
    "train" change the statistics every batch: their prefix runs as it is."""
    if run.config.frozen_bn != "frozen" or not len(run.prefix):
        return run.prefix
    fmt = torch.channels_last if run.config.channels_last else torch.contiguous_format
    return fold_batchnorm(run.prefix).to(memory_format=fmt)


def to_device(run: Run, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    fmt = torch.channels_last if run.config.channels_last else torch.contiguous_format
    x = x.to(run.device, non_blocking=True, memory_format=fmt)
    return x, y.to(run.device, non_blocking=True)


def reseed_epoch(run: Run, epoch: int) -> None:
    """Shuffling and augmentation depend only on (seed, epoch): resume replays them exactly."""
    run.generator.manual_seed(run.config.seed * 1_000_003 + epoch)
    sampler = run.train_loader.sampler
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)
    if run.train_loader.num_workers == 0:
        transform = cast(TrainTransform, cast(ZipImageDataset, run.train_loader.dataset).transform)
        transform.reseed(run.config.seed * 1_000_003 + epoch)


def train_one_epoch(run: Run, epoch: int) -> dict:
    run.head.train()
    set_train_mode(run.model, run.config.unfreeze_from, run.config.frozen_bn)
    reseed_epoch(run, epoch)
    params = trainable_parameters(run.model)
    c = run.config
    loss_sum = correct = seen = 0.0
    last_lr = run.lr()
    bar = run.bar = _bar(run, len(run.train_loader), f"epoch {epoch}/{c.epochs}")
    start = time.perf_counter()
    for x, y in run.train_loader:
        x, y = to_device(run, x, y)
        with run.autocast():
            logits = forward(run, x)
            loss = run.criterion(logits.float(), y)
        total = loss + penalty(params, c.l1, c.l2)
        if not torch.isfinite(total).item():
            raise TrainError(
                f"the loss became {total.item()} in epoch {epoch} at LR {run.lr():.3g}: "
                "training diverged; lower --lr (or the L1/L2 penalties) and start again"
            )
        run.optimizer.zero_grad(set_to_none=True)
        if run.scaler is not None:
            run.scaler.scale(total).backward()
            run.scaler.unscale_(run.optimizer)
        else:
            total.backward()
        if c.grad_clip:
            nn.utils.clip_grad_norm_(params, c.grad_clip)
        if run.scaler is not None:
            run.scaler.step(run.optimizer)
            run.scaler.update()
        else:
            run.optimizer.step()
        if run.ema is not None:
            run.ema.update_parameters(run.model)
        last_lr = run.lr()
        if not isinstance(run.scheduler, ReduceLROnPlateau):  # per-step schedules
            run.scheduler.step()
        n = y.numel()
        loss_sum += loss.item() * n
        correct += (logits.argmax(1) == y).sum().item()
        seen += n
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start
    average_buffers(run.ctx, run.model)
    loss_sum, correct, seen = all_reduce_sum(run.ctx, [loss_sum, correct, seen], run.device)
    return {
        "train_loss": loss_sum / max(seen, 1),
        "train_acc": correct / max(seen, 1),
        "train_images": int(seen),
        "images_per_s": seen / seconds if seconds else 0.0,
        "train_seconds": seconds,
        "lr": last_lr,
    }


@torch.no_grad()
def evaluate_split(run: Run, split: str = "val") -> dict:
    """`<split>_loss` (plain cross-entropy), `_acc` and `_recall` over all ranks.

    `val` is the validation split (the test split in an old two-way zip); `test` is scored
    only by `final_test`.
    """
    model = run.eval_model.eval()
    k = len(run.class_names)
    loss_sum = 0.0
    per_class = torch.zeros(2, k, dtype=torch.float64)  # [correct, total] per class
    loader = run.test_loader if split == "test" or run.val_loader is None else run.val_loader
    for x, y in loader:
        x, y = to_device(run, x, y)
        with run.autocast(evaluating=True):
            logits = model(x).float()
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        hit = (logits.argmax(1) == y).double().cpu()
        y_cpu = y.cpu()
        per_class[0].index_add_(0, y_cpu, hit)
        per_class[1].index_add_(0, y_cpu, torch.ones_like(hit))
    values = all_reduce_sum(run.ctx, [loss_sum, *per_class.flatten().tolist()], run.device)
    loss_sum, counts = values[0], torch.tensor(values[1:]).view(2, k)
    seen = counts[1].sum().item()
    recall = {
        name: (counts[0, i] / counts[1, i]).item() if counts[1, i] else None
        for i, name in enumerate(run.class_names)
    }
    return {
        f"{split}_loss": loss_sum / max(seen, 1),
        f"{split}_acc": counts[0].sum().item() / max(seen, 1),
        f"{split}_recall": recall,
        f"{split}_images": int(seen),
    }


# --------------------------------------------------------------------------- saving


def checkpoint_state(run: Run, epoch: int, metrics: dict) -> dict:
    """`model` holds the weights that were validated (the average with --ema); with --ema the
    trained weights and the average's state travel too, for --resume."""
    extra = {}
    if run.ema is not None:
        extra = {"train_model": run.model.state_dict(), "ema": run.ema.state_dict()}
    return {
        **extra,
        "model": run.eval_model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "epoch": epoch,
        "rng": capture_rng(),
        "config": run.config.to_dict(),
        "class_names": list(run.class_names),
        "preprocess": run.dataset.spec.to_dict(),
        "dataset_fingerprint": run.fingerprint,
        "metrics": metrics,
    }


def save_epoch(run: Run, epoch: int, row: dict, lr_dropped: bool) -> None:
    """history row, last.pt, best.pt (best validation accuracy) and, when due, the scripted
    model. Rank 0 only."""
    improved = row["val_acc"] > run.best_acc
    if improved:
        run.best_acc, run.best_epoch = row["val_acc"], epoch
    metrics = {
        **row,
        "validation_split": run.validation_split,
        "best_val_acc": run.best_acc,
        "best_epoch": run.best_epoch,
    }
    if not run.ctx.is_main:
        return
    state = checkpoint_state(run, epoch, metrics)
    if improved:
        save_checkpoint(run.run_dir / "best.pt", state)
    save_checkpoint(run.run_dir / "last.pt", state)
    append_history(run.run_dir, row)
    run.history.append(row)
    script_epoch = max(1, math.ceil(run.config.script_at * run.config.epochs))
    if lr_dropped or epoch == script_epoch:
        save_scripted(run.eval_model, run.run_dir / SCRIPTED_NAME)


def epochs_without_better_val_loss(history: list[dict]) -> int:
    """How many epochs have passed since the lowest validation loss so far."""
    losses = [row["val_loss"] for row in history]
    return len(losses) - 1 - losses.index(min(losses)) if losses else 0


def stopped_early(run: Run) -> bool:
    """--patience N: stop once N epochs in a row failed to lower the validation loss."""
    patience = run.config.patience
    stop = bool(patience) and epochs_without_better_val_loss(run.history) >= patience
    return broadcast_flag(run.ctx, stop, run.device)


def summary_line(row: dict, epochs: int) -> str:
    return (
        f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} "
        f"acc {row['train_acc']:.4f}  val loss {row['val_loss']:.4f} "
        f"acc {row['val_acc']:.4f}  lr {row['lr']:.3g}  {row['images_per_s']:.0f} img/s  "
        f"{row['epoch_seconds']:.1f} s"
    )


def run_epoch(run: Run, epoch: int) -> dict:
    start = time.perf_counter()
    lr_before = run.lr()
    train_metrics = train_one_epoch(run, epoch)
    val_metrics = evaluate_split(run, "val")
    if isinstance(run.scheduler, ReduceLROnPlateau):
        run.scheduler.step(val_metrics["val_loss"])
    lr_dropped = broadcast_flag(
        run.ctx, run.lr() < lr_before * 0.999 and not run.per_step_schedule, run.device
    )
    row = {
        "epoch": epoch,
        **train_metrics,
        **val_metrics,
        "epoch_seconds": time.perf_counter() - start,
    }
    save_epoch(run, epoch, row, lr_dropped)
    if run.ctx.is_main and not run.config.quiet:
        print(summary_line(row, run.config.epochs), file=sys.stderr, flush=True)
    return row


def final_test(run: Run) -> dict:
    """Score the test split once, with best.pt, and record it in best.pt and test.json.

    The last epoch's weights stay in last.pt (for --resume); the model is left holding the
    best weights. On every rank (the test split is sharded); rank 0 writes.
    """
    if not run.best_epoch:
        return {}
    barrier(run.ctx)
    best = load_checkpoint(run.run_dir / "best.pt")
    run.eval_model.load_state_dict(best["model"])
    metrics = {
        **evaluate_split(run, "test"),
        "epoch": run.best_epoch,
        "validation_split": run.validation_split,
        "warnings": list(run.warnings),
    }
    if run.ctx.is_main:
        best["metrics"] = {**best["metrics"], **metrics}
        save_checkpoint(
            run.run_dir / "best.pt",
            {k: v for k, v in best.items() if k not in ("format", "version")},
        )
        write_json(run.run_dir / TEST_METRICS_NAME, metrics)
        model = build_model(
            len(run.class_names),
            width_mult=run.config.width_mult,
            pretrained=False,
            dropout=run.config.dropout,
        )
        model.load_state_dict(best["model"])
        save_traced_cpu(model, run.run_dir / TRACED_NAME, run.dataset.spec.size)
    barrier(run.ctx)
    return metrics


def finish(run: Run, wall: float, images: int) -> dict:
    """Test score of best.pt, CPU traced TorchScript of it, and the summary `train()` returns."""
    test = final_test(run)
    last = run.history[-1] if run.history else {}
    return {
        "run_dir": str(run.run_dir),
        "epochs": run.config.epochs,
        "best_val_acc": run.best_acc,
        "best_epoch": run.best_epoch,
        "validation_split": run.validation_split,
        "warnings": list(run.warnings),
        "test_acc": test.get("test_acc"),
        "test_recall": test.get("test_recall"),
        "final_val_acc": last.get("val_acc"),
        "final_val_recall": last.get("val_recall"),
        "wall_seconds": wall,
        "images_per_s": images / wall if wall else 0.0,
        "class_names": list(run.class_names),
        "recipe": run.config.recipe,
        "resumed_from_epoch": run.start_epoch,
        "world_size": run.ctx.world_size,
        "model_sha256": state_digest(run.eval_model),
        "stopped_early": stopped_early(run),
    }


def state_digest(model: nn.Module) -> str:
    """sha256 of every weight and buffer: lets DDP ranks (and tests) prove they agree."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def train(config: TrainConfig) -> dict:
    """Train (or resume) a run; returns a summary with the best test accuracy and run dir.

    glibc keeps freed memory for the next batch (`skyclass.cpu_memory`; the CLI also turns
    on huge pages before torch loads): on a 2-core CPU, training steps ran 16-19% and test
    passes 50-70% faster (bench/results/cpu_memory.json).
    """
    cpu_memory.tune()
    with opencv_threads(1):
        return _train(config)


def interrupted_message(run_dir: Path, saved_epoch: int, epochs: int) -> str:
    """Which epoch is saved and the exact command that continues from it."""
    resume = f"skyclass train --out {shlex.quote(str(run_dir))} --resume"
    saved = (
        f"epoch {saved_epoch}/{epochs} is saved in {run_dir / 'last.pt'}"
        if saved_epoch
        else "no epoch had finished, so no weights are saved yet"
    )
    return f"training interrupted: {saved}; continue with: {resume}"


def _train(config: TrainConfig) -> dict:
    if config.resume and not config.data:  # config.json records the dataset
        config = config.replace(data=recorded_dataset(Path(config.out)))
    config.validate()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))  # torchrun's, before DDP starts
    device = pick_device(config.device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    ctx = init_distributed(device.type)
    try:
        run = setup(config, ctx, device)
        if run.ctx.is_main and run.start_epoch == 0:
            truncate_history(run.run_dir, 0)  # a run killed before its first epoch
        if run.ctx.is_main:  # (again on --resume: --epochs may have grown)
            write_config(
                run.run_dir,
                run.config.to_dict(),
                run.class_names,
                run.fingerprint,
                run.dataset.spec.to_dict(),
            )
        start, images = time.perf_counter(), 0
        for epoch in range(run.start_epoch + 1, run.config.epochs + 1):
            try:
                images += run_epoch(run, epoch)["train_images"]
                if stopped_early(run):
                    if run.ctx.is_main and not run.config.quiet:
                        print(
                            f"early stop after epoch {epoch}: no lower validation loss in "
                            f"{run.config.patience} epochs (--patience)",
                            file=sys.stderr,
                        )
                    break
            except KeyboardInterrupt as exc:
                if run.bar is not None:
                    run.bar.close()
                saved = run.history[-1]["epoch"] if run.history else run.start_epoch
                raise TrainInterrupted(
                    interrupted_message(run.run_dir, saved, run.config.epochs)
                ) from exc
        return finish(run, time.perf_counter() - start, images)
    finally:
        cleanup_distributed(ctx)
