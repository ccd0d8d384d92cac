"""The `evaluate` stage: model + data -> predictions -> metrics -> plots -> report.html."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from skyclass.errors import EvaluateError
from skyclass.evaluate import honesty, plots
from skyclass.evaluate.config import EvaluateConfig
from skyclass.evaluate.html import write_report
from skyclass.evaluate.metrics import classification_report
from skyclass.evaluate.predictions import (
    EvalData,
    ModelSource,
    Predictions,
    dataset_of_run,
    load_data,
    load_model,
    predict,
)

REPORT_FILES = (
    "metrics.json",
    "curves.png",
    "confusion_matrix.png",
    "misclassified.png",
    "correct.png",
    "report.html",
)


def default_out(model: ModelSource) -> Path:
    """RUN_DIR/report; a bundle is deployed as it is, so its report goes beside it."""
    if model.kind == "bundle":
        return model.path.parent / f"{model.path.name}-report"
    run_dir = model.path if model.path.is_dir() else model.path.parent
    return run_dir / "report"


def _data_path(config: EvaluateConfig, model: ModelSource) -> Path:
    if config.data:
        return Path(config.data)
    return dataset_of_run(model)


def _history(model: ModelSource) -> list[dict]:
    if model.kind != "run":
        return []
    from skyclass.checkpoint import read_history

    return read_history(model.path if model.path.is_dir() else model.path.parent)


def _metrics(
    preds: Predictions,
    data: EvalData,
    model: ModelSource,
    config: EvaluateConfig,
    labels: list[str],
) -> dict:
    metrics = classification_report(preds.targets, preds.probs, preds.class_names, preds.paths)
    metrics["short_names"] = labels
    metrics["skipped"] = preds.skipped
    metrics["source"] = {
        "model": str(model.path),
        "model_kind": model.kind,
        "checkpoint": model.info.get("checkpoint"),
        "epoch": model.info.get("epoch"),
        "data": str(data.path),
        "data_kind": data.kind,
        "split": data.split,
        "preprocessing": data.transform,
        "notes": data.notes,
        **config.extra,
    }
    return metrics


def _plots(
    preds: Predictions, metrics: dict, labels: list[str], model: ModelSource, out: Path
) -> dict[str, Path]:
    pngs: dict[str, Path] = {}
    curves = plots.plot_curves(_history(model), out / "curves.png", model.config.get("scheduler"))
    if curves is not None:
        pngs["curves"] = curves
    else:
        (out / "curves.png").unlink(missing_ok=True)  # never leave a stale run's curves
    cm = np.asarray(metrics["confusion_matrix"])
    pngs["confusion_matrix"] = plots.plot_confusion(cm, labels, out / "confusion_matrix.png")
    pred = preds.probs.argmax(axis=1)
    confidence = preds.probs.max(axis=1)
    targets = preds.targets

    def read(i: int) -> bytes:
        return preds.samples[i].read()

    mistakes = [
        {
            "index": int(i),
            "target": int(targets[i]),
            "pred": int(pred[i]),
            "confidence": float(confidence[i]),
        }
        for i in np.flatnonzero(pred != targets)
    ]
    rows = plots.misclassified_grid(mistakes, len(labels))
    pngs["misclassified"] = plots.plot_misclassified(rows, labels, read, out / "misclassified.png")
    picked = plots.pick_correct(targets, pred)
    pngs["correct"] = plots.plot_correct(
        picked, targets, confidence, labels, read, out / "correct.png"
    )
    return pngs


def _context(model: ModelSource, data: EvalData, metrics: dict, title: str | None) -> dict:
    split = f", {data.split} split" if data.split else ""
    return {
        "title": title or model.path.name,
        "subtitle": f"{model.kind} {model.path} on {data.kind} {data.path}{split}; "
        f"{data.transform}",
        "notes": data.notes,
        "model": model.info,
        "config": model.config,
        "data": {
            "path": str(data.path),
            "kind": data.kind,
            "split": data.split,
            "preprocessing": data.transform,
            "evaluated": metrics["num_images"],
            "skipped": len(metrics["skipped"]),
        },
        "summary": data.summary,
    }


def evaluate(config: EvaluateConfig) -> dict:
    """Evaluate and write the report folder; returns the metrics (as in metrics.json)."""
    model = load_model(config.target, config.checkpoint)
    class_names = list(model.predictor.class_names)
    try:
        labels = plots.short_names(class_names, config.short_names)
    except ValueError as exc:
        raise EvaluateError(str(exc)) from exc
    data = load_data(_data_path(config, model), class_names, config.split)
    preds = predict(model.predictor, data, config.batch_size, config.quiet)
    metrics = _metrics(preds, data, model, config, labels)
    metrics["overlap_with_training"] = honesty.overlap(model, data, dataset_of_run)
    metrics["warnings"] = honesty.findings(
        metrics,
        preds.targets.tolist(),
        _history(model),
        model.info.get("epoch"),
        metrics["overlap_with_training"],
        model.info.get("training_metrics") or {},
    )
    data.notes.extend(f"WARNING: {w}" for w in metrics["warnings"])
    out = Path(config.out) if config.out else default_out(model)
    out.mkdir(parents=True, exist_ok=True)
    pngs = _plots(preds, metrics, labels, model, out)
    for m in metrics["misclassified"]:
        m.pop("index", None)  # an index into this run's sample order: meaningless outside
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_report(out / "report.html", metrics, pngs, _context(model, data, metrics, config.title))
    metrics["report_dir"] = str(out)
    return metrics


def summary_table(metrics: dict) -> str:
    """The console's headline numbers and per-class table."""
    n, wrong = metrics["num_images"], len(metrics["misclassified"])
    lines = [f"accuracy {metrics['accuracy']:.2%} ({n - wrong}/{n} images)"]
    if len(metrics["class_names"]) > 2:
        lines[0] += f"   top-2 {metrics['top2_accuracy']:.2%}"
    if metrics.get("skipped"):
        lines[0] += f"   skipped {len(metrics['skipped'])} file(s) (listed in metrics.json)"
    width = max(12, *(len(c) for c in metrics["class_names"]))
    lines.append(f"{'class':<{width}}  precision  recall      F1  support")
    rows = [(name, s) for name, s in metrics["per_class"].items()]
    rows += [
        ("macro avg", {**metrics["macro_avg"], "support": n}),
        ("weighted avg", {**metrics["weighted_avg"], "support": n}),
    ]
    for name, s in rows:
        lines.append(
            f"{name:<{width}}  {s['precision']:9.3f}  {s['recall']:6.3f}  "
            f"{s['f1']:6.3f}  {s['support']:7d}"
        )
    lines.append("confusion matrix (rows: true, columns: predicted)")
    warnings = [f"warning: {w}" for w in metrics.get("warnings", [])]
    short = metrics.get("short_names") or metrics["class_names"]
    cell = max(6, *(len(s) for s in short))
    lines.append(" " * cell + "".join(f"{s:>{cell + 1}}" for s in short))
    for s, row in zip(short, metrics["confusion_matrix"], strict=True):
        lines.append(f"{s:<{cell}}" + "".join(f"{v:>{cell + 1}d}" for v in row))
    return "\n".join(lines + warnings)
