"""The decode budget: hostile images are refused from their header, in bounded time and memory.

Every payload is generated at test time (tests/hostile_payloads.py) and decoded in a child
process whose peak RSS (VmHWM) and decode CPU time are asserted: what a hostile upload costs
`prepare`, `evaluate` or the handler, not what building it cost the test.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import hostile_payloads as hp
from skyclass import images
from skyclass.decode_limits import MAX_JPEG_SCANS, DecodeLimits, count_jpeg_scans
from skyclass.images import ALLOWED_FORMATS, ImageError, decode_image, to_rgb

MAX_SECONDS = 2.0
MAX_RSS_MB = 700

# payload -> the ImageError reason it must get (None: it must decode).
EXPECTED = {
    "progressive_jpeg_5000_scans": "too_costly",
    "float32_tiff_62mpx": "too_large",
    "int32_tiff_62mpx": "too_large",
    "grey16_tiff_62mpx": "too_large",
    "rgba_png_62mpx": "too_large",
    "la_png_62mpx": "too_large",
    "rgba16_png_62mpx": "too_large",
    "rgb_png_62mpx": None,  # 62 Mpx of plain RGB is within the budget: decoded, bounded
    "eps_header": "not_an_image",
    "ico_container": "not_an_image",
    "icns_container": "not_an_image",
    "animated_gif_2000_frames": None,
}

CHILD = """
import json, sys, time
from skyclass.images import ImageError, PreprocessSpec, preprocess
data = open(sys.argv[1], "rb").read()
start, cpu = time.perf_counter(), time.process_time()
try:
    preprocess(data, PreprocessSpec())
    reason = None
except ImageError as exc:
    reason = exc.reason
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"reason": reason, "seconds": seconds, "cpu_seconds": cpu,
                  "rss_mb": hwm / 1024}))
"""


def decode_in_child(path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_payload_class_is_covered():
    assert set(EXPECTED) == set(hp.IMAGE_PAYLOADS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_image_is_answered_fast_with_bounded_memory(name, tmp_path):
    path = tmp_path / name
    path.write_bytes(hp.IMAGE_PAYLOADS[name]())
    result = decode_in_child(path)
    assert result["reason"] == EXPECTED[name], result
    # CPU seconds: what the decode costs, whatever else loads the (shared) machine.
    assert result["cpu_seconds"] < MAX_SECONDS, result
    assert result["rss_mb"] < MAX_RSS_MB, result


def test_the_allow_list_is_the_documented_one():
    assert ALLOWED_FORMATS[:6] == ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "JPEG, PNG, WebP, GIF (first frame), BMP, TIFF" in readme


def test_eps_never_reaches_ghostscript(monkeypatch):
    """Even where `gs` is installed, no EPS plugin code runs: the message names no command."""
    from PIL import EpsImagePlugin

    def fail(*args, **kwargs):
        raise AssertionError("the EPS plugin was called")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", fail)
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", fail)
    with pytest.raises(ImageError) as exc:
        decode_image(hp.eps_file())
    assert exc.value.reason == "not_an_image" and "gs" not in exc.value.detail


def test_jpeg_scan_count_matches_the_file():
    photo = hp.progressive_scan_bomb(side=64, scans=0)
    scans = sum(1 for m, _ in hp.jpeg_segments(photo) if m == hp.SOS)
    assert 5 <= scans == count_jpeg_scans(photo, 10_000)
    bomb = hp.progressive_scan_bomb(side=64, scans=300)
    assert count_jpeg_scans(bomb, 10_000) == scans + 300


def test_a_progressive_jpeg_under_the_scan_limit_still_decodes():
    data = hp.progressive_scan_bomb(side=256, scans=MAX_JPEG_SCANS - 20)
    assert decode_image(data).size == (256, 256)
    with pytest.raises(ImageError) as exc:
        decode_image(hp.progressive_scan_bomb(side=256, scans=MAX_JPEG_SCANS + 1))
    assert exc.value.reason == "too_costly"


def test_scan_pixels_bound_the_work_of_big_progressive_jpegs():
    data = hp.progressive_scan_bomb(side=512, scans=30)
    with pytest.raises(ImageError) as exc:
        decode_image(data, limits=DecodeLimits(max_scan_pixels=512 * 512 * 20))
    assert exc.value.reason == "too_costly" and "scan-pixels" in exc.value.detail


def test_byte_budget_counts_mode_and_bit_depth():
    """The same pixel count: RGB passes a budget that 16-bit and float grey do not."""
    side = 1000
    budget = DecodeLimits(max_bytes=side * side * 5)
    rgb = io.BytesIO()
    Image.new("RGB", (side, side), (10, 20, 30)).save(rgb, "PNG")
    assert decode_image(rgb.getvalue(), limits=budget).size == (side, side)
    for payload in (hp.float_tiff(side), hp.grey16_tiff(side), hp.rgba_png(side)):
        with pytest.raises(ImageError) as exc:
            decode_image(payload, limits=budget)
        assert exc.value.reason == "too_large" and "MiB" in exc.value.detail


def test_deadline_and_cancel_stop_a_decode():
    data = hp.progressive_scan_bomb(side=256, scans=10)
    with pytest.raises(ImageError) as exc:
        decode_image(data, limits=DecodeLimits(deadline=time.monotonic() - 1))
    assert exc.value.reason == "too_slow"
    with pytest.raises(ImageError) as exc:
        decode_image(data, limits=DecodeLimits(cancelled=lambda: True))
    assert exc.value.reason == "cancelled"


def test_a_fifo_path_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(ImageError) as exc:
        decode_image(fifo)
    assert exc.value.reason == "unreadable" and time.monotonic() - start < 1


# --- the conversions: banded, and identical to the whole-image formulas --------------------


def _reference_wide_grey(arr: np.ndarray, sixteen_bit: bool) -> np.ndarray:
    """The pre-banding formula (one float64 copy of the whole image), for comparison."""
    if sixteen_bit:
        scale = 65535.0
    else:
        finite = arr[np.isfinite(arr)]
        scale = float(finite.max()) if finite.size and finite.max() > 255 else 255.0
        scale = 65535.0 if 255 < scale <= 65535 else scale
    arr = np.nan_to_num(arr, nan=0.0, posinf=scale, neginf=0.0)
    return np.clip(np.rint(arr / scale * 255.0), 0, 255).astype(np.uint8)


@pytest.fixture
def small_bands(monkeypatch):
    monkeypatch.setattr(images, "BAND_PIXELS", 97 * 13)  # many bands, a ragged last one


def test_banded_float_conversion_equals_the_whole_image_formula(small_bands):
    rng = np.random.default_rng(0)
    arr = rng.uniform(-50, 3000, (301, 97)).astype(np.float32)
    arr[5, 5], arr[9, 1], arr[200, 3] = np.nan, np.inf, -np.inf
    out = np.asarray(to_rgb(Image.fromarray(arr, mode="F")))
    assert np.array_equal(out[..., 0], _reference_wide_grey(arr.astype(np.float64), False))


def test_banded_16_bit_conversion_equals_the_whole_image_formula(small_bands):
    arr = np.random.default_rng(1).integers(0, 65536, (301, 97), dtype=np.uint16)
    img = Image.frombytes("I;16", (97, 301), arr.tobytes())
    out = np.asarray(to_rgb(img))
    assert np.array_equal(out[..., 0], _reference_wide_grey(arr.astype(np.float64), True))


def test_banded_alpha_composite_equals_the_whole_image_one(small_bands):
    rng = np.random.default_rng(2)
    rgba = Image.fromarray(rng.integers(0, 256, (301, 97, 4), dtype=np.uint8), mode="RGBA")
    whole = Image.alpha_composite(Image.new("RGBA", rgba.size, (255,) * 4), rgba).convert("RGB")
    assert np.array_equal(np.asarray(to_rgb(rgba)), np.asarray(whole))
    la = rgba.convert("LA")
    whole_la = Image.alpha_composite(
        Image.new("RGBA", la.size, (255,) * 4), la.convert("RGBA")
    ).convert("RGB")
    assert np.array_equal(np.asarray(to_rgb(la)), np.asarray(whole_la))
