"""The torch Dataset over a prepared zip, its transforms and the balanced sampler."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from torch.utils.data import DataLoader

from skyclass.augment import AugmentConfig
from skyclass.dataset_zip import PreparedDataset
from skyclass.images import preprocess
from skyclass.torch_data import (
    EvalTransform,
    TrainTransform,
    ZipImageDataset,
    balanced_sampler,
)


def test_eval_transform_is_the_serving_preprocessing(eva4_zip):
    ds = PreparedDataset(eva4_zip)
    entry = ds.split("test")[0]
    data = ds.read(entry.path)
    x, target = ZipImageDataset(ds, "test", EvalTransform(ds.spec))[0]
    assert target == entry.target
    assert np.array_equal(x.numpy(), preprocess(data, ds.spec))
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32


def test_train_transform_augments_reproducibly_and_normalises(eva4_zip):
    ds = PreparedDataset(eva4_zip)
    data = ds.read(ds.split("train")[0].path)
    strong = AugmentConfig(
        rotate_limit=30, rgb_shift=40, rgb_shift_p=1.0, cutout_p=1.0, crop_scale_min=0.5
    )
    first, second = TrainTransform(strong, ds.spec), TrainTransform(strong, ds.spec)
    first.reseed(7)
    second.reseed(7)
    a, b = first(data), second(data)
    assert np.array_equal(a, b)  # same seed, same augmentation
    assert a.shape == (3, 64, 64) and a.dtype == np.float32
    assert not np.array_equal(a, EvalTransform(ds.spec)(data))  # it did augment
    plain = TrainTransform(
        AugmentConfig(rotate_limit=0, hflip=0, rgb_shift=0, cutout_frac=0, crop_scale_min=None),
        ds.spec,
    )
    assert np.allclose(plain(data), EvalTransform(ds.spec)(data))  # same normalisation


def test_dataloader_workers_read_the_zip(eva4_zip):
    ds = PreparedDataset(eva4_zip)
    ds.read(ds.entries[0].path)  # an open handle in the parent must not leak into workers
    loader = DataLoader(
        ZipImageDataset(ds, "test", EvalTransform(ds.spec)), batch_size=16, num_workers=2
    )
    targets = torch.cat([y for _, y in loader]).tolist()
    assert targets == [e.target for e in ds.split("test")]


class OpenCVThreads(torch.utils.data.Dataset):
    """Reports, from inside the worker, how many threads OpenCV would use."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        import cv2

        return cv2.getNumThreads()


def test_training_workers_give_opencv_one_thread_each():
    import cv2

    from skyclass.train.runtime import opencv_threads

    image = np.zeros((512, 512, 3), np.uint8)
    cv2.GaussianBlur(image, (15, 15), 0)  # the parent's pool is running: forking must not hang
    before = cv2.getNumThreads()
    with opencv_threads(1):
        loader = DataLoader(OpenCVThreads(), batch_size=1, num_workers=1)
        assert [int(n) for n in loader] == [1, 1]
    assert cv2.getNumThreads() == before  # restored after training


def test_default_workers_use_the_cores_a_gpu_leaves_idle(monkeypatch):
    from skyclass.train.distributed import DistContext
    from skyclass.train.loaders import default_workers

    monkeypatch.setattr("skyclass.train.loaders.usable_cores", lambda: 16)
    assert default_workers(DistContext(), 2000) == 4  # the CPU also runs the model
    assert default_workers(DistContext(), 2000, feeds_gpu=True) == 8
    assert default_workers(DistContext(0, 2), 2000, feeds_gpu=True) == 7  # 8 cores a rank
    assert default_workers(DistContext(), 100, feeds_gpu=True) == 0  # tiny: no start-up cost
    monkeypatch.setattr("skyclass.train.loaders.usable_cores", lambda: 2)
    assert default_workers(DistContext(), 2000) == 1


def test_usable_cores_is_the_cpu_set_not_the_host(monkeypatch):
    from skyclass.cores import usable_cores

    monkeypatch.setattr("os.cpu_count", lambda: 64)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert usable_cores() == 3


def test_balanced_sampler_draws_classes_equally():
    targets = [0] * 90 + [1] * 10
    sampler = balanced_sampler(targets, 2, seed=0)
    drawn = Counter(targets[i] for _ in range(20) for i in sampler)
    assert len(list(sampler)) == 100
    assert abs(drawn[0] / sum(drawn.values()) - 0.5) < 0.05
