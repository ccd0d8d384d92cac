"""`skyclass review DATASET.zip --out REVIEW_DIR [--run RUN_DIR] [--serve]`."""

from __future__ import annotations

import argparse

from skyclass.cli.options import add_command, add_options, config_from_args
from skyclass.review.config import ReviewConfig, ReviewPage


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
    add_options(parser, ReviewConfig, skip=("quiet",))
    add_options(parser, ReviewPage)
    add_options(parser, ReviewConfig, only=("quiet",))


def run_review(args: argparse.Namespace) -> int:
    from skyclass.review import DECISIONS_NAME, GALLERY_NAME, ISSUES_NAME, review

    config = config_from_args(ReviewConfig, args)
    page = config_from_args(ReviewPage, args)
    summary = review(config)
    if not config.quiet:
        if summary.get("reused"):
            print(f"{args.out} already holds the review of this dataset (--recompute to redo)")
        print(summary_text(summary))
        print(f"wrote {config.out / ISSUES_NAME}, {config.out / GALLERY_NAME}")
    if page.serve:
        from skyclass.review.server import serve

        serve(config.out, port=page.port)
    elif not config.quiet:
        print(
            f"next: skyclass review {args.dataset} --out {args.out} --serve   (decide), then "
            f"skyclass prepare RAW --decisions {config.out / DECISIONS_NAME} --out NEW.zip"
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
