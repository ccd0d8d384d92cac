"""`skyclass evaluate RUN_DIR|BUNDLE_DIR [--data DATASET.zip|FOLDER] [--out DIR]`."""

from __future__ import annotations

import argparse

from skyclass.cli.options import add_command, add_options, config_from_args
from skyclass.evaluate.config import EvaluateConfig


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(
        sub,
        "evaluate",
        run_evaluate,
        help="score a run or an exported bundle; write curves, confusion matrix, galleries "
        "and report.html",
        description=(
            "Evaluate a trained run (its best or last checkpoint) or an exported bundle. "
            "Without --data a run is scored on the test split of the dataset it was trained "
            "on. --data FOLDER (class folders of raw photos, any size) goes through exactly the "
            "serving preprocessing, so the accuracy is what the deployed API would score; "
            "unreadable files are skipped and listed."
        ),
        examples=(
            "skyclass evaluate runs/r1                       # -> runs/r1/report/report.html",
            "skyclass evaluate runs/r1 --data new_photos/    # photos it never saw",
            "skyclass evaluate bundle/ --data new_photos/    # the exported model, no torch",
        ),
    )
    add_options(parser, EvaluateConfig)


def run_evaluate(args: argparse.Namespace) -> int:
    from skyclass.evaluate import evaluate, summary_table
    from skyclass.inputs import BUNDLE, CHECKPOINT, RUN_DIR, require

    require(
        args.target,
        (RUN_DIR, CHECKPOINT, BUNDLE),
        "evaluate",
        "a run folder (from `skyclass train`) or a bundle (from `skyclass export`)",
    )
    metrics = evaluate(config_from_args(EvaluateConfig, args))
    if not args.quiet:
        print(summary_table(metrics))
        for item in metrics["skipped"][:20]:
            print(f"skipped {item['path']}: {item['reason']} {item.get('detail', '')}".rstrip())
        if len(metrics["skipped"]) > 20:
            print(f"... and {len(metrics['skipped']) - 20} more skipped (see metrics.json)")
        print(f"wrote {metrics['report_dir']}/report.html")
    return 0
