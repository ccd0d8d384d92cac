"""A full disk while a checkpoint is written: the previous checkpoint survives, nothing is lost.

Two faults on one real run (MobileNetV2 x0.25, 64 px, 2 epochs):
1. in-process: the first checkpoint write of epoch 2 gets OSError(ENOSPC) after 4 kB, as a
   filling disk does; train() fails with that error, epoch 1's files are intact.
2. a real OS limit: `skyclass train --resume` in a child process under RLIMIT_FSIZE (the kernel
   refuses writes past 64 kB with EFBIG); the CLI says the disk is full, no traceback, exit 1,
   epoch 1's files still intact.
Then a plain `--resume` finishes the run with a complete history.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import skyclass.checkpoint as checkpoint
from skyclass.checkpoint import load_checkpoint, read_history
from skyclass.train import TrainConfig, train

from .tiny_cli import tiny_train_args

ARGS = tiny_train_args(2)
FSIZE_LIMIT = 64 * 1024  # above config.json / history.jsonl, far below a checkpoint


class FillingDisk:
    """A file object that accepts `room` bytes, then fails the way a full disk does."""

    def __init__(self, fh, room: int) -> None:
        self.fh, self.room = fh, room

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.room:
            self.fh.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.fh.write(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)


def _snapshot(run: Path) -> dict[str, dict]:
    """The checkpoints of a run dir: epoch and weights, loaded safely."""
    return {
        name: load_checkpoint(run / name)
        for name in ("best.pt", "last.pt")
        if (run / name).exists()
    }


def _assert_epoch_1_intact(run: Path, before: dict[str, dict]) -> None:
    assert [r["epoch"] for r in read_history(run)] == [1]
    after = _snapshot(run)
    assert set(after) == set(before) and "last.pt" in after
    for name, state in after.items():
        assert state["epoch"] == 1
        for key, tensor in before[name]["model"].items():
            assert torch.equal(tensor, state["model"][key]), (name, key)
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")], "temp files left"


def _limit_file_size() -> None:  # runs in the child before exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a SIGXFSZ kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))


@pytest.mark.slow
def test_full_disk_during_a_checkpoint_keeps_the_previous_one(eva4_zip, tmp_path, monkeypatch):
    run = tmp_path / "run"
    real_write = checkpoint.atomic_write
    epoch_1: dict[str, dict] = {}

    def disk_fills_in_epoch_2(path, write, **kwargs):
        path = Path(path)
        if path.suffix == ".pt" and read_history(run):  # epoch 1 is logged: this is epoch 2
            epoch_1.update(epoch_1 or _snapshot(run))
            return real_write(path, lambda fh: write(FillingDisk(fh, 4096)), **kwargs)
        return real_write(path, write, **kwargs)

    monkeypatch.setattr(checkpoint, "atomic_write", disk_fills_in_epoch_2)
    with pytest.raises(OSError) as exc:
        train(
            TrainConfig(
                data=str(eva4_zip),
                out=str(run),
                epochs=2,
                width_mult=0.25,
                pretrained=False,
                lr=0.05,
                unfreeze_from=0,
                batch_size=8,
                workers=0,
                threads=1,
                seed=0,
                amp="off",
                quiet=True,
            )
        )
    assert exc.value.errno == errno.ENOSPC and exc.value.filename.endswith(".pt")
    _assert_epoch_1_intact(run, epoch_1)
    monkeypatch.undo()

    # The same fault from the kernel, through the CLI: a clear message, no traceback.
    cmd = [
        sys.executable,
        "-m",
        "skyclass",
        "train",
        str(eva4_zip),
        "--out",
        str(run),
        *ARGS,
        "--resume",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size
    )
    assert full.returncode == 1, full.stderr
    assert "out of disk space" in full.stderr and "Traceback" not in full.stderr
    assert "File too large" in full.stderr and ".pt" in full.stderr
    _assert_epoch_1_intact(run, epoch_1)

    # Space again: resume finishes the run, each epoch once.
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [r["epoch"] for r in read_history(run)] == [1, 2]
    assert load_checkpoint(run / "last.pt")["epoch"] == 2
