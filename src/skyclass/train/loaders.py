"""DataLoaders over a prepared zip: augmented training batches, the validation and test
splits in the serving preprocessing, sharded over torchrun ranks, seeded per worker."""

from __future__ import annotations

from collections.abc import Sized
from typing import Any, cast

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler, Subset

from skyclass.cores import usable_cores
from skyclass.dataset_zip import PreparedDataset
from skyclass.errors import TrainError
from skyclass.torch_data import EvalTransform, TrainTransform, ZipImageDataset, balanced_sampler
from skyclass.train.config import TrainConfig
from skyclass.train.distributed import DistContext
from skyclass.train.runtime import CPU


def make_loaders(
    config: TrainConfig,
    dataset: PreparedDataset,
    ctx: DistContext,
    generator: torch.Generator,
    device: torch.device = CPU,
) -> tuple[DataLoader, DataLoader]:
    """The training loader and the test loader (see `eval_loader` for the validation one)."""
    train_ds = ZipImageDataset(dataset, "train", TrainTransform(config.augment, dataset.spec))
    feeds_gpu = device.type == "cuda"
    workers = (
        config.workers if config.workers >= 0 else default_workers(ctx, len(train_ds), feeds_gpu)
    )
    common: dict[str, Any] = {
        "num_workers": workers,
        "pin_memory": feeds_gpu,
        "worker_init_fn": seed_worker,
        "persistent_workers": False,
    }
    if workers:
        common["prefetch_factor"] = 4
    sampler: Sampler[int] | None = None
    if ctx.enabled and config.balance == "sampler":
        raise TrainError(
            "--balance sampler cannot be combined with torchrun's "
            "DistributedSampler; use --balance loss for multi-process training"
        )
    if ctx.enabled:
        sampler = DistributedSampler(
            train_ds,
            num_replicas=ctx.world_size,
            rank=ctx.rank,
            shuffle=True,
            seed=config.seed,
            drop_last=True,
        )
    elif config.balance == "sampler":
        balanced = balanced_sampler(train_ds.targets, len(dataset.classes), config.seed)
        balanced.generator = generator
        sampler = balanced
    # Keep the last short batch (small data sets would lose up to batch_size - 1 images an
    # epoch); drop it only when it would hold one image, which BatchNorm cannot train on.
    per_rank = len(cast(Sized, sampler)) if sampler is not None else len(train_ds)
    train_loader = DataLoader(
        train_ds,
        batch_size=config.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=per_rank % config.batch_size == 1,
        generator=generator,
        **common,
    )
    return train_loader, eval_loader(config, dataset, "test", ctx, common)


def eval_loader(
    config: TrainConfig,
    dataset: PreparedDataset,
    split: str,
    ctx: DistContext,
    common: dict | None = None,
) -> DataLoader:
    """A split in the serving preprocessing, sharded over the ranks, in a fixed order."""
    ds = ZipImageDataset(dataset, split, EvalTransform(dataset.spec))
    if common is None:
        common = {"num_workers": 0}
    shard = list(range(ctx.rank, len(ds), ctx.world_size))
    return DataLoader(Subset(ds, shard), batch_size=config.batch_size * 2, shuffle=False, **common)


def default_workers(ctx: DistContext, n_train: int, feeds_gpu: bool = False) -> int:
    """Decode in the background, but leave the cores to the maths on a small machine.

    Starting workers costs about a second per epoch, more than decoding a few hundred small
    images in the main process, so tiny datasets get none. When a GPU does the maths, the
    cores have nothing else to do: up to 8 workers (bench/loader_throughput.py on 16 cores:
    4 workers 810 images/s, 8 workers 1,381; the model steps alone ran at about 2,000).
    """
    cores = usable_cores() // ctx.world_size
    if n_train < 512:
        return 0
    if feeds_gpu:
        return max(1, min(8, cores - 1))
    return max(1, min(4, cores // 2)) if cores > 1 else 0


def seed_worker(worker_id: int) -> None:
    """Augmentations in a worker are seeded from torch's per-worker seed (reproducible)."""
    info = torch.utils.data.get_worker_info()
    if info is None:  # called outside a worker: nothing to seed
        return
    dataset = info.dataset.dataset if isinstance(info.dataset, Subset) else info.dataset
    reseed = getattr(getattr(dataset, "transform", None), "reseed", None)
    if reseed is not None:
        reseed(info.seed)


def loader_options(loader: DataLoader) -> dict:
    """The worker settings of `loader`, for another loader over the same zip."""
    options = {
        "num_workers": loader.num_workers,
        "pin_memory": loader.pin_memory,
        "worker_init_fn": loader.worker_init_fn,
        "persistent_workers": False,
    }
    if loader.num_workers:
        options["prefetch_factor"] = loader.prefetch_factor
    return options
