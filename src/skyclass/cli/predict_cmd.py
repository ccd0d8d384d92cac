"""`skyclass predict TARGET IMAGE|FOLDER... [--csv FILE] [--jsonl FILE]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from skyclass.cli.helpfmt import HelpFormatter, examples


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "predict",
        help="classify images or folders with a bundle folder or a deployed/local skyclass API",
        description=(
            "TARGET is a bundle folder (or s3://bucket/prefix) for batched inference in this "
            "process, or an http(s):// URL of `skyclass serve` / the Lambda API, to which each "
            "image is POSTed as multipart/form-data (field 'file'). Folders are searched "
            "recursively. --csv and --jsonl write every class's probability for every image. "
            "Unreadable files are reported one by one; the exit code is 1 if any failed."
        ),
        formatter_class=HelpFormatter,
        epilog=examples(
            "skyclass predict bundle/ photo.jpg",
            "skyclass predict bundle/ new_photos/ --csv predictions.csv",
            "skyclass predict http://127.0.0.1:8000 photo.jpg --json",
        ),
    )
    parser.add_argument("target", metavar="TARGET", help="bundle folder, s3:// URI or http(s) URL")
    parser.add_argument("images", metavar="IMAGE|FOLDER", nargs="+",
                        help="image files and folders of images (searched recursively)")
    parser.add_argument("--top-k", type=int, default=3,
                        help="how many classes to show per image (default 3)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--csv", type=Path, metavar="FILE",
                        help="write one row per image: top class, its probability, every "
                             "class's probability, error")
    parser.add_argument("--jsonl", type=Path, metavar="FILE",
                        help="write one JSON object per image (top-k, every class's "
                             "probability, model)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="images per ONNX forward pass with a bundle (default 32)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for an HTTP answer (default 30)")
    parser.add_argument("--quiet", action="store_true",
                        help="no table, no progress bar (the files are still written)")
    parser.set_defaults(handler=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from skyclass.predict import (
        PredictConfig,
        check_output,
        csv_text,
        format_table,
        jsonl_text,
        predict,
        write_text,
    )

    outputs = [(path, render) for path, render in ((args.csv, csv_text), (args.jsonl, jsonl_text))
               if path is not None]
    for path, _ in outputs:
        check_output(path)
    results = predict(PredictConfig(target=args.target, images=args.images, top_k=args.top_k,
                                    timeout=args.timeout, batch_size=args.batch_size,
                                    quiet=args.quiet), all_classes=bool(outputs))
    for path, render in outputs:
        write_text(path, render(results))
    failed = sum("predictions" not in r for r in results)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    elif not args.quiet:
        print(format_table(results))
    if not args.quiet or failed:
        written = "".join(f"; wrote {path}" for path, _ in outputs)
        print(f"{len(results)} images: {len(results) - failed} classified, {failed} could not "
              f"be read{written}", file=sys.stderr)
    return 1 if failed else 0
