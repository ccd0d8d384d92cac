"""`skyclass review DATASET.zip --out REVIEW_DIR [--run RUN_DIR] [--serve]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from skyclass.cli.options import add_command


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(
        sub,
        "review",
        run_review,
        help="find likely wrong labels, strays and cross-class copies; fix them in a browser",
        description=(
            "Score every image of DATASET.zip (all splits) out of sample: MobileNetV2 "
            "embeddings, then k-fold logistic-regression heads whose folds keep near-copies "
            "together; cleanlab ranks the likely wrong labels and outliers. Writes "
            "REVIEW_DIR/issues.csv, summary.json (per-class noise estimates) and review.html. "
            "--serve opens a page to decide about each suspect (saved to "
            "REVIEW_DIR/decisions.csv); apply them with `skyclass prepare RAW --decisions "
            "REVIEW_DIR/decisions.csv --out NEW.zip`."
        ),
        examples=(
            "skyclass review data.zip --out review/ --serve     # rank, then decide in a browser",
            "skyclass review data.zip --out review/ --run runs/r1   # the run's own backbone",
            "skyclass prepare my_photos --decisions review/decisions.csv --out data-reviewed.zip",
        ),
    )
    parser.add_argument("dataset", metavar="DATASET.zip", help="a zip written by `prepare`")
    parser.add_argument("--out", required=True, metavar="REVIEW_DIR", help="output folder")
    parser.add_argument(
        "--run",
        metavar="RUN_DIR",
        help="embed with this training run's fine-tuned backbone (default: ImageNet MobileNetV2)",
    )
    parser.add_argument("--weights", metavar="PATH", help="ImageNet MobileNetV2 weights file")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds (default 0)")
    parser.add_argument(
        "--recompute",
        action="store_true",
        help="score again even if REVIEW_DIR holds a review of this dataset",
    )
    parser.add_argument(
        "--serve", action="store_true", help="then open the review page on http://127.0.0.1:PORT/"
    )
    parser.add_argument("--port", type=int, default=8001, help="port of the page (default 8001)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no summary")


def run_review(args: argparse.Namespace) -> int:
    from skyclass.review import GALLERY_NAME, ISSUES_NAME, ReviewConfig, review

    config = ReviewConfig(
        dataset=Path(args.dataset),
        out=Path(args.out),
        run=args.run,
        folds=args.folds,
        seed=args.seed,
        weights=args.weights,
        recompute=args.recompute,
        quiet=args.quiet,
    )
    summary = review(config)
    if not args.quiet:
        if summary.get("reused"):
            print(f"{args.out} already holds the review of this dataset (--recompute to redo)")
        print(summary_text(summary))
        print(f"wrote {Path(args.out) / ISSUES_NAME}, {Path(args.out) / GALLERY_NAME}")
    if args.serve:
        from skyclass.review.server import serve

        serve(Path(args.out), port=args.port)
    elif not args.quiet:
        print(
            f"next: skyclass review {args.dataset} --out {args.out} --serve   (decide), then "
            f"skyclass prepare RAW --decisions {Path(args.out) / 'decisions.csv'} --out NEW.zip"
        )
    return 0


def summary_text(summary: dict) -> str:
    lines = [
        f"{summary['images']} images, out-of-sample accuracy "
        f"{summary['out_of_sample_accuracy']:.1%} ({summary['folds']} folds, "
        f"{summary['backbone']} embeddings); suspects: "
        + ", ".join(f"{n} {k}" for k, n in summary["issues"].items())
    ]
    for c in summary["classes"]:
        lines.append(
            f"  {c['class']}: {c['images']} images, ~{c['estimated_label_issues']} "
            f"wrong labels (estimated noise {c['estimated_noise_rate']:.1%})"
        )
    return "\n".join(lines)
