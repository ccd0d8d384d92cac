"""A small synthetic photo folder: flying shapes on sky gradients, generated in a second.

The tests that must run from a bare clone (no ../shared/datasets) use it: 4 classes, each a
shape drawn on a sky-like vertical gradient with soft cloud noise, at varied positions, sizes,
colours and image sizes. Deterministic for a seed; every image differs enough from the others
that `prepare` keeps them all as separate split groups (no near-copies), and a tiny model can
learn the classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("balloon", "kite", "plane", "ufo")


def _sky(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A vertical gradient from a deep to a pale sky colour, with blurred cloud noise."""
    top = np.array([rng.uniform(20, 90), rng.uniform(80, 150), rng.uniform(170, 240)])
    bottom = np.array([rng.uniform(170, 230), rng.uniform(190, 235), rng.uniform(220, 255)])
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    sky = (1 - t) * top + t * bottom
    clouds = rng.normal(0.0, 1.0, (max(2, height // 8), max(2, width // 8)))
    cloud_img = Image.fromarray(
        ((clouds - clouds.min()) / (np.ptp(clouds) + 1e-9) * 255).astype(np.uint8)
    ).resize((width, height), Image.BICUBIC)
    cloud = np.asarray(cloud_img.filter(ImageFilter.GaussianBlur(2)), dtype=np.float64)[..., None]
    pixels = sky * np.ones((height, width, 3)) + (cloud - 128.0) * rng.uniform(0.1, 0.35)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _draw(
    draw: ImageDraw.ImageDraw,
    label: str,
    cx: float,
    cy: float,
    r: float,
    colour: tuple[int, int, int],
    angle: float,
) -> None:
    """One flying object of class `label`, centred at (cx, cy), radius about r."""
    if label == "balloon":  # a round body on a string
        draw.ellipse([cx - r, cy - r * 1.2, cx + r, cy + r * 0.8], fill=colour)
        draw.line([cx, cy + r * 0.8, cx, cy + r * 2.0], fill=(60, 60, 60), width=1)
    elif label == "kite":  # a rotated diamond with a tail
        pts = [(0, -1.3), (0.8, 0), (0, 1.3), (-0.8, 0)]
        c, s = np.cos(angle), np.sin(angle)
        poly = [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in pts]
        draw.polygon(poly, fill=colour)
        draw.line([poly[2], (poly[2][0] + r * 0.4, poly[2][1] + r * 1.2)], fill=colour, width=2)
    elif label == "plane":  # a fuselage and crossed wings
        draw.rectangle([cx - r * 1.4, cy - r * 0.18, cx + r * 1.4, cy + r * 0.18], fill=colour)
        draw.polygon(
            [(cx - r * 0.2, cy), (cx + r * 0.3, cy - r * 1.2), (cx + r * 0.5, cy)], fill=colour
        )
        draw.polygon(
            [(cx - r * 0.2, cy), (cx + r * 0.3, cy + r * 1.2), (cx + r * 0.5, cy)], fill=colour
        )
    else:  # ufo: a flat saucer under a dome
        draw.ellipse([cx - r * 1.5, cy - r * 0.35, cx + r * 1.5, cy + r * 0.35], fill=colour)
        draw.pieslice(
            [cx - r * 0.6, cy - r * 0.9, cx + r * 0.6, cy + r * 0.3],
            180,
            360,
            fill=tuple(min(255, v + 70) for v in colour),
        )


def synthetic_image(label: str, seed: int) -> Image.Image:
    """One photo of class `label` (varied size, position, colour), deterministic for `seed`."""
    rng = np.random.default_rng([CLASSES.index(label), seed])
    width, height = int(rng.integers(64, 112)), int(rng.integers(64, 112))
    image = _sky(rng, width, height)
    r = min(width, height) * rng.uniform(0.14, 0.24)
    cx = rng.uniform(r * 1.6, width - r * 1.6)
    cy = rng.uniform(r * 1.4, height - r * 2.0)
    colour = tuple(int(v) for v in rng.integers(0, 120, 3))
    _draw(ImageDraw.Draw(image), label, cx, cy, r, colour, rng.uniform(-0.6, 0.6))
    return image


def write_synthetic_photos(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    """root/<class>/<class>_<i>.jpg|png for CLASSES (a few PNGs, as real folders have)."""
    for label in CLASSES:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = synthetic_image(label, seed * 1000 + i)
            suffix = "png" if i % 4 == 3 else "jpg"
            image.save(root / label / f"{label}_{i:02d}.{suffix}", quality=92)
    return root
