"""Turn one candidate file into a dataset image, or into a skip with its reason.

Runs in worker processes: it reads the file, hashes its bytes, decodes it fully through
`skyclass.images`, computes the perceptual hashes used by dedupe, resizes and encodes the
result into a spool folder, and returns only small metadata to the parent.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from skyclass.images import ImageError, decode_image, encode_image, resize_image
from skyclass.prepare.config import PrepareConfig
from skyclass.prepare.scan import Skipped, Source

# The 8 rotations/flips of a square: augmented copies in real data sets are often exactly these.
_DIHEDRAL: tuple[Image.Transpose | None, ...] = (
    None,
    Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_180,
    Image.Transpose.ROTATE_270,
    Image.Transpose.FLIP_LEFT_RIGHT,
    Image.Transpose.FLIP_TOP_BOTTOM,
    Image.Transpose.TRANSPOSE,
    Image.Transpose.TRANSVERSE,
)

_REASONS = {
    "empty": "empty",
    "not_an_image": "not_an_image",
    "corrupt": "corrupt",
    "too_large": "too_large",
    "unreadable": "corrupt",
}


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
        with open(source.location, "rb") as fh:
            data = fh.read(limit + 1)
    else:
        with _ZipCache.get(source.archive).open(source.location) as fh:
            # Bounded read: a zip bomb's declared size may lie, its stream cannot outgrow this.
            data = fh.read(limit + 1)
    if len(data) > limit:
        raise ImageError("file_too_large", f"over {limit // (1024 * 1024)} MB")
    return data


def phash64(img: Image.Image) -> int:
    """DCT perceptual hash (imagehash.phash) as a 64-bit integer."""
    import imagehash

    bits = imagehash.phash(img).hash.flatten()
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


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
        return Skipped(source.path, source.label, _REASONS.get(exc.reason, exc.reason), exc.detail)
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
    dihedral = tuple(phash64(grey if t is None else grey.transpose(t)) for t in _DIHEDRAL)
    out_img = fitted if config.resize == "fit" else resize_image(
        fitted if config.resize == "pad" else img, config.size, config.resize
    )
    spool_file = os.path.join(spool, f"{index}.{'jpg' if config.format == 'jpeg' else 'png'}")
    Path(spool_file).write_bytes(encode_image(out_img, config.format, config.quality))
    return Processed(index, source, sha, dihedral[0], dihedral, width, height, spool_file)
