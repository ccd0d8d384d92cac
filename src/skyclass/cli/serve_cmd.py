"""`skyclass serve BUNDLE_DIR`: the Lambda handler behind a local HTTP server."""

from __future__ import annotations

import argparse

from skyclass.cli.helpfmt import HelpFormatter, examples


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve",
        help="serve a bundle over HTTP locally, through the same handler as on AWS Lambda",
        description=(
            "Serve BUNDLE (a folder or s3://bucket/prefix) on http://HOST:PORT/. Every request "
            "becomes an API Gateway v2 event for the Lambda handler. GET / shows an upload page "
            "in a browser (JSON health otherwise, or at /health); POST / classifies an image "
            "(multipart field 'file' or a raw image body), ?top_k=N."
        ),
        formatter_class=HelpFormatter,
        epilog=examples(
            "skyclass serve bundle/                          # http://127.0.0.1:8000",
            "skyclass serve bundle/ --port 0                 # any free port",
            "curl -F file=@photo.jpg http://127.0.0.1:8000/",
        ),
    )
    parser.add_argument("bundle", metavar="BUNDLE_DIR", help="bundle folder or s3://bucket/prefix")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=8000,
                        help="port to listen on (default 8000; 0 picks a free one)")
    parser.add_argument("--cors", metavar="ORIGIN", default=None,
                        help="let pages of ORIGIN (e.g. https://example.org, or '*' for any "
                             "site) call the API from a browser; default: none, only the "
                             "upload page served here")
    parser.add_argument("--max-predictions", type=int, default=None, metavar="N",
                        help="predictions decoded at once; more get a quick 503 "
                             "(default: CPU cores, at most 4)")
    parser.add_argument("--quiet", action="store_true", help="no access log")
    parser.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from skyclass.inputs import BUNDLE, require
    from skyclass.serving.local_server import DEFAULT_MAX_PREDICTIONS, serve

    if not str(args.bundle).startswith("s3://"):
        require(args.bundle, (BUNDLE,), "serve", "a bundle folder from `skyclass export`")
    serve(args.bundle, host=args.host, port=args.port, quiet=args.quiet, cors=args.cors,
          max_predictions=args.max_predictions or DEFAULT_MAX_PREDICTIONS)
    return 0
