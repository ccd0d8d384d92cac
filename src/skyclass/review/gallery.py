"""review.html: one self-contained page (thumbnails as data URIs, no external URL), worst first."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from PIL import Image

from skyclass.dataset_zip import PreparedDataset
from skyclass.fileio import atomic_write
from skyclass.images import ImageError, decode_image

THUMB_SIDE = 128


def thumbnail_jpeg(data: bytes, side: int = THUMB_SIDE) -> bytes:
    """A small JPEG of an image (for the gallery and the review page)."""
    img = decode_image(data)
    img.thumbnail((side, side), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _data_uri(dataset: PreparedDataset, path: str) -> str:
    try:
        thumb = thumbnail_jpeg(dataset.read(path))
    except (ImageError, KeyError, OSError):
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(thumb).decode("ascii")


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em}
.grid{display:flex;flex-wrap:wrap;gap:10px}.card{width:180px;border:1px solid #ccc;padding:6px;
font-size:12px;word-break:break-all}.card img{width:128px;height:128px;object-fit:contain;
display:block;margin:auto;background:#eee}.kind{font-weight:bold}.noimg{height:128px;
display:flex;align-items:center;justify-content:center;background:#eee;color:#777}
"""


def _card(rank: int, issue, uri: str) -> str:
    e = html.escape
    img = (
        f'<img src="{uri}" alt="{e(issue.path)}">'
        if uri
        else '<div class="noimg">not in the zip</div>'
    )
    suggestion = f" → <b>{e(issue.suggested)}</b>" if issue.suggested else ""
    prob = "" if issue.p_given is None else f" (p={issue.p_given:.2f})"
    detail = f"<br>{e(issue.detail)}" if issue.detail else ""
    return (
        f'<div class="card">{img}<div>#{rank} <span class="kind">{e(issue.kind)}</span> '
        f"score {issue.score:.3f}</div><div>{e(issue.given)}{prob}{suggestion}</div>"
        f"<div>{e(issue.source)}</div>{detail}</div>"
    )


def render_gallery(dataset: PreparedDataset, issues: list, summary: dict) -> str:
    e = html.escape
    noise_rows = "".join(
        f"<tr><td>{e(c['class'])}</td><td>{c['images']}</td><td>{c['estimated_label_issues']}"
        f"</td><td>{c['estimated_noise_rate']:.1%}</td><td>{c['label_quality']:.3f}</td></tr>"
        for c in summary["classes"]
    )
    counts = ", ".join(f"{n} {k}" for k, n in summary["issues"].items())
    cards = "".join(
        _card(rank, it, _data_uri(dataset, it.path) if it.path else "")
        for rank, it in enumerate(issues, start=1)
    )
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>skyclass review: {e(Path(summary["dataset"]).name)}</title><style>{_STYLE}</style></head>
<body><h1>Review of {e(Path(summary["dataset"]).name)}</h1>
<p>{summary["images"]} images, scored out of sample by {summary["folds"]}-fold linear heads on
{e(summary["backbone"])} embeddings (out-of-sample accuracy
{summary["out_of_sample_accuracy"]:.1%}). {len(issues)} suspects: {e(counts)}.
Fix them with <code>skyclass review … --serve</code>, then
<code>skyclass prepare RAW --decisions decisions.csv --out NEW.zip</code>.</p>
<h2>Estimated label noise per class (cleanlab)</h2>
<table><tr><th>class</th><th>images</th><th>likely wrong labels</th><th>noise rate</th>
<th>label quality</th></tr>{noise_rows}</table>
<h2>Suspects, worst first</h2><div class="grid">{cards}</div></body></html>
"""


def write_gallery(path: Path, dataset: PreparedDataset, issues: list, summary: dict) -> None:
    page = render_gallery(dataset, issues, summary).encode("utf-8")
    atomic_write(path, lambda fh: fh.write(page))
