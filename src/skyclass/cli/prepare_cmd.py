"""`skyclass prepare RAW_DIR --out DATASET.zip`."""

from __future__ import annotations

import argparse

from skyclass.cli.helpfmt import HelpFormatter, examples
from skyclass.errors import PrepareError
from skyclass.images import DEFAULT_MAX_PIXELS, RESIZE_MODES
from skyclass.prepare.config import DEDUPE_MODES, OUTPUT_FORMATS, default_workers


def add_prepare_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `prepare` and `run`."""
    g = parser.add_argument_group("prepare")
    g.add_argument("--size", type=int, default=224, help="output side in pixels (default 224)")
    g.add_argument("--resize", choices=RESIZE_MODES, default="pad",
                   help="pad: keep aspect ratio, longer side = size, pad to a square (default); "
                        "fit: keep aspect ratio, no padding (not square); stretch: ignore ratio")
    g.add_argument("--val-fraction", type=float, default=0.15,
                   help="share of each class held out as the validation split, on which "
                        "train picks best.pt and steers the LR (default 0.15)")
    g.add_argument("--test-fraction", type=float, default=0.15,
                   help="share of each class held out as the test split, scored once at the "
                        "end and reported (default 0.15; with the defaults 70:15:15)")
    g.add_argument("--group-by", metavar="REGEX",
                   help="images whose path inside the class folder gives the same first "
                        "capture group stay on one side of every split, e.g. frames of one "
                        r"video: '^(V_[A-Z]+_\d+)_'")
    g.add_argument("--groups", metavar="FILE.csv", dest="groups_file",
                   help="CSV of path,group (path as in report.json, e.g. bird/x.jpg): each "
                        "group stays on one side of every split")
    g.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    g.add_argument("--dedupe", choices=DEDUPE_MODES, default="near",
                   help="near: exact copies + perceptual near-copies under rotation/flip "
                        "(default); exact: identical bytes only; off: keep everything")
    g.add_argument("--near-threshold", type=int, default=6,
                   help="max differing bits (of 64) of the perceptual hash, under any "
                        "rotation/flip, for near-copy candidates (default 6); a candidate "
                        "counts only when its 32x32 thumbnail and edge detail match too; "
                        "low-detail images (plain sky) are never near-copies")
    g.add_argument("--min-side", type=int, default=32,
                   help="skip images whose shorter side is below this (default 32 px)")
    g.add_argument("--workers", type=int, default=default_workers(),
                   help="parallel decode/resize processes (default: all cores)")
    g.add_argument("--format", choices=OUTPUT_FORMATS, default="jpeg",
                   help="image format inside the zip (default jpeg)")
    g.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    g.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"skip images with more pixels (decompression-bomb guard, default "
                        f"{DEFAULT_MAX_PIXELS:,})")
    g.add_argument("--max-file-mb", type=int, default=100,
                   help="skip files larger than this many MB (default 100)")


def prepare_config_from_args(args: argparse.Namespace, out: str):
    from skyclass.prepare import PrepareConfig

    return PrepareConfig(
        raw=args.raw, out=out, size=args.size, resize=args.resize,
        val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed,
        dedupe=args.dedupe,
        near_threshold=args.near_threshold, min_side=args.min_side, workers=args.workers,
        format=args.format, quality=args.quality, max_pixels=args.max_pixels,
        max_file_bytes=args.max_file_mb * 1024 * 1024, quiet=args.quiet,
        group_by=args.group_by, groups_file=args.groups_file,
        decisions=getattr(args, "decisions", None),
    )


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "prepare",
        help="scan, validate, dedupe, resize and split a photo folder into a dataset zip",
        description=(
            "Turn RAW_DIR/<class>/**/<photo> (or a zip of it) into a dataset zip with "
            "train/, val/ and test/ images, manifest.csv and report.json. Every file is either "
            "kept or listed as skipped with its reason."
        ),
        formatter_class=HelpFormatter,
        epilog=examples(
            "skyclass prepare my_photos/ --out data.zip",
            "skyclass prepare my_photos.zip --out data.zip --size 160 --val-fraction 0.2",
            "skyclass prepare ../shared/datasets/bird_drone --out bird_drone.zip --workers 2",
        ),
    )
    parser.add_argument("raw", metavar="RAW_DIR", help="folder (or .zip) of class folders")
    parser.add_argument("--out", required=True, metavar="DATASET.zip",
                        help="the zip file to write (its name must end in .zip)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    parser.add_argument("--decisions", metavar="DECISIONS.csv",
                        help="apply the relabel/exclude decisions of `skyclass review` (matched "
                             "by source path and sha256; RAW is never changed; report.json "
                             "lists every applied and every refused decision)")
    add_prepare_options(parser)
    parser.set_defaults(handler=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    from skyclass.inputs import FOLDER, PHOTO_FOLDER, PHOTO_ZIP, require, require_zip_name
    from skyclass.prepare import prepare, summary_text
    from skyclass.prepare.decisions import decisions_summary

    require(args.raw, (PHOTO_FOLDER, PHOTO_ZIP, FOLDER), "prepare",
            "a folder (or zip) of class folders of photos")
    require_zip_name(args.out, "prepare", args.raw)
    try:
        config = prepare_config_from_args(args, args.out)
    except ValueError as exc:
        raise PrepareError(str(exc)) from exc
    report = prepare(config)
    if not args.quiet:
        print(summary_text(report))
        if "decisions" in report:
            print(decisions_summary(report["decisions"]))
        print(f"wrote {args.out} ({report['totals']['kept']} images, {report['seconds']:.1f} s)")
    return 0
