"""What a run directory holds besides the checkpoints themselves: config.json, history.jsonl,
RNG states, the dataset fingerprint that `--resume` checks, and the two TorchScript forms.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from skyclass.checkpoint import CONFIG_NAME, HISTORY_NAME, read_history
from skyclass.dataset_zip import PreparedDataset
from skyclass.errors import RunDirError
from skyclass.fileio import atomic_write

SCRIPTED_NAME = "model_scripted.pt"
TRACED_NAME = "model_traced_cpu.pt"


def dataset_fingerprint(dataset: PreparedDataset) -> str:
    """Hash of (path, class, split, sha256) of every entry: same images + same split."""
    digest = hashlib.sha256()
    for e in sorted(dataset.entries, key=lambda e: e.path):
        digest.update(f"{e.path}\t{e.label}\t{e.split}\t{e.sha256}\n".encode())
    return digest.hexdigest()


def ensure_writable(run_dir: Path) -> None:
    """Create RUN_DIR and prove we can write into it *before* spending time on training."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"--out {run_dir} is not writable: {exc.strerror or exc}") from exc


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"
    atomic_write(path, lambda fh: fh.write(text))


def recorded_dataset(run_dir: Path) -> str:
    """The dataset zip RUN_DIR/config.json records, for `--resume` without DATASET.zip.

    A relative path is tried from the working directory, the run dir and its parent (the run
    may have been started from elsewhere).
    """
    path = Path(run_dir) / CONFIG_NAME
    try:
        recorded = json.loads(path.read_text()).get("dataset")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if not isinstance(recorded, str) or not recorded:
        raise RunDirError(
            f"--resume without DATASET.zip: {path} does not record the dataset (is {run_dir} "
            f"a training run?); give it: `skyclass train DATASET.zip --out {run_dir} --resume`"
        )
    for candidate in (Path(recorded), Path(run_dir) / recorded, Path(run_dir).parent / recorded):
        if candidate.is_file():
            return str(candidate)
    raise RunDirError(
        f"{run_dir} was trained on {recorded}, which does not exist here; give its new place: "
        f"`skyclass train DATASET.zip --out {run_dir} --resume`"
    )


def write_config(
    run_dir: Path, config: dict, class_names: list[str], fingerprint: str, spec: dict
) -> None:
    write_json(
        run_dir / CONFIG_NAME,
        {
            "config": config,
            "class_names": class_names,
            "dataset": config["data"],
            "dataset_fingerprint": fingerprint,
            "preprocess": spec,
        },
    )


def append_history(run_dir: Path, row: dict) -> None:
    with open(run_dir / HISTORY_NAME, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, sort_keys=True) + "\n")
        fh.flush()


def truncate_history(run_dir: Path, last_epoch: int) -> list[dict]:
    """Keep only epochs <= the checkpoint's: a killed run may have logged one more."""
    rows = [r for r in read_history(run_dir) if int(r.get("epoch", 0)) <= last_epoch]
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()
    atomic_write(run_dir / HISTORY_NAME, lambda fh: fh.write(text))
    return rows


def capture_rng() -> dict:
    """All RNG states as tensors/lists, so the checkpoint still loads with weights_only=True."""
    np_state = cast(tuple, np.random.get_state())  # the legacy tuple form
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _cpu_eval_copy(model: nn.Module) -> nn.Module:
    m = copy.deepcopy(model).cpu().eval()
    return m.to(memory_format=torch.contiguous_format)


def save_scripted(model: nn.Module, path: Path) -> None:
    """The reference's scripted model (re-trainable, device-independent TorchScript)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(_cpu_eval_copy(model))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        atomic_write(path, lambda fh: torch.jit.save(scripted, fh))


def save_traced_cpu(model: nn.Module, path: Path, size: int) -> None:
    """The reference's CPU traced model (what `export` builds on)."""
    m = _cpu_eval_copy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(m, torch.zeros(1, 3, size, size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        atomic_write(path, lambda fh: torch.jit.save(traced, fh))
