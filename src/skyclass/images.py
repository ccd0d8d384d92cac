"""The one image pipeline: decode, resize, normalise.

`prepare`, the training-time eval transform, `evaluate` on raw folders and the serving
handler all call these functions, so a photo becomes exactly the same tensor wherever it is
classified. Only numpy and Pillow are imported here: the Lambda package holds this module.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from skyclass.decode_limits import (
    DEFAULT_MAX_PIXELS,
    DecodeLimits,
    LimitExceeded,
    allowed_formats,
    check_budget,
    open_source,
)
from skyclass.errors import ImageError

ResizeMode = Literal["fit", "pad", "stretch"]
RESIZE_MODES: tuple[str, ...] = ("fit", "pad", "stretch")

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# Padding colour = the ImageNet mean, so padded borders normalise to ~0 instead of a strong edge.
PAD_RGB: tuple[int, int, int] = tuple(round(m * 255) for m in IMAGENET_MEAN)  # type: ignore[assignment]

# Bump when decode/resize/normalise change in a way that changes tensors.
PREPROCESS_VERSION = 1


# Never read truncated files as if they were whole.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Bytes handed to the decoder per read: the deadline/cancel check runs between reads.
DECODER_BLOCK_BYTES = 16 * 1024
# Pixels per band when a conversion needs an intermediate copy (to_rgb).
BAND_PIXELS = 1 << 20

# iPhone photos are HEIC: decoded when the optional extra `skyclass[heic]` is installed,
# otherwise they are reported as "not_an_image" like any other unsupported format.
with contextlib.suppress(ImportError):
    from pillow_heif import register_heif_opener

    register_heif_opener()
# The formats decoded at all (decode_limits.BASE_FORMATS, + HEIF where installed).
ALLOWED_FORMATS: tuple[str, ...] = allowed_formats()


@dataclass(frozen=True)
class PreprocessSpec:
    """Everything needed to turn a decoded photo into the model's input tensor."""

    size: int = 224
    resize: str = "pad"
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)
    version: int = PREPROCESS_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessSpec:
        return cls(
            size=int(data["size"]),
            resize=str(data["resize"]),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            version=int(data.get("version", PREPROCESS_VERSION)),
        )


def _open(source: bytes | str | Path | BinaryIO, limits: DecodeLimits) -> Image.Image:
    if isinstance(source, (bytes, bytearray, memoryview)) and len(source) == 0:
        raise ImageError("empty", "zero bytes")
    try:
        fp = open_source(source, limits)
        with warnings.catch_warnings():
            # We apply our own pixel limit below; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Only the allow-listed plugins ever see the bytes (never EPS -> Ghostscript).
            return Image.open(fp, formats=ALLOWED_FORMATS)
    except LimitExceeded as exc:
        raise ImageError(exc.reason, exc.detail) from exc
    except Image.DecompressionBombError as exc:
        raise ImageError("too_large", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(
            "not_an_image",
            f"not a supported image format (supported: {', '.join(ALLOWED_FORMATS)})",
        ) from exc
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        raise ImageError("unreadable", exc.strerror or str(exc)) from exc
    except OSError as exc:  # Pillow's "cannot create decoder", broken headers, ...
        raise ImageError("corrupt", str(exc)) from exc
    except MemoryError as exc:
        raise ImageError("too_large", "not enough memory to read the header") from exc
    except Exception as exc:  # a format plugin's own error, e.g. PNG "Truncated IHDR chunk"
        raise ImageError(
            "corrupt", f"cannot read the header ({type(exc).__name__}: {exc})"
        ) from exc


def decode_image(
    source: bytes | str | Path | BinaryIO,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    limits: DecodeLimits | None = None,
) -> Image.Image:
    """Fully decode an image, apply its EXIF orientation and return it as 8-bit RGB.

    The decode budget (decode_limits: formats, pixels, peak bytes, JPEG scans) is checked
    from the header *before* any pixel is decoded, so a tiny file that declares 30000x30000
    pixels, or 16-bit samples, or thousands of scans, costs nothing. A full `load()` (not just
    `verify()`) catches truncated downloads. `limits` overrides `max_pixels` when given.
    """
    limits = limits or DecodeLimits(max_pixels=max_pixels)
    img = _open(source, limits)
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError("not_an_image", f"invalid size {width}x{height}")
    # Pillow's PNG getexif() decodes the whole image to find an eXIf chunk: not before the check.
    predicted = None if img.format == "PNG" else _orientation(img)
    _check(img, limits, rotated=predicted is not None)
    _load(img)
    method = _orientation(img)  # a PNG's eXIf chunk may follow its pixels
    if not hasattr(source, "read"):  # the file decode_limits.open_source opened: done with it
        with contextlib.suppress(Exception):
            img.fp.close()  # type: ignore[attr-defined]  # ImageFile's, set by open
    if method is not None and predicted is None:
        _check(img, limits, rotated=True)
    rgb = to_rgb(img)
    del img  # the decoded original is freed before the rotated copy is made
    return rgb.transpose(method) if method is not None else rgb


def _check(img: Image.Image, limits: DecodeLimits, rotated: bool) -> None:
    try:
        check_budget(img, limits, rotated)
    except LimitExceeded as exc:
        raise ImageError(exc.reason, exc.detail) from exc
    except Exception as exc:  # a header field of a type we did not expect
        raise ImageError("corrupt", f"cannot read the header ({type(exc).__name__})") from exc


def _load(img: Image.Image) -> None:
    """Decode the pixels (first frame only), polling the deadline between reads."""
    img.decodermaxblock = DECODER_BLOCK_BYTES  # type: ignore[attr-defined]  # ImageFile's
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
    except LimitExceeded as exc:
        raise ImageError(exc.reason, exc.detail) from exc
    except Image.DecompressionBombError as exc:
        raise ImageError("too_large", str(exc)) from exc
    except MemoryError as exc:
        raise ImageError("too_large", "not enough memory to decode") from exc
    except Exception as exc:
        raise ImageError("corrupt", f"cannot decode ({type(exc).__name__}: {exc})") from exc


_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _orientation(img: Image.Image) -> Image.Transpose | None:
    """The transpose that makes the photo upright (ImageOps.exif_transpose's), or None.

    Applied after the conversion to RGB (both are per-pixel, so the result is the same) so
    that the decoded original and its rotated copy never exist at once. A broken EXIF block
    must not lose the photo: it is kept unrotated.
    """
    try:
        orientation = img.getexif().get(ExifTags.Base.Orientation)
        return _ORIENTATIONS.get(orientation) if isinstance(orientation, int) else None
    except Exception:  # noqa: BLE001 - any broken EXIF means "as stored"
        return None


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB the way a person would expect it to look.

    Transparency is composited onto white (as viewers show it), 16-bit and 32-bit grey are
    scaled to 8 bits rather than clipped, CMYK goes through Pillow's conversion. Modes that
    need intermediate copies are converted in bands of rows, so the peak is the original
    plus its RGB result (decode_limits.peak_bytes), never a full-size RGBA or float64 copy.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _wide_grey_to_rgb(img)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        return _banded(img, _composite_on_white)
    return img.convert("RGB")


def _bands(img: Image.Image) -> Iterator[tuple[int, int]]:
    """(top, bottom) row ranges of about BAND_PIXELS pixels each."""
    rows = max(1, BAND_PIXELS // max(1, img.width))
    for top in range(0, img.height, rows):
        yield top, min(img.height, top + rows)


def _banded(img: Image.Image, convert: Callable[[Image.Image], Image.Image]) -> Image.Image:
    """Apply a per-pixel conversion to RGB band by band into one RGB result."""
    out = Image.new("RGB", img.size)
    for top, bottom in _bands(img):
        out.paste(convert(img.crop((0, top, img.width, bottom))), (0, top))
    return out


def _composite_on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _wide_grey_to_rgb(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float grey -> 8-bit RGB, scaled by the range the image uses."""
    if img.mode.startswith("I;16"):
        scale = 65535.0
    else:
        band_tops = (_finite_max(img.crop((0, t, img.width, b))) for t, b in _bands(img))
        top = max((v for v in band_tops if v is not None), default=None)
        scale = top if top is not None and top > 255 else 255.0
        scale = 65535.0 if 255 < scale <= 65535 else scale
    grey = np.empty((img.height, img.width), dtype=np.uint8)
    for top, bottom in _bands(img):
        arr = np.asarray(img.crop((0, top, img.width, bottom)), dtype=np.float64)
        arr = np.nan_to_num(arr, nan=0.0, posinf=scale, neginf=0.0)
        grey[top:bottom] = np.clip(np.rint(arr / scale * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def _finite_max(band: Image.Image) -> float | None:
    arr = np.asarray(band, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    return float(finite.max()) if finite.size else None


def _scaled_size(width: int, height: int, size: int) -> tuple[int, int]:
    """Size with the longer side == `size`, aspect ratio kept, nothing below 1 px."""
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_image(
    img: Image.Image, size: int = 224, mode: str = "pad", fill: tuple[int, int, int] = PAD_RGB
) -> Image.Image:
    """Resize an RGB image.

    - `fit`: keep the aspect ratio, longer side = size (the reference's resize_thumbnail,
      but it also enlarges small images); the result is not square.
    - `pad`: `fit`, then centre on a size x size canvas of `fill` (letterbox).
    - `stretch`: size x size, aspect ratio ignored.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; choose one of {', '.join(RESIZE_MODES)}")
    if mode == "stretch":
        target = (size, size)
    else:
        target = _scaled_size(img.width, img.height, size)
    if img.size != target:
        img = img.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if mode != "pad" or img.size == (size, size):
        return img
    canvas = Image.new("RGB", (size, size), fill)
    canvas.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    return canvas


def square_for_model(img: Image.Image, spec: PreprocessSpec) -> Image.Image:
    """The size x size RGB image the model sees. `fit` data is letterboxed like `pad`."""
    mode = "stretch" if spec.resize == "stretch" else "pad"
    return resize_image(img, spec.size, mode)


def normalize_array(arr: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """HWC uint8 RGB -> CHW float32, (x/255 - mean) / std. The only normalisation in skyclass."""
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 array, got shape {arr.shape}")
    mean = np.asarray(spec.mean, dtype=np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(spec.std, dtype=np.float32) * 255.0)
    out = (arr.astype(np.float32) - mean) * inv_std
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def to_model_input(img: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """RGB image (any size) -> normalised CHW float32 tensor of spec.size x spec.size."""
    return normalize_array(np.asarray(square_for_model(to_rgb(img), spec)), spec)


def preprocess(
    source: bytes | str | Path | BinaryIO,
    spec: PreprocessSpec,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    limits: DecodeLimits | None = None,
) -> np.ndarray:
    """Raw file or bytes -> model input. What serving and `evaluate --data FOLDER` use."""
    return to_model_input(decode_image(source, max_pixels=max_pixels, limits=limits), spec)


def encode_image(img: Image.Image, fmt: str = "jpeg", quality: int = 95) -> bytes:
    """Encode an RGB image for the dataset zip."""
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.save(buf, format="JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)
    elif fmt == "png":
        img.save(buf, format="PNG", optimize=False, compress_level=6)
    else:
        raise ValueError(f"unknown image format {fmt!r}; choose jpeg or png")
    return buf.getvalue()
