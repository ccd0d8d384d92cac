"""The one image pipeline: decode, resize, normalise.

`prepare`, the training-time eval transform, `evaluate` on raw folders and the serving
handler all call these functions, so a photo becomes exactly the same tensor wherever it is
classified. Only numpy and Pillow are imported here: the Lambda package holds this module.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

ResizeMode = Literal["fit", "pad", "stretch"]
RESIZE_MODES: tuple[str, ...] = ("fit", "pad", "stretch")

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# Padding colour = the ImageNet mean, so padded borders normalise to ~0 instead of a strong edge.
PAD_RGB: tuple[int, int, int] = tuple(round(m * 255) for m in IMAGENET_MEAN)  # type: ignore[assignment]

# Bump when decode/resize/normalise change in a way that changes tensors.
PREPROCESS_VERSION = 1

# 6000x4000 phone originals (24 Mpx) must pass; a 30000x30000 bomb (900 Mpx) must not.
DEFAULT_MAX_PIXELS = 64_000_000

# Never read truncated files as if they were whole.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# iPhone photos are HEIC: decoded when the optional extra `skyclass[heic]` is installed,
# otherwise they are reported as "not_an_image" like any other format Pillow cannot read.
with contextlib.suppress(ImportError):
    from pillow_heif import register_heif_opener

    register_heif_opener()


class ImageError(ValueError):
    """An input that is not a usable image. `reason` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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


def _open(source: bytes | str | Path | BinaryIO) -> Image.Image:
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError("empty", "zero bytes")
        fp: BinaryIO | str | Path = io.BytesIO(bytes(source))
    else:
        fp = source
    try:
        with warnings.catch_warnings():
            # We apply our own pixel limit below; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp)
    except Image.DecompressionBombError as exc:
        raise ImageError("too_large", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageError("not_an_image", "not a recognised image format") from exc
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        raise ImageError("unreadable", exc.strerror or str(exc)) from exc
    except OSError as exc:  # Pillow's "cannot create decoder", broken headers, ...
        raise ImageError("corrupt", str(exc)) from exc
    except MemoryError as exc:
        raise ImageError("too_large", "not enough memory to read the header") from exc
    except Exception as exc:  # a format plugin's own error, e.g. PNG "Truncated IHDR chunk"
        raise ImageError("corrupt", f"cannot read the header ({type(exc).__name__}: "
                         f"{exc})") from exc


def decode_image(
    source: bytes | str | Path | BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Fully decode an image, apply its EXIF orientation and return it as 8-bit RGB.

    The pixel limit is checked from the header *before* any pixel is decoded, so a tiny file
    that declares 30000x30000 pixels costs nothing. A full `load()` (not just `verify()`)
    catches truncated downloads.
    """
    img = _open(source)
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError("not_an_image", f"invalid size {width}x{height}")
    if width * height > max_pixels:
        raise ImageError(
            "too_large",
            f"{width}x{height} = {width * height:,} pixels is over the limit of "
            f"{max_pixels:,} (decompression-bomb guard)",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
    except Image.DecompressionBombError as exc:
        raise ImageError("too_large", str(exc)) from exc
    except MemoryError as exc:
        raise ImageError("too_large", "not enough memory to decode") from exc
    except Exception as exc:
        raise ImageError("corrupt", f"cannot decode ({type(exc).__name__}: {exc})") from exc
    # A broken EXIF block must not lose the photo: keep it unrotated.
    with contextlib.suppress(Exception):
        img = ImageOps.exif_transpose(img)
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB the way a person would expect it to look.

    Transparency is composited onto white (as viewers show it), 16-bit and 32-bit grey are
    scaled to 8 bits rather than clipped, CMYK goes through Pillow's conversion.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
        if mode == "RGB":
            return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _wide_grey_to_rgb(img)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _wide_grey_to_rgb(img: Image.Image) -> Image.Image:
    arr = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16"):
        scale = 65535.0
    else:
        finite = arr[np.isfinite(arr)]
        scale = float(finite.max()) if finite.size and finite.max() > 255 else 255.0
        scale = 65535.0 if 255 < scale <= 65535 else scale
    arr = np.nan_to_num(arr, nan=0.0, posinf=scale, neginf=0.0)
    grey = np.clip(np.rint(arr / scale * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


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
) -> np.ndarray:
    """Raw file or bytes -> model input. What serving and `evaluate --data FOLDER` use."""
    return to_model_input(decode_image(source, max_pixels=max_pixels), spec)


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
