"""`evaluate`: score a trained run or an exported bundle and write a report a person can read.

load model -> load data (a split of a dataset zip, or a raw folder) -> predict -> metrics ->
plots -> report.html (`pipeline.py`). Everything lands in one folder (default RUN_DIR/report/):
metrics.json, curves.png, confusion_matrix.png, misclassified.png, correct.png, report.html.

Importing the package is light (the CLI reads `EvaluateConfig` on every start); `evaluate`,
`summary_table`, `REPORT_FILES` and `default_out` load the pipeline (numpy, matplotlib) when
first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from skyclass.evaluate.config import EvaluateConfig

if TYPE_CHECKING:
    from skyclass.evaluate.pipeline import REPORT_FILES, default_out, evaluate, summary_table

__all__ = ["REPORT_FILES", "EvaluateConfig", "default_out", "evaluate", "summary_table"]
_PIPELINE = ("REPORT_FILES", "default_out", "evaluate", "summary_table")


def __getattr__(name: str) -> Any:
    if name in _PIPELINE:
        from skyclass.evaluate import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
