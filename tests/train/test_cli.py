"""`skyclass train` on bad input: a clear message, exit code 2, nothing lost."""

from __future__ import annotations

import shutil
import zipfile

import pytest

from skyclass.cli import main

TINY = [
    "--epochs",
    "1",
    "--width-mult",
    "0.25",
    "--no-pretrained",
    "--workers",
    "0",
    "--amp",
    "off",
    "--quiet",
]


def _fails(capsys, argv: list[str], match: str) -> None:
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert match in err, err


def _copy_zip(src, dst, change) -> None:
    """Copy a dataset zip, passing (name, bytes) through `change` (None drops the member)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)


def test_not_a_prepared_zip(capsys, tmp_path):
    plain = tmp_path / "photos.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("bird/a.jpg", b"x")
    _fails(capsys, [str(plain), "--out", str(tmp_path / "r"), *TINY], "skyclass prepare")
    text = tmp_path / "notes.zip"
    text.write_text("hello")
    _fails(capsys, [str(text), "--out", str(tmp_path / "r"), *TINY], "not a zip file")
    assert not (tmp_path / "r").exists()


def test_class_without_training_images(capsys, eva4_zip, tmp_path):
    def drop_train_birds(name: str, data: bytes):
        if name == "manifest.csv":
            lines = data.decode().splitlines(keepends=True)
            return "".join(ln for ln in lines if not ln.startswith("train/Flying Birds")).encode()
        return data

    broken = tmp_path / "broken.zip"
    _copy_zip(eva4_zip, broken, drop_train_birds)
    _fails(
        capsys,
        [str(broken), "--out", str(tmp_path / "r"), *TINY],
        "'Flying Birds' have no training images",
    )


def test_unwritable_out(capsys, eva4_zip, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    _fails(capsys, [str(eva4_zip), "--out", str(blocker / "run"), *TINY], "is not writable")
    assert blocker.read_text() == "a file, not a folder"


def test_existing_run_is_not_overwritten_and_resume_checks_the_dataset(
    capsys, eva4_zip, tiny_run, tmp_path
):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    _fails(capsys, [str(eva4_zip), "--out", str(run), *TINY], "--resume")

    def rename_class(name: str, data: bytes):
        if name in ("manifest.csv", "report.json"):
            return data.replace(b"Winged Drones", b"Fixed Wings")
        return data

    other_classes = tmp_path / "other.zip"
    _copy_zip(eva4_zip, other_classes, rename_class)
    _fails(
        capsys,
        [str(other_classes), "--out", str(run), "--resume", *TINY],
        "it was trained on classes",
    )

    def drop_one_test_image(name: str, data: bytes):
        if name == "manifest.csv":
            lines = data.decode().splitlines(keepends=True)
            first_test = next(i for i, ln in enumerate(lines) if ln.startswith("test/"))
            return "".join(lines[:first_test] + lines[first_test + 1 :]).encode()
        return data

    other_split = tmp_path / "other_split.zip"
    _copy_zip(eva4_zip, other_split, drop_one_test_image)
    _fails(
        capsys,
        [str(other_split), "--out", str(run), "--resume", *TINY],
        "is not the dataset it was trained on",
    )
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing touched


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--unfreeze-from", "40"], "--unfreeze-from must be in 0..19"),
        (["--width-mult", "0.5"], "ImageNet weights exist only for --width-mult 1.0"),
    ],
)
def test_bad_options(capsys, eva4_zip, tmp_path, argv, match):
    args = [str(eva4_zip), "--out", str(tmp_path / "r"), "--workers", "0", "--quiet", *argv]
    if "--width-mult" not in argv:
        args += ["--width-mult", "0.25", "--no-pretrained"]
    _fails(capsys, args, match)


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for option in (
        "--recipe",
        "--epochs",
        "--lr",
        "--batch-size",
        "--unfreeze-from",
        "--width-mult",
        "--no-pretrained",
        "--weights",
        "--balance",
        "--device",
        "--workers",
        "--seed",
        "--resume",
        "--quiet",
    ):
        assert option in out
