"""`skyclass deploy BUNDLE_DIR --bucket B` and `skyclass deploy --remove`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from skyclass.cli.options import add_command, add_options, config_from_args
from skyclass.deploy.config import DeployConfig  # standard library only


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(
        sub,
        "deploy",
        run_deploy,
        help="upload a bundle to S3 and deploy the handler to AWS Lambda (Serverless Framework)",
        description=(
            "Upload BUNDLE_DIR's served model and skyclass.json to s3://BUCKET/PREFIX (unchanged "
            "files are skipped, every file is verified; model.pt stays local), then run the "
            "Serverless Framework service in deploy/: `serverless "
            "deploy`, or only `serverless package` with --package-only (no AWS account "
            "needed). Prints the endpoint and a ready `skyclass predict` line. Needs Node.js "
            "and `make node` (npm ci in deploy/)."
        ),
        examples=(
            "skyclass deploy bundle/ --bucket my-models            # prints the endpoint",
            "skyclass deploy bundle/ --bucket my-models --package-only   # no AWS account needed",
            "skyclass deploy --remove --stage dev                  # tear the stack down",
        ),
    )
    add_options(parser, DeployConfig, skip=("service_dir",))
    # Not DeployConfig's: another mode (fill a wheelhouse, deploy nothing) and the output form.
    parser.add_argument(
        "--download-wheels",
        type=Path,
        metavar="DIR",
        help="only fill DIR with the Lambda's wheels (for --wheelhouse), exit",
    )
    add_options(parser, DeployConfig, only=("service_dir",))
    parser.add_argument("--json", action="store_true", help="print a JSON summary at the end")


def run_deploy(args: argparse.Namespace) -> int:
    from skyclass.deploy import deploy, download_wheels

    if args.download_wheels is not None:
        wheels = download_wheels(Path(args.service_dir), args.download_wheels, arch=args.arch)
        print(f"{len(wheels)} {args.arch} wheels in {args.download_wheels}")
        return 0
    if args.bundle is not None and not args.remove:
        from skyclass.inputs import BUNDLE, require

        require(args.bundle, (BUNDLE,), "deploy", "a bundle folder from `skyclass export`")
    result = deploy(config_from_args(DeployConfig, args))
    if args.json:
        print(json.dumps(result, indent=2))
    return 0
