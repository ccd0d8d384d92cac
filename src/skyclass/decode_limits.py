"""The decode budget: which formats are decoded at all, and what one decode may cost.

Every caller of `skyclass.images` (the serving handler, `prepare`, `evaluate`, `predict`,
`export`'s parity images) goes through these checks, all made from the file's header before a
single pixel is decoded:

- an allow-list of formats (`ALLOWED_FORMATS`), handed to `Image.open(formats=...)` so no other
  Pillow plugin (EPS -> Ghostscript, ICO/ICNS containers, PSD, ...) ever parses an upload;
- a byte budget (`DEFAULT_MAX_DECODE_BYTES`) on the peak memory of the decode and of the
  conversion to 8-bit RGB, from the size, mode, bit depth and decoder of the image: a pixel
  count alone let a 16-bit or float TIFF, or an RGBA PNG, use 4x the memory of an RGB photo;
- a bound on decode work: at most `MAX_JPEG_SCANS` scans in a JPEG (a progressive JPEG with
  thousands of scans decodes for minutes) and at most `MAX_SCAN_PIXELS` scan-pixels in all,
  counted by walking the JPEG markers; only the first frame of a GIF/WebP/PNG/TIFF is decoded;
- an optional wall-clock deadline and cancel check, polled between the decoder's reads.
Pillow and the stdlib only (the Lambda package holds this module).
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image

# The formats skyclass decodes (Pillow format ids), decided once: what cameras, phones and
# browsers produce. HEIF (iPhone photos) only where pillow-heif is installed (`skyclass[heic]`).
BASE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
HEIF_FORMAT = "HEIF"

# 6000x4000 phone originals (24 Mpx) must pass; a 30000x30000 bomb (900 Mpx) must not.
DEFAULT_MAX_PIXELS = 64_000_000
# Peak bytes one decode may take (decoded pixels + decoder buffers + the 8-bit RGB copy).
# 64 Mpx baseline RGB JPEGs (256 MB) and rotated 24 Mpx progressive phone photos (~200 MB)
# pass; a 64 Mpx 16-bit/float TIFF or RGBA PNG (>= 450 MB) does not. With the handler's own
# ~150 MB that keeps one request under ~600 MB of a 1,536 MB Lambda.
DEFAULT_MAX_DECODE_BYTES = 384 * 1024 * 1024
# The largest image file any stage reads (prepare's --max-file-mb default, evaluate's folders).
MAX_FILE_BYTES = 100 * 1024 * 1024
# Scans in one JPEG: libjpeg's default progressive script has 10, mozjpeg's up to ~20.
MAX_JPEG_SCANS = 100
# Scans x pixels: each progressive scan walks the whole component, so work grows with both.
# 24 Mpx x 20 scans passes; a 416x416 JPEG with thousands of scans does not.
MAX_SCAN_PIXELS = 1_000_000_000
# TIFF compressions that decode in one pass (none, CCITT, LZW, JPEG, deflate, packbits).
TIFF_COMPRESSIONS = frozenset({1, 2, 3, 4, 5, 7, 8, 32773, 32946})

# Bytes per pixel Pillow stores for a mode (unlisted modes: 4, its widest).
_STORAGE = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
RGB_BYTES = 4  # Pillow stores RGB as 32 bits per pixel
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # the first marker after entropy data
_FF = re.compile(rb"\xff")


def allowed_formats() -> tuple[str, ...]:
    """The allow-list: BASE_FORMATS, plus HEIF when its plugin is registered."""
    Image.init()
    return BASE_FORMATS + ((HEIF_FORMAT,) if HEIF_FORMAT in Image.OPEN else ())


class LimitExceeded(Exception):
    """A budget was exceeded; `reason` is images.ImageError's code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DecodeLimits:
    """What one decode may cost. `deadline` is a time.monotonic() value."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_DECODE_BYTES
    max_jpeg_scans: int = MAX_JPEG_SCANS
    max_scan_pixels: int = MAX_SCAN_PIXELS
    deadline: float | None = None
    cancelled: Callable[[], bool] | None = None

    def check_time(self) -> None:
        """Raise when the deadline passed or the caller gave up (polled between reads)."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise LimitExceeded("too_slow", "the decode ran past its deadline")
        if self.cancelled is not None and self.cancelled():
            raise LimitExceeded("cancelled", "the client went away")


class _Polled:
    """A file object whose every read first polls the limits' deadline and cancel check."""

    limits: DecodeLimits

    def read(self, size: int | None = -1) -> bytes:
        self.limits.check_time()
        return super().read(size)  # type: ignore[misc]


class PolledBytes(_Polled, io.BytesIO):
    pass


class PolledFile(_Polled, io.BufferedReader):
    pass


def open_source(source: bytes | str | Path | BinaryIO, limits: DecodeLimits) -> BinaryIO:
    """A polled file object for bytes or a path; other file objects are used as they are.

    A path must be a regular file: a FIFO or a device would block the reader for ever.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        fp: Any = PolledBytes(bytes(source))
    elif isinstance(source, (str, Path)):
        mode = os.stat(source).st_mode  # FileNotFoundError etc. are the caller's to report
        if not stat.S_ISREG(mode):
            raise LimitExceeded("unreadable", "not a regular file")
        fp = PolledFile(io.FileIO(source, "rb"))
    else:
        return source
    fp.limits = limits
    return fp


# --- the byte budget ---------------------------------------------------------------------------


def storage_bytes(mode: str) -> int:
    """Bytes per pixel of a decoded image of this Pillow mode."""
    return _STORAGE.get(mode, 4)


def _decoder_bytes(img: Image.Image) -> float:
    """Bytes per pixel the decoder holds besides the image (coefficients, strips, RGBA)."""
    fmt = img.format
    if fmt in ("JPEG", "MPO") and img.info.get("progressive"):
        layers = getattr(img, "layer", None) or []
        hmax = max((h for _, h, _, _ in layers), default=1) or 1
        vmax = max((v for _, _, v, _ in layers), default=1) or 1
        samples = sum(h * v / (hmax * vmax) for _, h, v, _ in layers) or 3
        return 2.0 * samples  # a 16-bit coefficient per sample, for the whole image
    if fmt == "TIFF":
        tags = getattr(img, "tag_v2", {})
        bits = tags.get(258, (8,))
        bits_total = sum(bits) if isinstance(bits, tuple) else int(bits) * int(tags.get(277, 1))
        return bits_total / 8.0  # one strip or tile may hold the whole raw image
    if fmt in ("WEBP", HEIF_FORMAT):
        return 8.0 if fmt == HEIF_FORMAT else 4.0  # the library's own RGB(A) buffer
    return 0.0


def _conversion_bytes(mode: str) -> int:
    """Bytes per pixel `images.to_rgb` adds: the RGB result (plus an 8-bit grey one)."""
    if mode == "RGB":
        return 0
    if mode.startswith("I;16") or mode in ("I", "F"):
        return 1 + RGB_BYTES
    return RGB_BYTES


def peak_bytes(img: Image.Image, rotated: bool) -> int:
    """Estimated peak bytes to decode `img` and convert it to an upright 8-bit RGB image."""
    pixels = img.width * img.height
    stored = storage_bytes(img.mode)
    per_pixel = max(
        stored + _decoder_bytes(img),
        stored + _conversion_bytes(img.mode),
        2 * RGB_BYTES if rotated else 0,
    )
    return int(pixels * per_pixel)


def check_budget(img: Image.Image, limits: DecodeLimits, rotated: bool) -> None:
    """Refuse, from the header, an image whose decode would exceed the pixel or byte budget."""
    width, height = img.size
    if width * height > limits.max_pixels:
        raise LimitExceeded(
            "too_large",
            f"{width}x{height} = {width * height:,} pixels is over "
            f"the limit of {limits.max_pixels:,} (decompression-bomb guard)",
        )
    need = peak_bytes(img, rotated)
    if need > limits.max_bytes:
        raise LimitExceeded(
            "too_large",
            f"{width}x{height} {img.format} in mode {img.mode} needs about "
            f"{need / 2**20:,.0f} MiB to decode, over the limit of "
            f"{limits.max_bytes / 2**20:,.0f} MiB (decompression-bomb guard)",
        )
    if img.format == "TIFF":
        compression = getattr(img, "tag_v2", {}).get(259, 1)
        if compression not in TIFF_COMPRESSIONS:
            raise LimitExceeded(
                "unsupported",
                f"TIFF compression {compression} is not "
                "supported: save it as JPEG, PNG or a plain TIFF",
            )
    if img.format in ("JPEG", "MPO"):
        check_jpeg_scans(img, limits)


# --- decode work -------------------------------------------------------------------------------


@contextlib.contextmanager
def _whole_file(fp: Any):
    """The bytes of an open image file without copying them where possible (mmap for files)."""
    if isinstance(fp, io.BytesIO):
        view = fp.getbuffer()
        try:
            yield view
        finally:
            view.release()
        return
    try:
        fileno = fp.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        fileno = None
    if fileno is not None:
        try:
            mapped = mmap.mmap(fileno, 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # empty, or not mappable
            mapped = None
        if mapped is not None:
            try:
                yield mapped
            finally:
                mapped.close()
            return
    pos = fp.tell()
    fp.seek(0)
    data = fp.read()
    fp.seek(pos)
    yield data


def count_jpeg_scans(data: Any, stop_after: int) -> int:
    """Start-of-scan (SOS) segments in a JPEG, counted from its markers; stops past stop_after.

    Walks the segments the way libjpeg reads them: a length-prefixed segment, or a scan's
    entropy-coded data up to the next marker (0xFF then neither 0x00 stuffing, a restart
    marker nor fill). Garbage between segments is skipped to the next 0xFF, as libjpeg does.
    """
    n, pos, scans = len(data), 2, 0
    while pos + 1 < n:
        if data[pos] != 0xFF:
            pos = _find_ff(data, pos + 1, n)
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # end of image
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length field
            pos += 2
            continue
        if pos + 3 >= n:
            break
        end = pos + 2 + ((data[pos + 2] << 8) | data[pos + 3])
        if marker == 0xDA:
            scans += 1
            if scans > stop_after:
                break
            found = _JPEG_MARKER.search(data, end)
            pos = found.start() if found else n
        else:
            pos = end
    return scans


def _find_ff(data: Any, start: int, n: int) -> int:
    found = _FF.search(data, start)
    return found.start() if found else n


def check_jpeg_scans(img: Image.Image, limits: DecodeLimits) -> None:
    """Refuse a JPEG with more scans, or scans x pixels, than the limits allow."""
    fp = getattr(img, "fp", None)
    if fp is None:
        return
    stop = max(limits.max_jpeg_scans, limits.max_scan_pixels // max(1, img.width * img.height))
    with _whole_file(fp) as data:
        scans = count_jpeg_scans(data, stop)
    if scans > limits.max_jpeg_scans:
        raise LimitExceeded(
            "too_costly",
            f"the JPEG has over {limits.max_jpeg_scans} scans (a progressive-scan bomb)",
        )
    work = scans * img.width * img.height
    if work > limits.max_scan_pixels:
        raise LimitExceeded(
            "too_costly",
            f"{scans} scans of {img.width}x{img.height} pixels "
            f"are over the decode-work limit of {limits.max_scan_pixels:,} "
            "scan-pixels",
        )
