"""Turn one candidate file into a dataset image, or into a skip with its reason.

Runs in worker processes: it reads the file, hashes its bytes, decodes it fully through
`skyclass.images`, computes the perceptual hashes used by dedupe, resizes and encodes the
result into a spool folder, and returns only small metadata to the parent.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from skyclass.images import ImageError, decode_image, encode_image, resize_image
from skyclass.prepare.config import PrepareConfig
from skyclass.prepare.scan import Skipped, Source

# Perceptual hash: DCT of a 32x32 grey image, its 8x8 lowest frequencies against their median
# (the same recipe as imagehash.phash), in plain numpy.
_HASH_SIDE = 32
_DCT_LOW = np.cos(
    np.pi * np.arange(8)[:, None] * (2 * np.arange(_HASH_SIDE)[None, :] + 1) / (2 * _HASH_SIDE)
)
_ALTERNATING = (-1.0) ** np.arange(8)  # DCT coefficient k of a mirrored signal: times (-1)^k


@dataclass(frozen=True)
class Processed:
    """A decoded, resized image whose encoded bytes wait in the spool folder."""

    index: int
    source: Source
    sha256: str
    phash: int  # 64-bit perceptual hash of the image as it is
    dihedral: tuple[int, ...]  # perceptual hashes of its 8 rotations/flips
    width: int  # original size, after EXIF orientation
    height: int
    spool_file: str
    thumb: bytes = b""  # THUMB_SIDE^2 uint8 grey thumbnail: confirms perceptual-hash matches


# Side of the grey thumbnail that confirms a perceptual-hash match (skyclass.prepare.dedupe).
THUMB_SIDE = 32


class _ZipCache:
    """One open ZipFile per worker process and archive."""

    handles: dict[str, zipfile.ZipFile] = {}  # noqa: RUF012 - per-process cache

    @classmethod
    def get(cls, archive: str) -> zipfile.ZipFile:
        if archive not in cls.handles:
            cls.handles[archive] = zipfile.ZipFile(archive)
        return cls.handles[archive]


def read_source(source: Source, limit: int) -> bytes:
    """Read at most `limit` bytes; a file (or zip entry) larger than that is refused."""
    if source.archive is None:
        # O_NONBLOCK + fstat: a file swapped for a FIFO after the scan must not hang the run.
        fd = os.open(source.location, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ImageError("not_a_file", "no longer a regular file")
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(limit + 1)
    else:
        with _ZipCache.get(source.archive).open(source.location) as fh:
            # Bounded read: a zip bomb's declared size may lie, its stream cannot outgrow this.
            data = fh.read(limit + 1)
    if len(data) > limit:
        raise ImageError("file_too_large", f"over {limit // (1024 * 1024)} MB")
    return data


def dihedral_phashes(grey: Image.Image) -> tuple[int, ...]:
    """64-bit perceptual hashes of an image under its 8 rotations/flips; [0] is the image as is.

    One DCT serves all 8: mirroring multiplies DCT coefficient k by (-1)^k and transposing
    transposes the coefficients, so each variant's hash is exactly the hash of the rotated or
    flipped image (the 32x32 reduction is done in float, where it commutes with them too).
    Augmented copies in real data sets are often exactly such rotations and flips.
    """
    small = np.asarray(
        grey.convert("F").resize((_HASH_SIDE, _HASH_SIDE), Image.Resampling.LANCZOS),
        dtype=np.float64,
    )
    low = _DCT_LOW @ small @ _DCT_LOW.T  # 8x8: rows vertical, columns horizontal frequency
    cols, rows = _ALTERNATING[None, :], _ALTERNATING[:, None]
    variants = (low, low * cols, low * rows, low * rows * cols)
    variants += tuple(v.T for v in variants)
    return tuple(_bits_to_int(v > np.median(v)) for v in variants)


def _bits_to_int(bits: np.ndarray) -> int:
    return int(np.packbits(bits.astype(np.uint8).flatten()).view(">u8")[0])


def phash64(img: Image.Image) -> int:
    """The 64-bit perceptual hash of `img` (grey-scaled), as used by dedupe."""
    return dihedral_phashes(img.convert("L"))[0]


def grey_thumb(grey: Image.Image) -> bytes:
    """A THUMB_SIDE^2 uint8 grey thumbnail (box-averaged): 1 KB per image in the parent."""
    small = grey.convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.uint8).tobytes()


def process_source(
    job: tuple[int, Source], config: PrepareConfig, spool: str
) -> Processed | Skipped:
    """Process one file; every failure becomes a Skipped with a reason, never an exception."""
    index, source = job
    try:
        data = read_source(source, config.max_file_bytes)
    except FileNotFoundError:
        return Skipped(source.path, source.label, "vanished", "file disappeared while scanning")
    except PermissionError as exc:
        return Skipped(source.path, source.label, "unreadable", exc.strerror or "permission denied")
    except ImageError as exc:
        return Skipped(source.path, source.label, exc.reason, exc.detail)
    except (OSError, zipfile.BadZipFile, RuntimeError, EOFError) as exc:
        return Skipped(source.path, source.label, "unreadable", str(exc))
    if not data:
        return Skipped(source.path, source.label, "empty", "zero-byte file")
    sha = hashlib.sha256(data).hexdigest()
    try:
        img = decode_image(data, max_pixels=config.max_pixels)
    except ImageError as exc:
        return Skipped(source.path, source.label, exc.reason, exc.detail)
    width, height = img.size
    if min(width, height) < config.min_side:
        return Skipped(
            source.path,
            source.label,
            "too_small",
            f"{width}x{height}: shorter side under --min-side {config.min_side}",
        )
    fitted = resize_image(img, config.size, "fit")
    grey = fitted.convert("L")
    dihedral = dihedral_phashes(grey)
    out_img = (
        fitted
        if config.resize == "fit"
        else resize_image(fitted if config.resize == "pad" else img, config.size, config.resize)
    )
    spool_file = os.path.join(spool, f"{index}.{'jpg' if config.format == 'jpeg' else 'png'}")
    Path(spool_file).write_bytes(encode_image(out_img, config.format, config.quality))
    return Processed(
        index, source, sha, dihedral[0], dihedral, width, height, spool_file, grey_thumb(grey)
    )
