"""`skyclass serve BUNDLE_DIR`: the Lambda handler behind a local HTTP server."""

from __future__ import annotations

import argparse

from skyclass.cli.options import add_command, add_options, config_from_args
from skyclass.serving.settings import ServeConfig


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(
        sub,
        "serve",
        run_serve,
        help="serve a bundle over HTTP locally, through the same handler as on AWS Lambda",
        description=(
            "Serve BUNDLE (a folder or s3://bucket/prefix) on http://HOST:PORT/. Every request "
            "becomes an API Gateway v2 event for the Lambda handler. GET / shows an upload page "
            "in a browser (JSON health otherwise, or at /health); POST / classifies an image "
            "(multipart field 'file' or a raw image body), ?top_k=N."
        ),
        examples=(
            "skyclass serve bundle/                          # http://127.0.0.1:8000",
            "skyclass serve bundle/ --port 0                 # any free port",
            "curl -F file=@photo.jpg http://127.0.0.1:8000/",
        ),
    )
    add_options(parser, ServeConfig)


def run_serve(args: argparse.Namespace) -> int:
    from skyclass.inputs import BUNDLE, require
    from skyclass.serving.local_server import serve

    if not str(args.bundle).startswith("s3://"):
        require(args.bundle, (BUNDLE,), "serve", "a bundle folder from `skyclass export`")
    serve(config_from_args(ServeConfig, args))
    return 0
