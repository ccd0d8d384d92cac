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
# What the "Model" table shows, in this order: facts a reader needs, not a checkpoint's
# internals (format version, GradScaler state, dataset fingerprint...).
MODEL_ROWS = (
    ("name", "model name"),
    ("version", "model version"),
    ("bundle", "bundle"),
    ("checkpoint", "checkpoint"),
    ("which", "checkpoint chosen"),
    ("epoch", "epoch"),
    ("architecture", "architecture"),
    ("width_mult", "width"),
    ("training_metrics.test_acc", "test accuracy (scored once, after training)"),
    ("training_metrics.val_acc", "validation accuracy (chose this checkpoint)"),
    ("training_metrics.best_epoch", "best epoch"),
    ("training_metrics.train_acc", "train accuracy (augmented images)"),
    ("training_metrics.epoch_seconds", "seconds per epoch"),
    ("training_metrics.images_per_s", "training images/s"),
    ("skyclass_version", "skyclass version"),
    ("created_at", "exported at"),
)
# The training settings a person chooses (recipe, options); runtime internals such as
# threads, workers, quiet or the output path are left out (all of them: RUN_DIR/config.json).
SETTING_ROWS = (
    "recipe",
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "nesterov",
    "scheduler",
    "warmup_epochs",
    "weight_decay",
    "l1",
    "l2",
    "label_smoothing",
    "unfreeze_from",
    "backbone_lr_mult",
    "width_mult",
    "dropout",
    "pretrained",
    "balance",
    "grad_clip",
    "plateau_factor",
    "plateau_patience",
    "augment.rotate_limit",
    "augment.hflip",
    "augment.rgb_shift",
    "augment.cutout_frac",
    "augment.cutout_p",
    "augment.crop_scale_min",
    "seed",
)
# Shown only where the value says something (an LR plateau factor without plateau does not).
PLATEAU_ONLY = ("plateau_factor", "plateau_patience")

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


def show(value: object) -> str:
    """A value as a person reads it: 0.47916666666666667 -> 0.4792, 1e-05, yes/no, none."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "none"
    if isinstance(value, float):
        if value == 0:
            return "0"
        return f"{value:.0e}".replace("e-0", "e-") if abs(value) < 1e-3 else f"{value:.4g}"
    return str(value)


def _model_rows(model: dict) -> list[tuple[str, str]]:
    flat = dict(_flatten(model))
    if "checkpoint" in model and "bundle" not in model:
        flat.pop("version", None)  # a checkpoint's "version" is its file format's
    rows = []
    for key, label in MODEL_ROWS:
        value = flat.get(key)
        if value is None:
            continue
        if key.endswith("_acc"):
            rows.append((label, f"{value:.2%}"))
        else:
            rows.append((label, show(value)))
    return rows


def _setting_rows(config: dict) -> list[tuple[str, str]]:
    flat = dict(_flatten(config))
    keys = [k for k in SETTING_ROWS if k in flat]
    if flat.get("scheduler") != "plateau":
        keys = [k for k in keys if k not in PLATEAU_ONLY]
    return [(k.replace("augment.", "augment ").replace("_", " "), show(flat[k])) for k in keys]


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
        items.append(("unreadable files, not scored", len(metrics["skipped"])))
    return (
        '<div class="headline">'
        + "".join(f"<div>{esc(label)}<b>{esc(value)}</b></div>" for label, value in items)
        + "</div>"
    )


def _per_class_table(metrics: dict) -> str:
    rows = [
        (name, _fmt(s["precision"]), _fmt(s["recall"]), _fmt(s["f1"]), s["support"])
        for name, s in metrics["per_class"].items()
    ]
    for label, key in (("macro avg", "macro_avg"), ("weighted avg", "weighted_avg")):
        avg = metrics[key]
        rows.append(
            (
                label,
                _fmt(avg["precision"]),
                _fmt(avg["recall"]),
                _fmt(avg["f1"]),
                metrics["num_images"],
            )
        )
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
            (
                name,
                *(c.get(k, "") for k in cols),
                ", ".join(f"{r}: {n}" for r, n in (c.get("skipped") or {}).items()),
            )
            for name, c in summary["classes"].items()
        ]
        parts = [table(("class", *cols, "left out by prepare"), rows, left=1)]
        facts = [(k, summary.get(k)) for k in ("source", "created", "size", "resize")]
        facts += [
            (PREPARE_TOTALS.get(k, f"total {k}"), v)
            for k, v in (summary.get("totals") or {}).items()
        ]
        parts.append(table(("", "value"), [f for f in facts if f[1] is not None], left=2))
        return "".join(parts)
    counts = summary.get("files_per_class", {})
    return table(("class", "files"), counts.items())


PREPARE_TOTALS = {
    "skipped": "photos left out by prepare (unreadable, duplicates, too small, "
    "label conflicts: reasons in the dataset's report.json)"
}


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


def _data_rows(data: dict) -> list[tuple[str, str]]:
    """The evaluated data. Unreadable files are counted in the headline and listed under
    "Skipped files"; the only "left out" count here is prepare's, with its meaning."""
    labels = {"evaluated": "images scored"}
    return [(labels.get(k, k), show(v)) for k, v in data.items() if k != "skipped"]


def render_report(metrics: dict, pngs: dict[str, Path], context: dict) -> str:
    """The whole page. `context`: model, data, config, dataset summary, notes."""
    mistakes = [{**m, "confidence": f"{m['confidence']:.3f}"} for m in metrics["misclassified"]]
    sections = [
        f"<h1>skyclass evaluation: {esc(context['title'])}</h1>",
        f'<p class="note">{esc(context["subtitle"])}</p>',
        *(f'<p class="note">Note: {esc(n)}</p>' for n in context.get("notes", [])),
        _headline(metrics),
        "<h2>Per-class metrics</h2>",
        _per_class_table(metrics),
        "<h2>Confusion matrix</h2>",
        _confusion_table(metrics),
        _legend(metrics),
        _image("confusion_matrix", pngs, "confusion matrix"),
        "<h2>Training curves</h2>",
        _image("curves", pngs, "training curves"),
        "<h2>Misclassified images</h2>",
        _image("misclassified", pngs, "misclassified images"),
        _listing(mistakes, ("path", "true", "predicted", "confidence"), "misclassified files"),
        "<h2>Correctly classified images</h2>",
        _image("correct", pngs, "correct images"),
        "<h2>Skipped files</h2>",
        '<p class="note">Files of the evaluated data that could not be read, so they are '
        "not in the numbers above.</p>",
        _listing(metrics.get("skipped", []), ("path", "reason", "detail"), "skipped files"),
        "<h2>Model</h2>",
        table(("", "value"), _model_rows(context.get("model", {})), left=2),
        "<h2>Training settings</h2>",
        table(("", "value"), _setting_rows(context.get("config", {})), left=2)
        + '<p class="note">All values, runtime ones too, are in the run\'s config.json.</p>'
        if context.get("config")
        else '<p class="note">No training settings recorded.</p>',
        "<h2>Data</h2>",
        table(("", "value"), _data_rows(context.get("data", {})), left=2),
        _dataset_summary(context.get("summary", {})),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>skyclass evaluation: {esc(context['title'])}</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def write_report(path: Path, metrics: dict, pngs: dict[str, Path], context: dict) -> Path:
    path.write_text(render_report(metrics, pngs, context), encoding="utf-8")
    return path
