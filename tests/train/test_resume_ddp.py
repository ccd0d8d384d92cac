"""Interrupted runs (a real kill -9) resume to the same result; DDP ranks agree."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

from skyclass.checkpoint import load_checkpoint, read_history
from skyclass.dataset_zip import PreparedDataset
from skyclass.train import TrainConfig, train

from .tiny_cli import tiny_train_args

EPOCHS = 3
ARGS = tiny_train_args(EPOCHS)


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _kill_during_epoch_2(cmd: list[str], run: Path) -> None:
    """Start training, wait until epoch 1 is logged, then SIGKILL it (mid epoch 2)."""
    proc = subprocess.Popen(cmd, env=_env(), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not read_history(run) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_kill_9_then_resume_ends_where_an_uninterrupted_run_ends(eva4_zip, tmp_path):
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "skyclass", "train", str(eva4_zip), "--out", str(run), *ARGS]
    _kill_during_epoch_2(cmd, run)
    stopped_at = load_checkpoint(run / "last.pt")["epoch"]
    assert stopped_at < EPOCHS
    # A run killed between writing a history row and its checkpoint leaves an extra row:
    with open(run / "history.jsonl", "a") as fh:
        fh.write(json.dumps({"epoch": stopped_at + 1, "val_acc": 0.0}) + "\n")
    done = subprocess.run([*cmd, "--resume"], env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = read_history(run)
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))
    final = load_checkpoint(run / "last.pt")
    assert final["epoch"] == EPOCHS

    # Seeded CPU training is deterministic, so resuming replays exactly what was lost.
    straight = tmp_path / "straight"
    train(
        TrainConfig(
            data=str(eva4_zip),
            out=str(straight),
            epochs=EPOCHS,
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
    reference = load_checkpoint(straight / "last.pt")["model"]
    for name, tensor in reference.items():
        assert torch.equal(tensor, final["model"][name]), name
    assert [r["train_loss"] for r in read_history(straight)] == [r["train_loss"] for r in rows]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RANK_SCRIPT = """
import json, os, sys
from skyclass.train import TrainConfig, train
summary = train(TrainConfig(data=sys.argv[1], out=sys.argv[2], epochs=2, width_mult=0.25,
                            pretrained=False, lr=0.05, unfreeze_from=12, batch_size=8,
                            workers=0, seed=0, quiet=True, device="cpu"))
with open(os.path.join(sys.argv[3], f"rank{os.environ['RANK']}.json"), "w") as fh:
    json.dump(summary, fh)
"""


def test_ddp_two_cpu_processes_agree(eva4_zip, tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        str(script),
        str(eva4_zip),
        str(run),
        str(tmp_path),
    ]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world_size"] == 2
    assert ranks[0]["model_sha256"] == ranks[1]["model_sha256"]
    assert ranks[0]["best_val_acc"] == ranks[1]["best_val_acc"]
    assert ranks[0]["test_acc"] == ranks[1]["test_acc"] is not None
    rows = read_history(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    # Metrics are reduced over both ranks: each epoch covers the whole (sharded) train split.
    per_rank = len(PreparedDataset(eva4_zip).split("train")) // 2
    # The last short batch is kept unless it would hold a single image.
    assert rows[0]["train_images"] == 2 * (per_rank - (1 if per_rank % 8 == 1 else 0))
    last = load_checkpoint(run / "last.pt")
    assert last["metrics"]["val_acc"] == rows[-1]["val_acc"]
