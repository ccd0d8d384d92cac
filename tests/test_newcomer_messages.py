"""A newcomer's wrong turns: each error names what was given, what it is and what to run next.

Every test checks the exit code, the message and that nothing was written.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skyclass.cli import main


def _error(capsys, argv: list[str]) -> str:
    """Run the CLI, expect exit code 2 and one clean `error:` message; return it."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    return err


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_train_on_a_photo_folder_points_to_prepare_and_run(capsys, eva4_dir, tmp_path):
    out = tmp_path / "r"
    err = _error(capsys, ["train", str(eva4_dir), "--out", str(out)])
    assert f"{eva4_dir} is a folder of class folders of photos" in err
    assert f"skyclass prepare {eva4_dir} --out DATASET.zip" in err
    assert f"skyclass run {eva4_dir} --out OUT" in err
    assert "does not exist" not in err
    assert not out.exists()


def test_export_of_a_photo_folder_never_advises_training_into_it(capsys, eva4_dir, tmp_path):
    out = tmp_path / "b"
    err = _error(capsys, ["export", str(eva4_dir), "--out", str(out)])
    assert "folder of class folders of photos, not a run folder" in err
    assert f"--out {eva4_dir}" not in err  # the old advice: train into the photos
    assert "skyclass prepare" in err and "skyclass run" in err
    assert not out.exists()


def test_evaluate_a_dataset_zip_says_it_takes_a_run(capsys, eva4_zip, tmp_path):
    data = shutil.copy(eva4_zip, tmp_path / "data.zip")
    err = _error(capsys, ["evaluate", str(data)])
    assert "hasRecord" not in err and "PyTorch" not in err
    assert f"{data} is a dataset zip written by `skyclass prepare`" in err
    assert "evaluate takes the run folder" in err
    assert f"skyclass evaluate RUN_DIR --data {data}" in err
    assert _files(tmp_path) == ["data.zip"]


def test_a_file_that_is_no_checkpoint_hides_torchs_message(capsys, eva4_zip, tmp_path):
    fake = shutil.copy(eva4_zip, tmp_path / "model.pt")
    err = _error(capsys, ["evaluate", str(fake)])
    assert "cannot be read as a PyTorch checkpoint" in err and "skyclass train" in err
    assert "hasRecord" not in err and "enhancement" not in err
    assert _files(tmp_path) == ["model.pt"]


@pytest.mark.parametrize("command", ["serve", "predict"])
def test_serve_or_predict_a_run_folder_points_to_export(capsys, tiny_run, eva4_images, command):
    before = _files(tiny_run)
    argv = [command, str(tiny_run)]
    if command == "predict":
        argv.append(str(eva4_images["Flying Birds"][0]))
    err = _error(capsys, argv)
    assert f"{tiny_run} is a training run folder" in err
    assert f"skyclass export {tiny_run} --out BUNDLE_DIR" in err
    assert f"skyclass {command} BUNDLE_DIR" in err
    assert _files(tiny_run) == before


def test_busy_port_suggests_another_or_port_0(capsys, bundle_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        err = _error(capsys, ["serve", str(bundle_dir), "--port", str(port), "--quiet"])
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "--port 0" in err and "--port N" in err


@pytest.mark.parametrize("out_name", ["folder", "data"])
def test_prepare_out_must_be_a_zip_name(capsys, eva4_dir, tmp_path, out_name):
    out = tmp_path / out_name
    if out_name == "folder":
        out.mkdir()
        expected = f"--out {out / 'dataset.zip'}"
    else:
        expected = f"--out {out}.zip"
    err = _error(capsys, ["prepare", str(eva4_dir), "--out", str(out)])
    assert expected in err
    assert _files(tmp_path) == (["folder"] if out_name == "folder" else [])


def test_train_without_a_dataset_says_what_to_give(capsys, tmp_path):
    err = _error(capsys, ["train", "--out", str(tmp_path / "r")])
    assert "skyclass train DATASET.zip" in err and "skyclass prepare" in err
    assert _files(tmp_path) == []


# Far more epochs than the test waits for: Ctrl-C always lands mid-run, however fast the machine.
EPOCHS = 200


def test_ctrl_c_says_what_is_saved_and_resume_needs_no_dataset(eva4_zip, tmp_path, capsys):
    """A real SIGINT during training, then `train --out R --resume` without DATASET.zip."""
    run = tmp_path / "r"
    tiny = [
        "--width-mult",
        "0.25",
        "--no-pretrained",
        "--unfreeze-from",
        "0",
        "--workers",
        "0",
        "--amp",
        "off",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skyclass",
            "train",
            str(eva4_zip),
            "--out",
            str(run),
            "--epochs",
            str(EPOCHS),
            *tiny,
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # A shell's background job inherits SIGINT ignored (POSIX); the user's Ctrl-C is the
        # default action, so give the child that whatever launched the tests.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 240
    while not (run / "history.jsonl").is_file() or not (run / "history.jsonl").read_text():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    line = next(ln for ln in err.splitlines() if "interrupted" in ln)
    saved = len((run / "history.jsonl").read_text().splitlines())
    assert saved < EPOCHS
    assert line == (
        f"training interrupted: epoch {saved}/{EPOCHS} is saved in "
        f"{run / 'last.pt'}; continue with: skyclass train --out {run} --resume"
    )
    # Resumed without DATASET.zip (config.json records it); one more epoch keeps the test short.
    assert (
        main(["train", "--out", str(run), "--resume", "--epochs", str(saved + 1), "--quiet"]) == 0
    )
    assert len((run / "history.jsonl").read_text().splitlines()) == saved + 1
