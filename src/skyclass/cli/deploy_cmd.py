"""`skyclass deploy BUNDLE_DIR --bucket B` and `skyclass deploy --remove`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from skyclass.cli.helpfmt import HelpFormatter, examples


def register(sub: argparse._SubParsersAction) -> None:
    from skyclass.deploy.config import (  # standard library only
        ARCHITECTURES,
        DEFAULT_ARCH,
        DEFAULT_MEMORY_MB,
        MAX_TIMEOUT_S,
    )

    parser = sub.add_parser(
        "deploy",
        help="upload a bundle to S3 and deploy the handler to AWS Lambda (Serverless Framework)",
        description=(
            "Upload BUNDLE_DIR's served model and skyclass.json to s3://BUCKET/PREFIX (unchanged "
            "files are skipped, every file is verified; model.pt stays local), then run the "
            "Serverless Framework service in deploy/: `serverless "
            "deploy`, or only `serverless package` with --package-only (no AWS account "
            "needed). Prints the endpoint and a ready `skyclass predict` line. Needs Node.js "
            "and `make node` (npm ci in deploy/)."
        ),
        formatter_class=HelpFormatter,
        epilog=examples(
            "skyclass deploy bundle/ --bucket my-models            # prints the endpoint",
            "skyclass deploy bundle/ --bucket my-models --package-only   # no AWS account needed",
            "skyclass deploy --remove --stage dev                  # tear the stack down",
        ),
    )
    parser.add_argument(
        "bundle",
        metavar="BUNDLE_DIR",
        nargs="?",
        type=Path,
        help="bundle folder written by `skyclass export`",
    )
    parser.add_argument("--bucket", help="S3 bucket for the model (must exist)")
    parser.add_argument(
        "--prefix",
        help="key prefix in the bucket "
        "(default models/<model name>/<model version> from skyclass.json)",
    )
    parser.add_argument("--stage", default="dev", help="Serverless stage (default dev)")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION or us-east-1)")
    parser.add_argument(
        "--memory",
        type=int,
        default=DEFAULT_MEMORY_MB,
        help=f"Lambda memory in MB; CPU grows with it (default {DEFAULT_MEMORY_MB})",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=MAX_TIMEOUT_S,
        help=f"Lambda timeout in s, at most {MAX_TIMEOUT_S} (API Gateway stops "
        f"at 29; default {MAX_TIMEOUT_S})",
    )
    parser.add_argument(
        "--private",
        action="store_true",
        help="require an API key (x-api-key header); the key is printed",
    )
    parser.add_argument(
        "--package-only",
        action="store_true",
        help="build the Lambda zip (deploy/.serverless/skyclass.zip) but do not "
        "deploy; uploads the bundle only if AWS credentials are set",
    )
    parser.add_argument(
        "--no-upload",
        dest="upload",
        action="store_false",
        help="do not upload the bundle (it is already in S3)",
    )
    parser.add_argument(
        "--remove", action="store_true", help="remove the deployed stack (the bundle stays in S3)"
    )
    parser.add_argument(
        "--arch",
        choices=tuple(ARCHITECTURES),
        default=DEFAULT_ARCH,
        help="Lambda architecture: x86_64 or arm64 (Graviton, ~20%% cheaper per "
        "GB-second); picks the manylinux wheels, so give --wheelhouse "
        f"of that architecture (default {DEFAULT_ARCH})",
    )
    parser.add_argument(
        "--wheelhouse",
        type=Path,
        metavar="DIR",
        help="install the Lambda's Python wheels from DIR only (offline)",
    )
    parser.add_argument(
        "--download-wheels",
        type=Path,
        metavar="DIR",
        help="only fill DIR with the Lambda's wheels (for --wheelhouse), exit",
    )
    parser.add_argument(
        "--service-dir",
        type=Path,
        metavar="DIR",
        help="the Serverless service folder (default: deploy/ of this checkout)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    parser.set_defaults(handler=run_deploy)


def run_deploy(args: argparse.Namespace) -> int:
    from skyclass.deploy import DeployConfig, default_service_dir, deploy, download_wheels

    service_dir = args.service_dir or default_service_dir()
    if args.download_wheels is not None:
        wheels = download_wheels(service_dir, args.download_wheels, arch=args.arch)
        print(f"{len(wheels)} {args.arch} wheels in {args.download_wheels}")
        return 0
    if args.bundle is not None and not args.remove:
        from skyclass.inputs import BUNDLE, require

        require(args.bundle, (BUNDLE,), "deploy", "a bundle folder from `skyclass export`")
    config = DeployConfig(
        bundle=args.bundle,
        bucket=args.bucket,
        prefix=args.prefix,
        stage=args.stage,
        region=args.region,
        memory=args.memory,
        timeout=args.timeout,
        private=args.private,
        package_only=args.package_only,
        remove=args.remove,
        upload=args.upload,
        wheelhouse=args.wheelhouse,
        service_dir=service_dir,
        arch=args.arch,
    )
    result = deploy(config)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0
