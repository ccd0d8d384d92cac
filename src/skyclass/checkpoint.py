"""The run directory contract shared by `train` (writer) and `evaluate`/`export` (readers).

RUN_DIR/
  config.json      the TrainConfig of the run, class names, dataset path
  history.jsonl    one JSON object per finished epoch (train_* and val_* metrics)
  last.pt          checkpoint after the latest finished epoch (every epoch)
  best.pt          checkpoint of the epoch with the best validation accuracy; its metrics
                   gain test_acc/test_loss/test_recall when training ends: the test split,
                   scored once with these weights
  test.json        those test metrics (and the validation split used, with any warning)

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
`torch.load(weights_only=True)`: nothing in it can run code. It is written to a temporary file
and renamed, so a crash or a full disk never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from skyclass.errors import CheckpointError
from skyclass.fileio import atomic_write
from skyclass.images import PreprocessSpec
from skyclass.model import build_model

CHECKPOINT_FORMAT = "skyclass-checkpoint"
CHECKPOINT_VERSION = 1
HISTORY_NAME = "history.jsonl"
TEST_METRICS_NAME = "test.json"
CONFIG_NAME = "config.json"
CHECKPOINT_NAMES = ("best", "last")


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomically save a checkpoint dict (see module docstring for what it holds)."""
    state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    # Serialise in memory, then write: torch.save streaming into a file on a full disk fails
    # with a cryptic RuntimeError ("unexpected pos"), a plain write with OSError(ENOSPC).
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(Path(path), lambda fh: fh.write(buffer.getbuffer()))


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint safely (weights_only=True) and check it is one of ours."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's own text asks to "report an enhancement request"
        raise CheckpointError(
            f"{path} cannot be read as a PyTorch checkpoint ({type(exc).__name__}): it is "
            "damaged or another kind of file; give a run folder written by `skyclass train`"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a skyclass checkpoint")
    return state


def resolve_checkpoint(run: str | Path, which: str = "best") -> Path:
    """A run dir + 'best'/'last' -> checkpoint path; a .pt path is returned as it is."""
    run = Path(run)
    if run.is_file():
        return run
    if which not in CHECKPOINT_NAMES:
        raise CheckpointError(f"--checkpoint must be one of {CHECKPOINT_NAMES}, got {which!r}")
    if not run.is_dir():
        raise CheckpointError(f"run directory {run} does not exist")
    path = run / f"{which}.pt"
    if not path.is_file():
        raise CheckpointError(
            f"{run} has no {which}.pt: the run has not finished an epoch yet "
            f"(continue it with `skyclass train --out {run} --resume`)"
        )
    return path


@dataclass
class TrainedModel:
    """A trained network ready for inference (CPU, eval mode) and what describes it."""

    model: nn.Module
    class_names: list[str]
    spec: PreprocessSpec
    config: dict
    checkpoint: dict
    path: Path


def model_from_checkpoint(state: dict) -> nn.Module:
    """Rebuild the architecture recorded in the checkpoint and load its weights."""
    config = state.get("config", {})
    model = build_model(
        num_classes=len(state["class_names"]),
        width_mult=float(config.get("width_mult", 1.0)),
        pretrained=False,
        dropout=float(config.get("dropout", 0.2)),
    )
    model.load_state_dict(state["model"])
    return model.eval()


def load_trained_model(run: str | Path, which: str = "best") -> TrainedModel:
    """What `evaluate` and `export` start from."""
    path = resolve_checkpoint(run, which)
    state = load_checkpoint(path)
    return TrainedModel(
        model=model_from_checkpoint(state),
        class_names=list(state["class_names"]),
        spec=PreprocessSpec.from_dict(state["preprocess"]),
        config=dict(state.get("config", {})),
        checkpoint=state,
        path=path,
    )


def read_history(run: str | Path) -> list[dict]:
    """The epochs recorded in RUN_DIR/history.jsonl (a torn last line is ignored)."""
    path = Path(run) / HISTORY_NAME
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
