"""`skyclass train DATASET.zip --out RUN_DIR [options]` (also under `torchrun -m skyclass`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from typing import Any

from skyclass.cli.helpfmt import HelpFormatter, examples
from skyclass.cli.options import ArgTarget, add_option, cli_fields, unwrap_optional
from skyclass.errors import SkyclassError


def _recipe_option(target: ArgTarget, f: dataclasses.Field, annotation: Any) -> argparse.Action:
    """A recipe value as an option. Its default is None = 'the recipe's value', which --help
    shows for every recipe (helpfmt reads `recipe_field`)."""
    meta = f.metadata
    flag = meta.get("flag", "--" + f.name.replace("_", "-"))
    text = meta.get("help", "").replace("%", "%%")  # helpfmt appends each recipe's value
    if annotation is bool:
        switch: dict[str, Any] = (
            {"action": "store_const", "const": False}
            if flag.startswith("--no-")
            else {"action": argparse.BooleanOptionalAction}
        )
        action = target.add_argument(flag, dest=f.name, default=None, help=text, **switch)
    else:
        action = add_option(target, f, annotation)
        action.default = None
        action.help = text
    if meta.get("recipe", True):
        action.recipe_field = action.dest  # type: ignore[attr-defined]
    return action


def add_train_options(parser: argparse.ArgumentParser, common: bool = True) -> None:
    """Options shared by `train` and `run`, one per TrainConfig/AugmentConfig field. Every
    default is None = 'take the recipe value'.

    `common=False` leaves out --seed/--workers for a command that already defines them.
    """
    from skyclass.augment import AugmentConfig
    from skyclass.train.config import RECIPES, TrainConfig

    groups = {
        "train": parser.add_argument_group("train"),
        "augmentation": parser.add_argument_group("augmentation"),
        "runtime": parser.add_argument_group("runtime"),
    }
    groups["train"].add_argument(
        "--recipe",
        choices=sorted(RECIPES, key=lambda name: name != "default"),
        default="default",
        help="named preset of every value below: 'default' (the best measured recipe) or "
        "'reference' (the original notebook's); options override it (default: default)",
    )
    hints = typing.get_type_hints(TrainConfig)
    for f in cli_fields(TrainConfig):
        if f.metadata.get("common") and not common:
            continue
        group = groups[f.metadata.get("group", "train")]
        _recipe_option(group, f, unwrap_optional(hints[f.name]))
        if f.name == "balance":  # the augmentation options follow the train group's
            aug_hints = typing.get_type_hints(AugmentConfig)
            for a in cli_fields(AugmentConfig):
                _recipe_option(groups["augmentation"], a, unwrap_optional(aug_hints[a.name]))
    groups["runtime"].add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last.pt (same epoch count; with --epochs N, "
        "continue a finished run to N epochs; DATASET.zip may be left out: config.json "
        "records it)",
    )


def train_config_from_args(args: argparse.Namespace, data: str, out: str):
    """Recipe preset <- the options given on the command line."""
    from skyclass.augment import AugmentConfig
    from skyclass.train import TrainConfig

    overrides = {f.name: getattr(args, f.name, None) for f in cli_fields(TrainConfig)}
    aug = {f.name: getattr(args, f.name, None) for f in cli_fields(AugmentConfig)}
    aug = {k: v for k, v in aug.items() if v is not None}
    if aug.get("crop_scale_min") == 0:
        aug["crop_scale_min"] = None
    return TrainConfig.from_recipe(
        args.recipe,
        data=str(data),
        out=str(out),
        resume=bool(args.resume),
        quiet=bool(getattr(args, "quiet", False)),
        augment=aug,
        **overrides,
    )


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="fine-tune MobileNetV2 on a prepared dataset zip",
        description=(
            "Fine-tune an ImageNet MobileNetV2 on DATASET.zip (from `skyclass prepare`). "
            "Writes RUN_DIR/history.jsonl, last.pt (every epoch), best.pt (best validation "
            "accuracy; the test split is scored once with it, into test.json), config.json, "
            "model_scripted.pt and model_traced_cpu.pt. Several GPUs: "
            "torchrun --nproc-per-node N -m skyclass train ..."
        ),
        formatter_class=HelpFormatter,
        epilog=examples(
            "skyclass train data.zip --out runs/r1                 # the 'default' recipe",
            "skyclass train --out runs/r1 --resume                 # after Ctrl-C or a crash",
            "skyclass train data.zip --out runs/lr --find-lr       # plot loss vs LR, suggest --lr",
        ),
    )
    parser.add_argument(
        "data",
        metavar="DATASET.zip",
        nargs="?",
        help="dataset zip from `skyclass prepare` (optional with --resume)",
    )
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar and no per-epoch lines"
    )
    parser.add_argument(
        "--find-lr",
        action="store_true",
        help="instead of training, run the LR range test with the recipe "
        "(about 100 steps): RUN_DIR/lr_find.png and lr_find.json, and "
        "print a suggested --lr (fastai's 'valley')",
    )
    add_train_options(parser)
    parser.set_defaults(handler=run_train)


def result_line(summary: dict) -> str:
    """Test accuracy of best.pt (scored once) and the validation accuracy that chose it."""
    val = summary["validation_split"]
    test = summary["test_acc"]
    head = f"test accuracy {test:.4f}" if test is not None else "no test score"
    line = (
        f"{head} (best.pt: epoch {summary['best_epoch']}/{summary['epochs']}, "
        f"{val} accuracy {summary['best_val_acc']:.4f})"
    )
    for warning in summary.get("warnings", []):
        line = f"warning: {warning}\n{line}"
    return line


def check_dataset_arg(data: str | None, out: str, resume: bool) -> None:
    """A missing or wrong-kind DATASET.zip fails here, naming what it is and what to run."""
    from skyclass.inputs import DATASET_ZIP, require

    if data is None:
        if not resume:
            raise SkyclassError(
                f"give the dataset zip to train on: `skyclass train DATASET.zip --out {out}` "
                "(make one with `skyclass prepare PHOTO_FOLDER --out DATASET.zip`)"
            )
        return
    require(data, (DATASET_ZIP,), "train", "a dataset zip from `skyclass prepare`")


def run_find_lr(args: argparse.Namespace) -> int:
    """The LR range test of the recipe as given; prints the suggestion and the files."""
    from skyclass.train.lr_find import find_lr

    if args.resume or not args.data:
        raise SkyclassError("--find-lr needs DATASET.zip and a new --out (not --resume)")
    result = find_lr(train_config_from_args(args, args.data, args.out))
    if result["suggested_lr"] is None:
        print(
            f"the loss diverged within {result['steps_run']} steps: no suggestion; see "
            f"{result['plot']}"
        )
        return 1
    print(
        f"suggested --lr {result['suggested_lr']:.3g} (lowest loss at "
        f"{result['min_loss_lr']:.3g}); curve in {result['plot']}, values in {result['json']}"
    )
    return 0


def run_train(args: argparse.Namespace) -> int:
    from skyclass.train import train

    check_dataset_arg(args.data, args.out, args.resume)
    if args.find_lr:
        return run_find_lr(args)
    summary = train(train_config_from_args(args, args.data or "", args.out))
    if not args.quiet and os.environ.get("RANK", "0") == "0":  # torchrun: rank 0 speaks
        print(
            f"{result_line(summary)}, {summary['wall_seconds']:.1f} s; run in {summary['run_dir']}"
        )
    return 0
