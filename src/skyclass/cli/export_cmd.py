"""`skyclass export RUN_DIR --out BUNDLE_DIR`."""

from __future__ import annotations

import argparse
import json

from skyclass.cli.options import add_command, add_options, config_from_args
from skyclass.export_config import ExportConfig, QuantizeOptions


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(
        sub,
        "export",
        run_export,
        help="write a serving bundle (model.onnx, model.int8.onnx, model.pt, skyclass.json) "
        "from a trained run",
        description=(
            "Export RUN_DIR's checkpoint as a bundle folder: model.onnx (ONNX Runtime, dynamic "
            "batch, one file), model.pt (CPU TorchScript) and skyclass.json (classes, "
            "preprocessing, training recipe and metrics, sha256 of each file). The exported "
            "models are checked against PyTorch on real images first; a mismatch aborts. "
            "With --quantize int8 an INT8 model.int8.onnx is served instead if it "
            "matches FP32's top-1 answers on the test split (see --min-agreement, "
            "--max-accuracy-drop); otherwise FP32 is served and the reason printed."
        ),
        examples=(
            "skyclass export runs/r1 --out bundle/",
            "skyclass export runs/r1 --out bundle/ --checkpoint last --name birds --force",
            "skyclass export runs/r1 --out bundle/ --parity-images my_photos/Bird",
        ),
    )
    add_options(parser, ExportConfig, skip=("force", "quiet"))
    add_quantize_arguments(parser)
    add_options(parser, ExportConfig, only=("force", "quiet"))


def add_quantize_arguments(parser: argparse.ArgumentParser) -> None:
    """`QuantizeOptions`' fields as the "quantization (served model)" option group."""
    add_options(parser.add_argument_group("quantization (served model)"), QuantizeOptions)


def export_config_from_args(args: argparse.Namespace) -> ExportConfig:
    """The ExportConfig of the parsed options, its `quantize` from the quantization group."""
    return config_from_args(ExportConfig, args, quantize=config_from_args(QuantizeOptions, args))


def serving_summary(serving: dict) -> str:
    """One line saying which model is served and, with a gate, its figures."""
    line = f"serving {serving['model_file']} ({serving['precision']}): {serving['reason']}"
    gate = serving.get("gate")
    if gate:
        overall = gate["overall"]
        line += (
            f"\n  gate on {overall['images']} test images: top-1 agreement "
            f"{overall['agreement']:.2%}, accuracy FP32 {overall['fp32_accuracy']:.2%} / "
            f"INT8 {overall['int8_accuracy']:.2%}"
        )
    return line


def run_export(args: argparse.Namespace) -> int:
    from skyclass.export import export_bundle
    from skyclass.inputs import CHECKPOINT, RUN_DIR, require
    from skyclass.serving.bundle import read_manifest

    require(args.run, (RUN_DIR, CHECKPOINT), "export", "a run folder from `skyclass train`")
    out = export_bundle(export_config_from_args(args))
    if not args.quiet:
        manifest = read_manifest(out)
        parity = manifest["parity"]
        print(
            f"wrote {out}: {manifest['model']['name']} {manifest['model']['version']}, "
            f"classes {json.dumps(manifest['class_names'])}"
        )
        print(
            f"parity on {parity['images']} real images: ONNX max |diff| "
            f"{parity['onnx_max_abs_diff']:.2e}, TorchScript "
            f"{parity['torchscript_max_abs_diff']:.2e}, top-1 identical"
        )
        print(serving_summary(manifest["serving"]))
    return 0
