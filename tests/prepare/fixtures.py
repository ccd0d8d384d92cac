"""Messy raw folders built in code from real photos, and the checks every prepare run must pass.

Each builder returns the reason `prepare` must give for the file it wrote ("kept" for a file
that must reach the manifest), so a test can compare expectation and report file by file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import struct
import zipfile
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from skyclass.textsafe import display_text

KEPT = "kept"


def real_photo(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int = 30000) -> bytes:
    """A valid 1-bit grey PNG of side x side pixels, all black: a few hundred KB on disk,
    `side`^2 pixels once decoded (900 Mpx, about 1 GB as 8-bit RGB, for 30000)."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    parts = [comp.compress(row * 1000) for _ in range(side // 1000)]
    parts.append(comp.compress(row * (side % 1000)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def cmyk_jpeg(img: Image.Image) -> bytes:
    return encode(img.convert("CMYK"), "JPEG", quality=92)


def palette_png_with_transparency(img: Image.Image) -> bytes:
    """Palette PNG whose colour at (0, 0) is the transparent index: decodes to white there."""
    pal = img.quantize(colors=32)
    return encode(pal, "PNG", transparency=pal.getpixel((0, 0)))


def la_png(img: Image.Image) -> bytes:
    """Grey + alpha, left half fully transparent."""
    grey = img.convert("L")
    alpha = Image.new("L", grey.size, 255)
    alpha.paste(0, (0, 0, grey.width // 2, grey.height))
    return encode(Image.merge("LA", (grey, alpha)), "PNG")


def grey16_png(img: Image.Image) -> bytes:
    """16-bit grey PNG using the full 0..65535 range (a naive convert would clip it white)."""
    arr = np.asarray(img.convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(arr.astype("<u2")), "PNG")


def exif_rotated_jpeg(img: Image.Image, orientation: int = 6) -> bytes:
    """A landscape JPEG whose EXIF says 'rotate 90 degrees clockwise to display'."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=95, exif=exif)


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


HTML_PAGE = b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body></body></html>"
TEXT_NOTE = b"photo credits: see the website\n"


def _write(root: Path, rel: str | bytes, data: bytes) -> None:
    path = os.path.join(os.fsencode(root), os.fsencode(rel))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def build_messy_folder(root: Path, birds: list[Path], drones: list[Path]) -> dict[str, str]:
    """Seed `root` with every bad-file kind of issue 2; return {shown path: expected reason}.

    Needs 20 bird and 6 drone photos (real JPEGs), each used for one file so that no two
    files are near copies unless meant to be. Paths are as `prepare` shows them.
    """
    expect: dict[str, str] = {}
    b = [real_photo(p) for p in birds[:20]]

    def put(rel: str | bytes, data: bytes, reason: str) -> None:
        _write(root, rel, data)
        expect[display_text(os.fsdecode(rel))] = reason

    for i, path in enumerate(birds[:6]):
        put(f"bird/ok_{i}.jpg", path.read_bytes(), KEPT)
    put("bird/nested/deeper/ok_6.jpg", birds[6].read_bytes(), KEPT)
    put("bird/ok_0_copy.jpg", birds[0].read_bytes(), "duplicate")
    put("bird/rot90_of_ok_1.jpg", encode(b[1].transpose(Image.Transpose.ROTATE_90), "JPEG"), KEPT)
    put(
        "bird/flip_of_ok_2.png",
        encode(b[2].transpose(Image.Transpose.FLIP_LEFT_RIGHT), "PNG"),
        KEPT,
    )
    put("bird/cmyk.jpg", cmyk_jpeg(b[7]), KEPT)
    put("bird/palette.png", palette_png_with_transparency(b[8]), KEPT)
    put("bird/la.png", la_png(b[9]), KEPT)
    put("bird/grey16.png", grey16_png(b[10]), KEPT)
    put("bird/exif_rotated.jpg", exif_rotated_jpeg(b[11].crop((0, 80, 416, 336))), KEPT)
    original = b[12].resize((6000, 4000), Image.Resampling.BICUBIC)
    put("bird/original_6000x4000.jpg", encode(original, "JPEG", quality=85), KEPT)
    put("bird/thumbnail_100px.jpg", encode(original.resize((100, 67)), "JPEG", quality=90), KEPT)
    put("bird/bomb.png", png_bomb(30000), "too_large")
    jpeg = birds[13].read_bytes()
    put("bird/truncated.jpg", truncated(jpeg), "corrupt")
    put("bird/truncated.png", truncated(encode(b[13], "PNG"), 0.6), "corrupt")
    put("bird/page.jpg", HTML_PAGE, "not_an_image")
    put("bird/notes.jpg", TEXT_NOTE, "not_an_image")
    put("bird/empty.jpg", b"", "empty")
    put("bird/tiny.png", encode(b[13].resize((12, 12)), "PNG"), "too_small")
    put("bird/.hidden.jpg", jpeg, "hidden")
    put("bird/as_webp.webp", encode(b[14], "WEBP"), KEPT)
    put("bird/as_gif.gif", encode(b[15], "GIF"), KEPT)
    put("bird/as_bmp.bmp", encode(b[16], "BMP"), KEPT)
    put("bird/as_tiff.tif", encode(b[17], "TIFF"), KEPT)
    put("bird/dir_named_like.jpg/inside.jpg", birds[18].read_bytes(), KEPT)
    put(b"bird/bad\nname\xff\xfe.jpg", birds[19].read_bytes(), KEPT)

    os.mkfifo(root / "bird" / "fifo.jpg")
    expect["bird/fifo.jpg"] = "not_a_file"
    os.symlink(".", root / "bird" / "loop")  # a folder symlink loop: bird/loop/loop/...
    expect["bird/loop"] = "symlink"
    os.symlink("self_loop.jpg", root / "bird" / "self_loop.jpg")
    expect["bird/self_loop.jpg"] = "broken_symlink"

    for i, path in enumerate(drones[:6]):
        put(f"drone/d_{i}.jpg", path.read_bytes(), KEPT)
    # The same photo filed under both classes: both copies excluded, both paths reported.
    put("drone/mislabelled.jpg", birds[3].read_bytes(), "label_conflict")
    expect["bird/ok_3.jpg"] = "label_conflict"

    put("SOURCES.csv", b"file,url\nok_0.jpg,https://example.invalid\n", "not_in_class_folder")
    put(".DS_Store", b"\x00\x00\x00\x01Bud1", "hidden")
    put("__MACOSX/bird/._ok_0.jpg", b"\x00\x05\x16\x07", "junk")
    expect.pop("__MACOSX/bird/._ok_0.jpg")
    expect["__MACOSX"] = "junk"
    put(".git/config", b"[core]\n", "hidden")
    expect.pop(".git/config")
    expect[".git"] = "hidden"
    return expect


# ---------------------------------------------------------------------------------- checks


def read_dataset(path: Path) -> tuple[dict, list[dict], zipfile.ZipFile]:
    zf = zipfile.ZipFile(path)
    report = json.loads(zf.read("report.json"))
    rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode("utf-8"))))
    return report, rows, zf


def walk_inputs(root: Path) -> set[str]:
    """Every file, folder symlink and special file under root, as `prepare` shows paths."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        rel_dir = os.path.relpath(dirpath, os.fsencode(root))
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            found.add(display_text(os.fsdecode(rel)))
    return found


def assert_accounted(raw: Path, report: dict, rows: list[dict]) -> None:
    """Every input appears exactly once, as kept or skipped (or inside a skipped folder)."""
    kept = [r["source"] for r in rows]
    skipped = [s["path"] for s in report["skipped"]]
    assert len(kept) == len(set(kept)), "a file is kept twice"
    assert len(skipped) == len(set(skipped)), "a file is skipped twice"
    assert not set(kept) & set(skipped), "a file is both kept and skipped"
    listed = set(kept) | set(skipped)
    for path in walk_inputs(raw):
        parents = [path.rsplit("/", k)[0] for k in range(1, path.count("/") + 1)]
        assert path in listed or any(p in skipped for p in parents), f"{path!r} is lost"
    totals = report["totals"]
    assert totals["found"] == totals["kept"] + totals["skipped"] == len(kept) + len(skipped)
    assert totals["kept"] == totals["train"] + totals["val"] + totals["test"]
    for name, c in report["classes"].items():
        assert c["found"] == c["kept"] + sum(c["skipped"].values()), name
        assert c["kept"] == sum(1 for r in rows if r["class"] == name)


def assert_split_sound(report: dict, rows: list[dict], zf: zipfile.ZipFile) -> None:
    """Groups never straddle a split; no sha256 is on two sides; each class is split near
    --val-fraction / --test-fraction; files exist."""
    sides: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        assert r["path"].startswith(f"{r['split']}/{r['class']}/")
        if r["group"]:
            sides[r["group"]].add(r["split"])
    assert all(len(s) == 1 for s in sides.values()), "a near-duplicate group straddles the split"
    sha_sides: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        sha_sides[r["sha256"]].add(r["split"])
    assert all(len(s) == 1 for s in sha_sides.values()), "one photo on two sides"
    group_sizes = Counter(r["group"] for r in rows if r["group"])
    biggest = max(group_sizes.values(), default=1)
    for split in ("val", "test"):
        fraction = report["config"][f"{split}_fraction"]
        for name, c in report["classes"].items():
            assert abs(c[split] - round(c["kept"] * fraction)) <= biggest + 1, (split, name)
    names = set(zf.namelist())
    assert {r["path"] for r in rows} <= names
    assert len(names) == len(rows) + 2  # images + manifest.csv + report.json


def reasons_by_path(report: dict, rows: list[dict]) -> dict[str, str]:
    got = {s["path"]: s["reason"] for s in report["skipped"]}
    got.update({r["source"]: KEPT for r in rows})
    return got


def no_leftovers(folder: Path) -> list[str]:
    """Temporary files or spool folders prepare may have left next to its output."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def peak_rss_kb() -> int:
    """This process's own peak resident memory in KB (Linux VmHWM, reset at exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")
