"""report.html: one self-contained page that opens from disk with no server and no internet.

Every picture is embedded as a base64 data URI and the styles are inline; the page has no
script and refers to no external URL. All text from files (class names, paths, config
values) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

LEFT = ' class="l"'
MAX_LISTED = 200  # misclassified/skipped rows in the page; metrics.json has all of them

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:14px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.headline{display:flex;gap:2em;flex-wrap:wrap;margin:1em 0}
.headline div{background:#f5f8ff;border:1px solid #cdd8f0;border-radius:6px;padding:.6em 1.2em}
.headline b{display:block;font-size:28px}
img{max-width:100%;height:auto;border:1px solid #eee}
.note{color:#666;font-size:13px}
details{margin:.5em 0}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def data_uri(png: Path) -> str:
    """A PNG file as a data URI, so the page carries its pictures inside."""
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def table(header: Sequence[str], rows: Iterable[Sequence[object]], left: int = 1) -> str:
    """An HTML table; the first `left` columns are left-aligned text."""
    def cells(row: Sequence[object], tag: str) -> str:
        return "".join(
            f"<{tag}{LEFT if i < left else ''}>{esc(v)}</{tag}>" for i, v in enumerate(row)
        )

    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    return f"<table><tr>{cells(header, 'th')}</tr>{body}</table>"


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _flatten(value, f"{name}.")
        else:
            out.append((name, json.dumps(value) if isinstance(value, (list, tuple)) else value))
    return out


def _headline(metrics: dict) -> str:
    items = [
        ("accuracy", f"{metrics['accuracy']:.2%}"),
        ("images evaluated", metrics["num_images"]),
        ("misclassified", len(metrics["misclassified"])),
        ("macro F1", _fmt(metrics["macro_avg"]["f1"])),
    ]
    if len(metrics["class_names"]) > 2:
        items.insert(1, ("top-2 accuracy", f"{metrics['top2_accuracy']:.2%}"))
    if metrics.get("skipped"):
        items.append(("skipped files", len(metrics["skipped"])))
    return '<div class="headline">' + "".join(
        f"<div>{esc(label)}<b>{esc(value)}</b></div>" for label, value in items
    ) + "</div>"


def _per_class_table(metrics: dict) -> str:
    rows = [
        (name, _fmt(s["precision"]), _fmt(s["recall"]), _fmt(s["f1"]), s["support"])
        for name, s in metrics["per_class"].items()
    ]
    for label, key in (("macro avg", "macro_avg"), ("weighted avg", "weighted_avg")):
        avg = metrics[key]
        rows.append((label, _fmt(avg["precision"]), _fmt(avg["recall"]), _fmt(avg["f1"]),
                     metrics["num_images"]))
    return table(("class", "precision", "recall", "F1", "support"), rows)


def _confusion_table(metrics: dict) -> str:
    names = metrics["class_names"]
    rows = [[f"true {n}", *row] for n, row in zip(names, metrics["confusion_matrix"], strict=True)]
    return table(["", *[f"pred {n}" for n in names]], rows)


def _dataset_summary(summary: dict) -> str:
    """prepare's report.json in two tables (per class, totals), or a folder's file counts."""
    if "classes" in summary and isinstance(summary["classes"], dict):
        cols = ("found", "kept", "train", "val", "test", "near_duplicate_images")
        rows = [
            (name, *(c.get(k, "") for k in cols),
             ", ".join(f"{r}: {n}" for r, n in (c.get("skipped") or {}).items()))
            for name, c in summary["classes"].items()
        ]
        parts = [table(("class", *cols, "skipped"), rows, left=1)]
        facts = [(k, summary.get(k)) for k in ("source", "created", "size", "resize")]
        facts += [(f"total {k}", v) for k, v in (summary.get("totals") or {}).items()]
        parts.append(table(("", "value"), [f for f in facts if f[1] is not None], left=2))
        return "".join(parts)
    counts = summary.get("files_per_class", {})
    return table(("class", "files"), counts.items())


def _legend(metrics: dict) -> str:
    """What the short labels in the pictures stand for (FB = Flying Birds, ...)."""
    pairs = zip(metrics.get("short_names") or [], metrics["class_names"], strict=False)
    shown = [f"{short} = {full}" for short, full in pairs if short != full]
    return f'<p class="note">Labels in the pictures: {esc(", ".join(shown))}.</p>' if shown else ""


def _image(name: str, pngs: dict[str, Path], alt: str) -> str:
    png = pngs.get(name)
    if png is None:
        return f'<p class="note">{esc(alt)}: not available.</p>'
    return f'<p><img src="{data_uri(png)}" alt="{esc(alt)}"></p>'


def _listing(rows: list[dict], keys: Sequence[str], what: str) -> str:
    if not rows:
        return f'<p class="note">No {esc(what)}.</p>'
    shown = rows[:MAX_LISTED]
    more = len(rows) - len(shown)
    note = f'<p class="note">{more} more in metrics.json.</p>' if more else ""
    body = table(keys, ([r.get(k, "") for k in keys] for r in shown), left=len(keys))
    return f"<details><summary>{len(rows)} {esc(what)}</summary>{body}{note}</details>"


def render_report(metrics: dict, pngs: dict[str, Path], context: dict) -> str:
    """The whole page. `context`: model, data, config, dataset summary, notes."""
    mistakes = [
        {**m, "confidence": f"{m['confidence']:.3f}"} for m in metrics["misclassified"]
    ]
    sections = [
        f"<h1>skyclass evaluation: {esc(context['title'])}</h1>",
        f'<p class="note">{esc(context["subtitle"])}</p>',
        *(f'<p class="note">Note: {esc(n)}</p>' for n in context.get("notes", [])),
        _headline(metrics),
        "<h2>Per-class metrics</h2>", _per_class_table(metrics),
        "<h2>Confusion matrix</h2>", _confusion_table(metrics), _legend(metrics),
        _image("confusion_matrix", pngs, "confusion matrix"),
        "<h2>Training curves</h2>", _image("curves", pngs, "training curves"),
        "<h2>Misclassified images</h2>", _image("misclassified", pngs, "misclassified images"),
        _listing(mistakes, ("path", "true", "predicted", "confidence"), "misclassified files"),
        "<h2>Correctly classified images</h2>", _image("correct", pngs, "correct images"),
        "<h2>Skipped files</h2>",
        _listing(metrics.get("skipped", []), ("path", "reason", "detail"), "skipped files"),
        "<h2>Model</h2>", table(("", "value"), _flatten(context.get("model", {})), left=2),
        "<h2>Training config</h2>",
        table(("", "value"), _flatten(context.get("config", {})), left=2)
        if context.get("config") else '<p class="note">No training config recorded.</p>',
        "<h2>Data</h2>", table(("", "value"), _flatten(context.get("data", {})), left=2),
        _dataset_summary(context.get("summary", {})),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>skyclass evaluation: {esc(context['title'])}</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def write_report(path: Path, metrics: dict, pngs: dict[str, Path], context: dict) -> Path:
    path.write_text(render_report(metrics, pngs, context), encoding="utf-8")
    return path
