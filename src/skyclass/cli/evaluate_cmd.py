"""`skyclass evaluate RUN_DIR|BUNDLE_DIR [--data DATASET.zip|FOLDER] [--out DIR]`."""

from __future__ import annotations

import argparse

from skyclass.cli.helpfmt import HelpFormatter, examples


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"empty name in --short-names {text!r}")
    return names


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="score a run or an exported bundle; write curves, confusion matrix, galleries "
             "and report.html",
        description=(
            "Evaluate a trained run (its best or last checkpoint) or an exported bundle. "
            "Without --data a run is scored on the test split of the dataset it was trained "
            "on. --data FOLDER (class folders of raw photos, any size) goes through exactly the "
            "serving preprocessing, so the accuracy is what the deployed API would score; "
            "unreadable files are skipped and listed."
        ),
        formatter_class=HelpFormatter,
        epilog=examples(
            "skyclass evaluate runs/r1                       # -> runs/r1/report/report.html",
            "skyclass evaluate runs/r1 --data new_photos/    # photos it never saw",
            "skyclass evaluate bundle/ --data new_photos/    # the exported model, no torch",
        ),
    )
    parser.add_argument("target", metavar="RUN_DIR|BUNDLE_DIR",
                        help="training run directory (or a .pt checkpoint) or exported bundle")
    parser.add_argument("--data", metavar="DATASET.zip|FOLDER",
                        help="data to evaluate on (default: the run's own dataset)")
    parser.add_argument("--split", choices=("test", "val", "train"), default="test",
                        help="split of a dataset zip to evaluate (default test: scored by "
                             "no selection; val chose best.pt, train is what it learnt from)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="which checkpoint of a run (default best)")
    parser.add_argument("--out", metavar="DIR",
                        help="report folder (default RUN_DIR/report, or BUNDLE_DIR-report)")
    parser.add_argument("--short-names", type=_names, metavar="A,B,...",
                        help="comma-separated class labels for the plots, in class order "
                             "(default: initials such as FB,LQ,SQ,WD when names are long)")
    parser.add_argument("--batch-size", type=_positive, default=32,
                        help="images per forward pass (default 32)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    parser.set_defaults(handler=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from skyclass.evaluate import EvaluateConfig, evaluate, summary_table
    from skyclass.inputs import BUNDLE, CHECKPOINT, RUN_DIR, require

    require(args.target, (RUN_DIR, CHECKPOINT, BUNDLE), "evaluate",
            "a run folder (from `skyclass train`) or a bundle (from `skyclass export`)")
    metrics = evaluate(EvaluateConfig(
        target=args.target, data=args.data, split=args.split, checkpoint=args.checkpoint,
        out=args.out, short_names=args.short_names, batch_size=args.batch_size,
        quiet=args.quiet,
    ))
    if not args.quiet:
        print(summary_table(metrics))
        for item in metrics["skipped"][:20]:
            print(f"skipped {item['path']}: {item['reason']} {item.get('detail', '')}".rstrip())
        if len(metrics["skipped"]) > 20:
            print(f"... and {len(metrics['skipped']) - 20} more skipped (see metrics.json)")
        print(f"wrote {metrics['report_dir']}/report.html")
    return 0
