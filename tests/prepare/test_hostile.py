"""`prepare` under attack: unreadable and vanishing files, swapped files, hostile zips."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
import zipfile
from pathlib import Path

import pytest
from PIL import Image

import skyclass.prepare as prepare_module
from skyclass.errors import PrepareError
from skyclass.prepare import PrepareConfig, prepare
from skyclass.prepare.process import phash64, process_source

from .fixtures import KEPT, assert_accounted, assert_split_sound, read_dataset, reasons_by_path

NOBODY = 65534


def _two_classes(root: Path, birds: list[Path], drones: list[Path], n: int = 4) -> None:
    for label, photos in (("bird", birds), ("drone", drones)):
        (root / label).mkdir(parents=True)
        for i, photo in enumerate(photos[:n]):
            shutil.copyfile(photo, root / label / f"{label}_{i}.jpg")


def _prepare_as(uid: int, config: PrepareConfig) -> int:
    """Run prepare in a forked child that dropped to `uid` (permissions do not bind root).

    A fork, not a new interpreter: this venv's python lives under /root, which `nobody`
    cannot execute. Everything prepare imports lazily is imported before the fork.
    """
    phash64(Image.new("L", (64, 64)))  # any lazy import happens while /root is readable
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            if os.geteuid() == 0:
                os.setgid(uid)
                os.setuid(uid)
            prepare(config)
            code = 0
        except BaseException:  # noqa: BLE001 - a forked child must reach os._exit
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_unreadable_file_and_folder_are_reported(birds, drones):
    base = Path(tempfile.mkdtemp(prefix="skyclass-perm-"))  # pytest's tmp is root-only (0700)
    try:
        base.chmod(0o777)
        raw = base / "raw"
        _two_classes(raw, birds, drones)
        (raw / "bird" / "bird_0.jpg").chmod(0o000)
        locked = raw / "drone" / "locked"
        locked.mkdir()
        shutil.copyfile(drones[5], locked / "inside.jpg")
        locked.chmod(0o000)
        for d in (raw, raw / "bird", raw / "drone"):
            d.chmod(0o755)
        out = base / "out.zip"
        config = PrepareConfig(raw=raw, out=out, size=32, workers=1, quiet=True)
        assert _prepare_as(NOBODY, config) == 0
        report, rows, _ = read_dataset(out)
        got = reasons_by_path(report, rows)
        assert got["bird/bird_0.jpg"] == "unreadable"
        assert got["drone/locked"] == "unreadable"
        assert got["bird/bird_1.jpg"] == KEPT
        assert_accounted(raw, report, rows)
    finally:
        for dirpath, dirnames, _ in os.walk(base):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o755)
        shutil.rmtree(base)


def test_files_that_vanish_or_change_after_the_scan(tmp_path, birds, drones, monkeypatch):
    raw = tmp_path / "raw"
    _two_classes(raw, birds, drones)
    real_scan = prepare_module.scan

    def scan_then_tamper(path):
        result = real_scan(path)
        (raw / "bird" / "bird_0.jpg").unlink()  # vanished
        fifo = raw / "bird" / "bird_1.jpg"  # swapped for a FIFO: reading it must not hang
        fifo.unlink()
        os.mkfifo(fifo)
        folder = raw / "drone" / "drone_0.jpg"  # swapped for a folder
        folder.unlink()
        folder.mkdir()
        (raw / "drone" / "drone_1.jpg").write_bytes(b"<html>now an error page</html>")
        return result

    monkeypatch.setattr(prepare_module, "scan", scan_then_tamper)
    report = prepare(PrepareConfig(raw=raw, out=tmp_path / "o.zip", size=32, workers=1, quiet=True))
    got = {s["path"]: s["reason"] for s in report["skipped"]}
    assert got == {
        "bird/bird_0.jpg": "vanished",
        "bird/bird_1.jpg": "not_a_file",
        "drone/drone_0.jpg": "not_a_file",
        "drone/drone_1.jpg": "not_an_image",
    }
    assert report["totals"]["kept"] == 4


def _zip_of(folder: Path, out: Path, prefix: str = "") -> None:
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())


def test_zip_of_a_folder_like_thumbnaildata(tmp_path, birds, drones):
    raw = tmp_path / "ThumbnailData"
    _two_classes(raw, birds, drones)
    (raw / "SOURCES.csv").write_text("a,b\n")
    archive = tmp_path / "ThumbnailData.zip"
    _zip_of(raw, archive, prefix="ThumbnailData/")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("__MACOSX/ThumbnailData/bird/._bird_0.jpg", b"\x00\x05\x16\x07")
        zf.writestr("ThumbnailData/drone/.DS_Store", b"Bud1")
    out = tmp_path / "out.zip"
    report = prepare(PrepareConfig(raw=archive, out=out, size=32, workers=2, quiet=True))
    assert report["class_names"] == ["bird", "drone"]
    got = {s["path"]: s["reason"] for s in report["skipped"]}
    assert got == {
        "ThumbnailData/SOURCES.csv": "not_in_class_folder",
        "__MACOSX/ThumbnailData/bird/._bird_0.jpg": "junk",
        "ThumbnailData/drone/.DS_Store": "hidden",
    }
    _, rows, zf = read_dataset(out)
    assert report["totals"]["kept"] == len(rows) == 8
    assert report["totals"]["found"] == 11
    assert_split_sound(report, rows, zf)


def test_zip_slip_entries_are_rejected_and_nothing_is_extracted(tmp_path, birds, drones):
    archive = tmp_path / "evil.zip"
    jpeg = birds[0].read_bytes()
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(3):
            zf.writestr(f"bird/b{i}.jpg", birds[i].read_bytes())
            zf.writestr(f"drone/d{i}.jpg", drones[i].read_bytes())
        for name in (
            "../escape.jpg",
            "bird/../../escape2.jpg",
            "/etc/bird/abs.jpg",
            "C:/bird/win.jpg",
            "\\\\server\\bird\\unc.jpg",
        ):
            zf.writestr(zipfile.ZipInfo(name), jpeg)
    workdir = tmp_path / "work"
    workdir.mkdir()
    report = prepare(
        PrepareConfig(raw=archive, out=workdir / "o.zip", size=32, workers=1, quiet=True)
    )
    unsafe = {s["path"] for s in report["skipped"] if s["reason"] == "unsafe_path"}
    assert len(unsafe) == 5
    assert report["totals"]["kept"] == 6
    assert sorted(p.name for p in tmp_path.rglob("*escape*")) == []
    assert sorted(p.name for p in workdir.iterdir()) == ["o.zip"]


def test_zip_bomb_entry_is_refused_with_bounded_memory(tmp_path, birds, drones):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i in range(2):
            zf.writestr(f"bird/b{i}.jpg", birds[i].read_bytes())
            zf.writestr(f"drone/d{i}.jpg", drones[i].read_bytes())
        chunk = b"\x00" * (1 << 20)
        with zf.open("bird/bomb.jpg", "w", force_zip64=True) as member:
            for _ in range(512):  # 512 MB of zeros, about 0.5 MB compressed
                member.write(chunk)
    assert archive.stat().st_size < 2_000_000
    out = tmp_path / "o.zip"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from skyclass.cli import main\nfrom prepare.fixtures import peak_rss_kb\n"
            "code = main(['prepare', "
            f"{str(archive)!r}, '--out', {str(out)!r}, '--workers', '1', '--size', '32', "
            "'--max-file-mb', '8', '--quiet'])\nprint(peak_rss_kb())\nraise SystemExit(code)",
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[-1]) < 400 * 1024  # KB: far below the 512 MB it inflates to
    report, rows, _ = read_dataset(out)
    bomb = next(s for s in report["skipped"] if s["path"] == "bird/bomb.jpg")
    assert bomb["reason"] == "file_too_large"
    assert len(rows) == 4


def test_identical_files_with_dedupe_off_get_distinct_zip_names(tmp_path, birds, drones):
    raw = tmp_path / "raw"
    _two_classes(raw, birds, drones, n=2)
    for sub in ("a", "b"):
        (raw / "bird" / sub).mkdir()
        shutil.copyfile(birds[5], raw / "bird" / sub / "same.jpg")
    out = tmp_path / "o.zip"
    report = prepare(
        PrepareConfig(
            raw=raw, out=out, size=32, workers=1, quiet=True, dedupe="off", val_fraction=0.0
        )
    )
    _, rows, zf = read_dataset(out)
    assert len({r["path"] for r in rows}) == len(rows) == report["totals"]["kept"] == 6
    assert len(zf.namelist()) == len(set(zf.namelist())) == 8
    assert_accounted(raw, report, rows)


def _spooled(folder: Path) -> int:
    """Images the running prepare has encoded so far."""
    return sum(len(os.listdir(p)) for p in folder.glob(".skyclass-spool-*") if p.is_dir())


def test_kill_9_mid_run_leaves_no_zip_and_the_next_run_cleans_up(tmp_path, bird_drone_dir):
    raw = tmp_path / "raw"
    for label in ("bird", "drone"):
        (raw / label).mkdir(parents=True)
        for path in sorted((bird_drone_dir / label).glob("*.jpg"))[:150]:
            os.symlink(path, raw / label / path.name)
    out_dir = tmp_path / "out"
    out = out_dir / "d.zip"
    code = (
        "from skyclass.cli import main; raise SystemExit(main(['prepare', "
        f"{str(raw)!r}, '--out', {str(out)!r}, '--workers', '2', '--quiet']))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _spooled(out_dir) < 20:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its workers, mid-way
    proc.wait()
    assert not out.exists()
    leftovers = [p.name for p in out_dir.iterdir()]
    assert leftovers and all(name.startswith(f".skyclass-spool-{proc.pid}-") for name in leftovers)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (out_dir / f".d.zip.{dead.pid}-abc123.partial").write_bytes(b"PK\x03\x04 half")
    other = f".other.zip.{dead.pid}-x.partial"  # a dead run's, but for another output name
    (out_dir / other).write_bytes(b"not ours")
    report = prepare(PrepareConfig(raw=raw, out=out, size=32, workers=2, quiet=True))
    assert report["totals"]["kept"] == read_dataset(out)[0]["totals"]["kept"] > 250
    assert sorted(p.name for p in out_dir.iterdir()) == [other, "d.zip"]


def test_class_folder_with_invalid_utf8_and_newline(tmp_path, birds, drones):
    raw = tmp_path / "raw"
    _two_classes(raw, birds, drones, n=3)
    weird = os.path.join(os.fsencode(raw), b"Winged\nDr\xffones")
    os.mkdir(weird)
    for i, photo in enumerate(drones[6:9]):
        shutil.copyfile(photo, os.path.join(weird, b"w%d.jpg" % i))
    out = tmp_path / "o.zip"
    report = prepare(PrepareConfig(raw=raw, out=out, size=32, workers=1, quiet=True))
    shown = "Winged\\nDr\\xffones"
    assert report["class_names"] == ["Winged\\nDr\\xffones", "bird", "drone"]
    assert report["classes"][shown]["kept"] == 3
    (raw / "bird" / "junk.jpg").write_bytes(b"")  # a skip inside the odd class shows its name
    os.symlink("nowhere", os.path.join(weird, b"gone.jpg"))
    report = prepare(PrepareConfig(raw=raw, out=out, size=32, workers=1, quiet=True))
    assert {s["class"] for s in report["skipped"]} == {"bird", shown}
    _, rows, zf = read_dataset(out)
    assert {r["class"] for r in rows} == set(report["class_names"])
    assert all(name.isprintable() for name in zf.namelist())
    assert_accounted(raw, report, rows)


def _die_on_third(job, config, spool):
    """A worker that dies like the OOM killer would take it (no exception, no cleanup)."""
    if job[0] == 2:
        os._exit(137)
    return process_source(job, config, spool)


def test_a_worker_killed_mid_run_is_a_clear_error(tmp_path, birds, drones, monkeypatch):
    raw = tmp_path / "raw"
    _two_classes(raw, birds, drones)
    monkeypatch.setattr(prepare_module, "process_source", _die_on_third)
    out_dir = tmp_path / "out"
    with pytest.raises(PrepareError, match="worker process died"):
        prepare(PrepareConfig(raw=raw, out=out_dir / "o.zip", size=32, workers=2, quiet=True))
    assert list(out_dir.iterdir()) == []


def test_dot_slash_zip_entries_are_photos_not_hidden_files(tmp_path, birds, drones):
    raw = tmp_path / "raw"
    _two_classes(raw, birds, drones, n=3)
    archive = tmp_path / "dotslash.zip"
    _zip_of(raw, archive, prefix="./")  # what `cd raw && zip -r ../x.zip ./` writes
    report = prepare(
        PrepareConfig(raw=archive, out=tmp_path / "o.zip", size=32, workers=1, quiet=True)
    )
    assert report["class_names"] == ["bird", "drone"]
    assert report["totals"]["kept"] == 6 and report["skipped"] == []


def test_duplicated_zip_entry_names_are_reported_not_lost(tmp_path, birds, drones):
    """Two entries named bird/b.jpg: unzip keeps the last, the first is listed with a reason."""
    archive = tmp_path / "dup.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns "Duplicate name": that is the point
        with zipfile.ZipFile(archive, "w") as zf:
            for i, photo in enumerate(birds[:3]):
                zf.write(photo, f"bird/b{i}.jpg")
            zf.write(birds[3], "bird/b0.jpg")  # a different photo under a taken name
            zf.write(birds[4], "./bird/b1.jpg")  # the same name once "./" is dropped
            for i, photo in enumerate(drones[:3]):
                zf.write(photo, f"drone/d{i}.jpg")
    report = prepare(
        PrepareConfig(raw=archive, out=tmp_path / "o.zip", size=32, workers=1, quiet=True)
    )
    skipped = {s["path"]: s for s in report["skipped"]}
    assert set(skipped) == {"bird/b0.jpg", "bird/b1.jpg"}
    assert all(s["reason"] == "duplicate_zip_entry" for s in skipped.values())
    assert "2 entries named 'bird/b0.jpg'" in skipped["bird/b0.jpg"]["detail"]
    assert report["totals"]["kept"] == 6 and report["totals"]["found"] == 8
    assert "conflict" not in str(report["skipped"])


@pytest.mark.parametrize("command", ["prepare", "evaluate"])
def test_a_fifo_as_input_is_refused_at_once(tmp_path, command, capsys, request):
    from skyclass.cli import main

    fifo = tmp_path / "input.zip"
    os.mkfifo(fifo)
    args = (
        ["prepare", str(fifo), "--out", str(tmp_path / "o.zip")]
        if command == "prepare"
        else ["evaluate", str(request.getfixturevalue("tiny_run")), "--data", str(fifo)]
    )
    start = time.monotonic()
    done = {}
    worker = threading.Thread(target=lambda: done.update(code=main(args)), daemon=True)
    worker.start()
    worker.join(20)
    assert done, f"{command} hung on a FIFO"
    assert done["code"] == 2 and time.monotonic() - start < 20
    assert "FIFO" in capsys.readouterr().err
