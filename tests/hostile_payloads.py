"""Hostile uploads, generated in code (nothing large in git): one builder per payload class.

Used by the regression tests (tests/test_decode_budget.py, tests/serving/...) and by
bench/reliability.py, which times each class against this branch and against `main`.
Every builder is streaming where the payload is large once decoded, so building a 64 Mpx bomb
costs the test process a few MB, not the bomb's size.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

from PIL import Image

SOI, EOI, SOS = b"\xff\xd8", b"\xff\xd9", 0xDA


def _photo_like(side: int) -> Image.Image:
    """A deterministic textured RGB image (real photos are not needed to build a bomb)."""
    base = Image.linear_gradient("L").resize((side, side))
    noise = Image.radial_gradient("L").resize((side, side))  # deterministic: same bytes each run
    return Image.merge("RGB", (base, noise, base.transpose(Image.Transpose.ROTATE_90)))


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, bytes including the marker) of a JPEG; a scan's entropy data stays with it."""
    out, pos = [], 2
    while pos < len(data):
        marker = data[pos + 1]
        if marker == 0xD9:
            break
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker == SOS:
            while True:  # entropy data runs to the next marker that is not a stuffed/RST byte
                end = data.index(b"\xff", end)
                if data[end + 1] != 0 and not 0xD0 <= data[end + 1] <= 0xD7:
                    break
                end += 2
        out.append((marker, data[pos:end]))
        pos = end
    return out


# A Huffman AC table (class 1, id 3) with one 1-bit code: symbol 0xE0, an end-of-band run of
# 2^14 blocks. A scan using it ends every block of the component in two data bytes.
_EOB_RUN_TABLE = (
    b"\xff\xc4" + struct.pack(">H", 2 + 1 + 16 + 1) + b"\x13" + b"\x01" + b"\x00" * 15 + b"\xe0"
)
# SOS: 1 component (id 1, luma), DC table 0 / AC table 3, spectral band 1..63, Ah=Al=0.
_EOB_RUN_SCAN = b"\xff\xda" + struct.pack(">H", 8) + b"\x01\x01\x03\x01\x3f\x00" + b"\x00\x01"


def progressive_scan_bomb(side: int = 2048, scans: int = 5000) -> bytes:
    """A valid progressive JPEG with `scans` extra scans of 12 bytes each (~60 kB for 5000).

    Each extra scan is a luma AC scan that is one end-of-band run: libjpeg still walks every
    block of the image for it, so the decode time grows with scans x pixels while the file
    stays small (the issue's "few hundred kB, tens of seconds").
    """
    buf = io.BytesIO()
    _photo_like(side).save(buf, "JPEG", quality=75, progressive=True)
    body = b"".join(s for _, s in jpeg_segments(buf.getvalue()))
    return SOI + body + _EOB_RUN_TABLE + _EOB_RUN_SCAN * scans + EOI


def _tiff(width: int, height: int, bits: int, sample_format: int) -> bytes:
    """A one-strip deflate grey TIFF of zeros: a few hundred kB for hundreds of MB of samples."""
    row = b"\x00" * (width * bits // 8)
    comp = zlib.compressobj(9)
    strip = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    tags = [
        (256, 4, width),
        (257, 4, height),
        (258, 3, bits),
        (259, 3, 8),
        (262, 3, 1),
        (273, 4, 0),
        (277, 3, 1),
        (278, 4, height),
        (279, 4, len(strip)),
        (339, 3, sample_format),
    ]
    strip_at = 8 + 2 + 12 * len(tags) + 4
    ifd = struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        value = strip_at if tag == 273 else value
        packed = struct.pack("<I", value) if kind == 4 else struct.pack("<HH", value, 0)
        ifd += struct.pack("<HHI", tag, kind, 1) + packed
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 4 + strip


def float_tiff(side: int = 7900) -> bytes:
    """32-bit float grey TIFF (mode F), side^2 pixels."""
    return _tiff(side, side, 32, 3)


def int32_tiff(side: int = 7900) -> bytes:
    """32-bit signed integer grey TIFF (mode I)."""
    return _tiff(side, side, 32, 2)


def grey16_tiff(side: int = 7900) -> bytes:
    """16-bit grey TIFF (mode I;16)."""
    return _tiff(side, side, 16, 1)


def _png(width: int, height: int, bit_depth: int, colour_type: int, channels: int) -> bytes:
    """A PNG of zeros, streamed: a few hundred kB for width x height pixels."""
    row = b"\x00" * (1 + width * channels * bit_depth // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def rgba_png(side: int = 7900) -> bytes:
    return _png(side, side, 8, 6, 4)


def la_png(side: int = 7900) -> bytes:
    return _png(side, side, 8, 4, 2)


def rgb_png(side: int = 7900) -> bytes:
    return _png(side, side, 8, 2, 3)


def rgba16_png(side: int = 7900) -> bytes:
    return _png(side, side, 16, 6, 4)


def eps_file() -> bytes:
    """An EPS whose header would hand it to Ghostscript (where `gs` is installed)."""
    return (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n%%EndComments\n"
        b"newpath 0 0 moveto 64 64 lineto stroke\nshowpage\n%%EOF\n"
    )


def ico_file(side: int = 256) -> bytes:
    """A Windows icon container (an ICO holding PNG/BMP frames)."""
    buf = io.BytesIO()
    _photo_like(side).save(buf, "ICO", sizes=[(side, side), (32, 32)])
    return buf.getvalue()


def icns_file() -> bytes:
    buf = io.BytesIO()
    _photo_like(512).save(buf, "ICNS")
    return buf.getvalue()


def animated_gif(frames: int = 2000, side: int = 64) -> bytes:
    """Many frames: only the first may be decoded."""
    images = [Image.new("P", (side, side), i % 256) for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=10)
    return buf.getvalue()


def multipart_bare_cr_parts(parts: int = 20000, boundary: str = "b") -> tuple[bytes, str]:
    """A form whose lines end in a bare CR, with `parts` parts (limit: 100)."""
    part = (f'--{boundary}\rContent-Disposition: form-data; name="f"\r\rx\r').encode()
    # The leading CR is an empty preamble line: no delimiter is at the start of the body.
    return (
        b"\r" + part * parts + f"--{boundary}--\r".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def multipart_bare_cr_headers(
    header_bytes: int = 600_000, boundary: str = "b"
) -> tuple[bytes, str]:
    """One part with 600 kB of header parameters, lines ending in a bare CR."""
    params = "".join(f'; p{i}="{"v" * 20}"' for i in range(header_bytes // 30))
    body = (
        f'\r--{boundary}\rContent-Disposition: form-data; name="file"; '
        f'filename="a.jpg"{params}\rContent-Type: image/jpeg\r\rxyz\r'
        f"--{boundary}--\r"
    ).encode()
    return body, f"multipart/form-data; boundary={boundary}"


IMAGE_PAYLOADS: dict[str, Callable[[], bytes]] = {
    "progressive_jpeg_5000_scans": progressive_scan_bomb,
    "float32_tiff_62mpx": float_tiff,
    "int32_tiff_62mpx": int32_tiff,
    "grey16_tiff_62mpx": grey16_tiff,
    "rgba_png_62mpx": rgba_png,
    "la_png_62mpx": la_png,
    "rgba16_png_62mpx": rgba16_png,
    "rgb_png_62mpx": rgb_png,
    "eps_header": eps_file,
    "ico_container": ico_file,
    "icns_container": icns_file,
    "animated_gif_2000_frames": animated_gif,
}
