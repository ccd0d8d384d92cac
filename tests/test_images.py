"""The one image pipeline: decoding of every mode and format, EXIF, bombs, resize, normalise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prepare.fixtures import (  # tests/prepare (pytest puts tests/ on sys.path)
    HTML_PAGE,
    cmyk_jpeg,
    encode,
    exif_rotated_jpeg,
    grey16_png,
    la_png,
    palette_png_with_transparency,
    png_bomb,
    truncated,
)
from skyclass.images import (
    PAD_RGB,
    ImageError,
    PreprocessSpec,
    decode_image,
    encode_image,
    normalize_array,
    preprocess,
    resize_image,
    to_model_input,
)


@pytest.fixture(scope="module")
def photo(bird_drone_dir: Path) -> Image.Image:
    """A real 416x416 RGB photo."""
    path = sorted((bird_drone_dir / "bird").glob("*.jpg"))[0]
    with Image.open(path) as img:
        return img.convert("RGB")


def _diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).mean())


def test_cmyk_jpeg_becomes_the_same_rgb(photo):
    out = decode_image(cmyk_jpeg(photo))
    assert out.mode == "RGB" and out.size == photo.size
    assert _diff(out, photo) < 6  # JPEG loss only, no inverted or washed-out colours


def test_palette_transparency_composited_on_white(photo):
    out = decode_image(palette_png_with_transparency(photo))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert _diff(out, photo) < 40  # still the photo elsewhere (32-colour palette)


def test_la_transparent_half_is_white_opaque_half_is_grey(photo):
    out = np.asarray(decode_image(la_png(photo)))
    grey = np.asarray(photo.convert("L"))
    w = photo.width // 2
    assert (out[:, :w] == 255).all()
    assert np.array_equal(out[:, w:, 0], grey[:, w:]) and np.array_equal(out[..., 0], out[..., 2])


def test_16_bit_grey_is_scaled_not_clipped(photo):
    out = np.asarray(decode_image(grey16_png(photo)))[..., 0]
    grey = np.asarray(photo.convert("L"))
    assert np.abs(out.astype(int) - grey).max() <= 1
    assert out.min() < 200  # a naive 16->8 bit convert clips nearly everything to 255


def test_exif_orientation_is_applied(photo):
    landscape = photo.crop((0, 80, 416, 336))
    out = decode_image(exif_rotated_jpeg(landscape, orientation=6))
    assert out.size == (256, 416)
    assert _diff(out, landscape.transpose(Image.Transpose.ROTATE_270)) < 4
    mirrored = decode_image(exif_rotated_jpeg(landscape, orientation=2))
    assert _diff(mirrored, landscape.transpose(Image.Transpose.FLIP_LEFT_RIGHT)) < 4


def test_broken_exif_keeps_the_photo(photo):
    data = bytearray(exif_rotated_jpeg(photo, orientation=6))
    at = data.find(b"Exif\x00\x00")
    data[at + 6 : at + 14] = b"\xff" * 8  # garbage TIFF header inside the EXIF block
    assert decode_image(bytes(data)).size == (416, 416)


@pytest.mark.parametrize("fmt", ["WEBP", "GIF", "BMP", "TIFF", "PNG", "JPEG"])
def test_formats(photo, fmt):
    out = decode_image(encode(photo, fmt))
    assert out.mode == "RGB" and out.size == (416, 416)
    assert _diff(out, photo) < (25 if fmt == "GIF" else 8)


def test_heic_when_the_extra_is_installed(photo):
    pytest.importorskip("pillow_heif")
    out = decode_image(encode(photo, "HEIF", quality=90))
    assert out.size == (416, 416) and _diff(out, photo) < 8


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (HTML_PAGE, "not_an_image"),
        (b"just some text\n", "not_an_image"),
        (b"\x89PNG\r\n\x1a\n", "not_an_image"),
    ],
)
def test_not_images(data, reason):
    with pytest.raises(ImageError) as exc:
        decode_image(data)
    assert exc.value.reason == reason


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_files_are_corrupt_not_half_grey(photo, fmt):
    with pytest.raises(ImageError) as exc:
        decode_image(truncated(encode(photo, fmt), 0.5))
    assert exc.value.reason in ("corrupt", "not_an_image")


def test_png_with_an_empty_ihdr_chunk_is_corrupt(photo):
    """Found by bench/fuzz_handler.py: Pillow's PNG plugin raises ValueError, not OSError."""
    data = bytearray(encode(photo, "PNG"))
    assert data[12:16] == b"IHDR"
    data[8:12] = b"\0\0\0\0"  # the IHDR chunk's length
    with pytest.raises(ImageError) as exc:
        decode_image(bytes(data))
    assert exc.value.reason == "corrupt"
    assert "IHDR" in exc.value.detail


def test_bit_flipped_jpeg_never_raises_anything_but_image_error(photo):
    data = bytearray(encode(photo, "JPEG"))
    rng = np.random.default_rng(0)
    for _ in range(40):
        broken = bytearray(data)
        for pos in rng.integers(0, len(broken), 8):
            broken[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            out = decode_image(bytes(broken))
        except ImageError as exc:
            assert exc.reason in ("corrupt", "not_an_image", "too_large")
        else:
            assert out.mode == "RGB"


@pytest.mark.parametrize("side", [30000, 9000])
def test_decompression_bomb_is_refused_cheaply(side):
    """30000^2 trips Pillow's own guard; 9000^2 (81 Mpx) only ours (64 Mpx)."""
    data = png_bomb(side)
    assert len(data) < 1_000_000
    with pytest.raises(ImageError) as exc:
        decode_image(data)
    assert exc.value.reason == "too_large"


def test_decompression_bomb_uses_bounded_memory(tmp_path):
    """Measured in a child process: its peak RSS must stay far below the 900 Mpx it declares."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb(30000))
    code = (
        "import sys\n"
        "from prepare.fixtures import peak_rss_kb\n"
        "from skyclass.images import decode_image, ImageError\n"
        "try:\n    decode_image(sys.argv[1])\nexcept ImageError as e:\n    print(e.reason)\n"
        # VmHWM: this process's own peak (ru_maxrss can carry the forking parent's peak).
        "print(peak_rss_kb())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(bomb)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    ).stdout.split()
    assert out[0] == "too_large"
    assert int(out[1]) < 200 * 1024


def test_a_6000x4000_original_passes(photo):
    big = photo.resize((6000, 4000))
    out = decode_image(encode(big, "JPEG", quality=80))
    assert out.size == (6000, 4000)


def test_decode_from_path_and_file_object(photo, tmp_path):
    path = tmp_path / "p.png"
    path.write_bytes(encode(photo, "PNG"))
    assert decode_image(path).size == decode_image(str(path)).size == (416, 416)
    with open(path, "rb") as fh:
        assert decode_image(fh).size == (416, 416)


@pytest.mark.parametrize(
    ("mode", "size", "expected"),
    [
        ("fit", (300, 100), (224, 75)),
        ("pad", (300, 100), (224, 224)),
        ("stretch", (300, 100), (224, 224)),
        ("fit", (20, 40), (112, 224)),
        ("pad", (5000, 1), (224, 224)),
        ("fit", (5000, 1), (224, 1)),
    ],
)
def test_resize_modes(mode, size, expected):
    img = Image.new("RGB", size, (10, 200, 30))
    assert resize_image(img, 224, mode).size == expected


def test_pad_letterboxes_with_the_mean_colour():
    img = Image.new("RGB", (300, 100), (0, 0, 0))
    out = np.asarray(resize_image(img, 60, "pad"))
    assert (out[0, 0] == PAD_RGB).all() and (out[30, 30] == 0).all()
    # Normalised, the padding is about zero: no artificial edge for the network.
    arr = normalize_array(out, PreprocessSpec(size=60))
    assert np.abs(arr[:, 0, 0]).max() < 0.02


def test_resize_rejects_unknown_mode():
    with pytest.raises(ValueError, match="resize mode"):
        resize_image(Image.new("RGB", (4, 4)), 8, "crop")


def test_model_input_shape_dtype_and_values(photo):
    spec = PreprocessSpec(size=64)
    arr = preprocess(encode(photo, "PNG"), spec)
    assert arr.shape == (3, 64, 64) and arr.dtype == np.float32
    expected = (np.asarray(resize_image(photo, 64, "pad"), np.float32) / 255 - spec.mean) / spec.std
    assert np.allclose(arr, expected.transpose(2, 0, 1), atol=1e-5)
    assert np.allclose(to_model_input(photo.convert("RGBA"), spec), arr, atol=1e-5)


def test_normalize_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="HxWx3"):
        normalize_array(np.zeros((4, 4), np.uint8), PreprocessSpec())


def test_spec_round_trip():
    spec = PreprocessSpec(size=96, resize="stretch")
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec


def test_encode_image(photo):
    assert encode_image(photo, "jpeg", 90)[:2] == b"\xff\xd8"
    assert encode_image(photo, "png")[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="jpeg or png"):
        encode_image(photo, "gif")


def test_images_module_imports_no_torch():
    code = "import sys, skyclass.images; print('torch' in sys.modules)"
    env = os.environ
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()
    assert out == "False"
