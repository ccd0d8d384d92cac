"""`kill -9` at random moments, several times in one short run, then `--resume`.

test_resume_ddp.py kills once, at a chosen moment (after epoch 1) and checks the resumed
weights are bit-identical; this one kills wherever the clock says (during start-up, training,
evaluation or a checkpoint write) and checks after every kill that what is on disk is
consistent: every checkpoint present loads with weights_only=True, history.jsonl holds epochs
1..k exactly once, with k the epoch of last.pt or one more (killed between history and
checkpoint), and no half-written file is visible under a real name.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from skyclass.checkpoint import load_checkpoint, read_history

from .tiny_cli import tiny_train_args

EPOCHS = 5  # each killed process runs <= 5 s (about one epoch): the final --resume has epochs left
KILLS = 4
ARGS = [*tiny_train_args(EPOCHS), "--resume"]


def assert_consistent(run: Path) -> int:
    """Check the run dir after a kill; returns the epoch of last.pt (0 when none yet)."""
    last = load_checkpoint(run / "last.pt")["epoch"] if (run / "last.pt").exists() else 0
    if (run / "best.pt").exists():
        best = load_checkpoint(run / "best.pt")
        assert 1 <= best["epoch"] <= max(last, 1) + 1  # best.pt is written before last.pt
    epochs = [r["epoch"] for r in read_history(run)]
    assert epochs == list(range(1, len(epochs) + 1)), epochs  # no duplicates, no gaps
    # history is appended after last.pt: at most one epoch behind it, never ahead
    assert last - 1 <= len(epochs) <= last, (epochs, last)
    return last


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(eva4_zip, tmp_path):
    rng = random.Random(1234)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "skyclass", "train", str(eva4_zip), "--out", str(run), *ARGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed_at = []
    for _ in range(KILLS):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            proc.wait(timeout=rng.uniform(2.5, 5.0))  # start-up takes ~2.5 s
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_at.append(assert_consistent(run))
        else:
            assert proc.returncode == 0, proc.stderr.read().decode()
            break
        finally:
            proc.stderr.close()
    assert killed_at, "the run finished before any kill: nothing was tested"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert assert_consistent(run) == EPOCHS
    assert [r["epoch"] for r in read_history(run)] == list(range(1, EPOCHS + 1))
    best = load_checkpoint(run / "best.pt")
    assert best["epoch"] == best["metrics"]["best_epoch"]
    print(f"killed {len(killed_at)} times, last.pt epochs at the kills: {killed_at}")
