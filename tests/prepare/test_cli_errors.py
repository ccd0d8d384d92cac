"""`skyclass prepare` from the command line: help, summary, quietness, and clear errors that
leave nothing behind."""

from __future__ import annotations

import fcntl
import os
import pty
import resource
import shutil
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from skyclass.cli import main
from skyclass.errors import PrepareError
from skyclass.prepare import PrepareConfig, prepare

from .fixtures import HTML_PAGE, no_leftovers, read_dataset


@pytest.fixture()
def small_raw(tmp_path: Path, birds, drones) -> Path:
    raw = tmp_path / "raw"
    for label, photos in (("bird", birds), ("drone", drones)):
        (raw / label).mkdir(parents=True)
        for i, photo in enumerate(photos[:3]):
            shutil.copyfile(photo, raw / label / f"{i}.jpg")
    return raw


def _fail(args: list[str], capsys) -> str:
    """Run the CLI, expect exit 2 with one clear line on stderr (no traceback)."""
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["prepare", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--out",
        "--size",
        "--resize",
        "--val-fraction",
        "--seed",
        "--dedupe",
        "--near-threshold",
        "--min-side",
        "--workers",
        "--format",
        "--quality",
        "--max-pixels",
        "--max-file-mb",
        "--quiet",
        "RAW_DIR",
    ):
        assert option in text, option


def test_summary_is_printed_and_nothing_on_stderr_without_a_tty(small_raw, tmp_path, capsys):
    out = tmp_path / "d.zip"
    assert (
        main(["prepare", str(small_raw), "--out", str(out), "--size", "32", "--workers", "1"]) == 0
    )
    captured = capsys.readouterr()
    assert captured.err == ""  # pytest's stderr is not a TTY: no progress bar
    lines = captured.out.splitlines()
    assert lines[0].split() == [
        "class",
        "found",
        "kept",
        "train",
        "val",
        "test",
        "skipped",
        "dup",
        "near",
        "conflict",
    ]
    assert lines[1].split()[:6] == ["bird", "3", "3", "1", "1", "1"]
    assert lines[-1].startswith(f"wrote {out} (6 images")
    assert no_leftovers(tmp_path) == []


def test_quiet_prints_nothing(small_raw, tmp_path, capsys):
    assert (
        main(
            [
                "prepare",
                str(small_raw),
                "--out",
                str(tmp_path / "d.zip"),
                "--quiet",
                "--size",
                "32",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    assert capsys.readouterr() == ("", "")


def _run_on_pty(args: list[str]) -> str:
    """Run the CLI with stderr on a pseudo-terminal, return what the terminal received."""
    leader, follower = pty.openpty()
    # A fresh pty is 0 columns wide; tqdm draws nothing there. Make it a normal terminal.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    code = f"from skyclass.cli import main; raise SystemExit(main({args!r}))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=follower
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_on_a_tty_unless_quiet(small_raw, tmp_path):
    base = ["prepare", str(small_raw), "--size", "32", "--workers", "1"]
    shown = _run_on_pty([*base, "--out", str(tmp_path / "a.zip")])
    assert "prepare:" in shown and "0/6" in shown and "img/s" in shown
    assert _run_on_pty([*base, "--out", str(tmp_path / "b.zip"), "--quiet"]) == ""


def test_missing_input(tmp_path, capsys):
    out = tmp_path / "d.zip"
    err = _fail(["prepare", str(tmp_path / "nope"), "--out", str(out)], capsys)
    assert "does not exist" in err
    assert list(tmp_path.iterdir()) == []


def test_no_class_folders(tmp_path, capsys, birds):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copyfile(birds[0], raw / "loose.jpg")
    err = _fail(["prepare", str(raw), "--out", str(tmp_path / "d.zip")], capsys)
    assert "no class folders" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_a_class_without_usable_images_is_an_error_and_writes_nothing(small_raw, tmp_path, capsys):
    bad = small_raw / "Winged Drones"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(HTML_PAGE)
    (bad / "b.jpg").write_bytes(b"")
    out_dir = tmp_path / "out"
    err = _fail(
        ["prepare", str(small_raw), "--out", str(out_dir / "d.zip"), "--workers", "2"], capsys
    )
    assert "'Winged Drones'" in err and "not_an_image 1" in err and "empty 1" in err
    assert list(out_dir.iterdir()) == []  # no zip, no .partial, no spool folder


def test_one_class_is_not_a_classification_problem(small_raw, tmp_path):
    shutil.rmtree(small_raw / "drone")
    with pytest.raises(PrepareError, match="at least 2 class"):
        prepare(PrepareConfig(raw=small_raw, out=tmp_path / "d.zip", quiet=True, workers=1))
    assert not (tmp_path / "d.zip").exists()


def test_an_existing_output_survives_a_failed_run(small_raw, tmp_path, capsys):
    out = tmp_path / "d.zip"
    assert main(["prepare", str(small_raw), "--out", str(out), "--quiet", "--size", "32"]) == 0
    before = out.read_bytes()
    for f in (small_raw / "drone").iterdir():
        f.write_bytes(b"broken")
    _fail(["prepare", str(small_raw), "--out", str(out), "--quiet"], capsys)
    assert out.read_bytes() == before
    assert no_leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--size", "8"], "--size"),
        (["--val-fraction", "1.5"], "--val-fraction"),
        (["--workers", "0"], "--workers"),
        (["--quality", "0"], "--quality"),
        (["--near-threshold", "40"], "--near-threshold"),
    ],
)
def test_bad_option_values(small_raw, tmp_path, capsys, option, message):
    err = _fail(["prepare", str(small_raw), "--out", str(tmp_path / "d.zip"), *option], capsys)
    assert message in err


def test_output_that_is_a_folder_or_the_input(small_raw, tmp_path, capsys):
    err = _fail(["prepare", str(small_raw), "--out", str(tmp_path)], capsys)
    assert "is a folder" in err
    (tmp_path / "file.txt").write_text("x")
    err = _fail(["prepare", str(small_raw), "--out", str(tmp_path / "file.txt" / "d.zip")], capsys)
    assert "cannot create output folder" in err
    archive = tmp_path / "raw.zip"
    shutil.make_archive(str(tmp_path / "raw"), "zip", small_raw)
    before = archive.read_bytes()
    err = _fail(["prepare", str(archive), "--out", str(archive)], capsys)
    assert "input itself" in err
    assert archive.read_bytes() == before


def test_input_that_is_neither_folder_nor_zip(tmp_path, capsys):
    text = tmp_path / "photos.txt"
    text.write_text("not a folder")
    assert "neither a folder nor a zip" in _fail(
        ["prepare", str(text), "--out", str(tmp_path / "d.zip")], capsys
    )


def test_eva4_with_its_stray_sources_csv(eva4_dir, tmp_path):
    out = tmp_path / "eva4.zip"
    report = prepare(PrepareConfig(raw=eva4_dir, out=out, size=32, workers=2, quiet=True))
    report_again, rows, _ = read_dataset(out)
    assert report_again["totals"] == report["totals"]
    assert {
        "path": "SOURCES.csv",
        "class": None,
        "reason": "not_in_class_folder",
        "detail": "file directly in the input folder",
    } in report["skipped"]
    assert report["class_names"] == [
        "Flying Birds",
        "Large QuadCopters",
        "Small QuadCopters",
        "Winged Drones",
    ]
    assert report["totals"]["found"] == 175
    assert {r["class"] for r in rows if r["split"] == "test"} == set(report["class_names"])


def _limit_file_size() -> None:
    """In the child: files may not grow past 300 KB (EFBIG instead of SIGXFSZ), like a full
    disk arriving in the middle of the run."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))


def test_disk_full_while_writing_is_a_clear_error_and_leaves_nothing(small_raw, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code = (
        "from skyclass.cli import main; raise SystemExit(main(['prepare', "
        f"{str(small_raw)!r}, '--out', {str(out_dir / 'd.zip')!r}, '--size', '224', "
        "'--format', 'png', '--workers', '1', '--quiet']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: cannot write") and "Traceback" not in proc.stderr
    assert list(out_dir.iterdir()) == []
