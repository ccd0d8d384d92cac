"""`skyclass prepare RAW_DIR --out DATASET.zip`."""

from __future__ import annotations

import argparse

from skyclass.cli.options import add_command, add_options, config_from_args
from skyclass.prepare.config import PrepareConfig

# Given by the command itself: `run` has its own RAW_DIR, --out and --quiet, and no --decisions.
OWN_FIELDS = ("raw", "out", "quiet", "decisions")


def add_prepare_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `prepare` and `run`: every PrepareConfig field but OWN_FIELDS."""
    add_options(parser.add_argument_group("prepare"), PrepareConfig, skip=OWN_FIELDS)


def prepare_config_from_args(args: argparse.Namespace, out: str) -> PrepareConfig:
    return config_from_args(PrepareConfig, args, out=out)


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(
        sub,
        "prepare",
        run_prepare,
        help="scan, validate, dedupe, resize and split a photo folder into a dataset zip",
        description=(
            "Turn RAW_DIR/<class>/**/<photo> (or a zip of it) into a dataset zip with "
            "train/, val/ and test/ images, manifest.csv and report.json. Every file is either "
            "kept or listed as skipped with its reason."
        ),
        examples=(
            "skyclass prepare my_photos/ --out data.zip",
            "skyclass prepare my_photos.zip --out data.zip --size 160 --val-fraction 0.2",
            "skyclass prepare ../shared/datasets/bird_drone --out bird_drone.zip --workers 2",
        ),
    )
    add_options(parser, PrepareConfig, only=OWN_FIELDS)
    add_prepare_options(parser)


def run_prepare(args: argparse.Namespace) -> int:
    from skyclass.inputs import FOLDER, PHOTO_FOLDER, PHOTO_ZIP, require, require_zip_name
    from skyclass.prepare import prepare, summary_text
    from skyclass.prepare.decisions import decisions_summary

    require(
        args.raw,
        (PHOTO_FOLDER, PHOTO_ZIP, FOLDER),
        "prepare",
        "a folder (or zip) of class folders of photos",
    )
    require_zip_name(args.out, "prepare", args.raw)
    report = prepare(prepare_config_from_args(args, args.out))
    if not args.quiet:
        print(summary_text(report))
        if "decisions" in report:
            print(decisions_summary(report["decisions"]))
        print(f"wrote {args.out} ({report['totals']['kept']} images, {report['seconds']:.1f} s)")
    return 0
