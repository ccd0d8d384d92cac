"""`skyclass predict TARGET IMAGE|FOLDER... [--csv FILE] [--jsonl FILE]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from skyclass.cli.options import add_command, add_options, config_from_args
from skyclass.predict import PredictConfig


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(
        sub,
        "predict",
        run_predict,
        help="classify images or folders with a bundle folder or a deployed/local skyclass API",
        description=(
            "TARGET is a bundle folder (or s3://bucket/prefix) for batched inference in this "
            "process, or an http(s):// URL of `skyclass serve` / the Lambda API, to which each "
            "image is POSTed as multipart/form-data (field 'file'). Folders are searched "
            "recursively. --csv and --jsonl write every class's probability for every image. "
            "Unreadable files are reported one by one; the exit code is 1 if any failed."
        ),
        examples=(
            "skyclass predict bundle/ photo.jpg",
            "skyclass predict bundle/ new_photos/ --csv predictions.csv",
            "skyclass predict http://127.0.0.1:8000 photo.jpg --json",
        ),
    )
    add_options(parser, PredictConfig)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--csv",
        type=Path,
        metavar="FILE",
        help="write one row per image: top class, its probability, every "
        "class's probability, error",
    )
    parser.add_argument(
        "--jsonl",
        type=Path,
        metavar="FILE",
        help="write one JSON object per image (top-k, every class's probability, model)",
    )


def run_predict(args: argparse.Namespace) -> int:
    from skyclass.predict import (
        check_output,
        csv_text,
        format_table,
        jsonl_text,
        predict,
        write_text,
    )

    outputs = [
        (path, render)
        for path, render in ((args.csv, csv_text), (args.jsonl, jsonl_text))
        if path is not None
    ]
    for path, _ in outputs:
        check_output(path)
    results = predict(config_from_args(PredictConfig, args), all_classes=bool(outputs))
    for path, render in outputs:
        write_text(path, render(results))
    failed = sum("predictions" not in r for r in results)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    elif not args.quiet:
        print(format_table(results))
    if not args.quiet or failed:
        written = "".join(f"; wrote {path}" for path, _ in outputs)
        print(
            f"{len(results)} images: {len(results) - failed} classified, {failed} could not "
            f"be read{written}",
            file=sys.stderr,
        )
    return 1 if failed else 0
