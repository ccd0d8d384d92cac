"""`skyclass predict TARGET IMAGE...`."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "predict",
        help="classify images with a bundle folder or a deployed/local skyclass API",
        description=(
            "TARGET is a bundle folder (or s3://bucket/prefix) for inference in this process, "
            "or an http(s):// URL of `skyclass serve` / the Lambda API, to which each image is "
            "POSTed as multipart/form-data (field 'file'). Exit code 1 if any image failed."
        ),
    )
    parser.add_argument("target", metavar="TARGET", help="bundle folder, s3:// URI or http(s) URL")
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="image files to classify")
    parser.add_argument("--top-k", type=int, default=3,
                        help="how many classes to show per image (default 3)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for an HTTP answer (default 30)")
    parser.set_defaults(handler=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from skyclass.predict import PredictConfig, format_table, predict

    results = predict(PredictConfig(target=args.target, images=args.images, top_k=args.top_k,
                                    timeout=args.timeout))
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 1 if any("predictions" not in r for r in results) else 0
