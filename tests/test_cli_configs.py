"""Command lines through the real `skyclass` parser -> the config objects the handlers build.

`deploy`, `review` and `export` build their options from their config dataclasses' fields
(`skyclass.cli.options`): these tests pin that every option still lands in the right field, with
the defaults --help shows, and that --help lists the same options as before the change.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from skyclass.cli import build_parser, main
from skyclass.cli.export_cmd import export_config_from_args
from skyclass.cli.options import config_from_args
from skyclass.deploy.config import DeployConfig, default_service_dir
from skyclass.errors import ExportError
from skyclass.export_config import ExportConfig, QuantizeOptions, QuantRecipe
from skyclass.review.config import ReviewConfig, ReviewPage


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def _options(command: str) -> list[str]:
    """The option strings of `skyclass COMMAND`, in --help order (positionals by metavar)."""
    sub = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices[command]
    return [
        s
        for a in sub._actions
        if not isinstance(a, argparse._HelpAction)
        for s in (a.option_strings or [a.metavar])
    ]


def _help(capsys: pytest.CaptureFixture[str], command: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere


# --- deploy ------------------------------------------------------------------------------------


def test_deploy_defaults() -> None:
    args = _parse("deploy", "bundle/", "--bucket", "models")
    config = config_from_args(DeployConfig, args)
    assert config == DeployConfig(bundle=Path("bundle"), bucket="models")
    assert config.bundle == Path("bundle") and config.prefix is None and config.region is None
    assert (config.stage, config.memory, config.timeout, config.arch) == ("dev", 1536, 28, "x86_64")
    assert config.upload and not (config.private or config.package_only or config.remove)
    assert config.wheelhouse is None and config.service_dir == default_service_dir()
    assert config.python == sys.executable
    assert args.download_wheels is None and args.json is False  # CLI-only, not the config's


def test_deploy_every_option_lands_in_its_field() -> None:
    args = _parse(
        "deploy", "b", "--bucket", "bk", "--prefix", "/a/b/", "--stage", "prod",
        "--region", "eu-west-1", "--memory", "2048", "--timeout", "10", "--private",
        "--package-only", "--no-upload", "--arch", "arm64", "--wheelhouse", "wh",
        "--service-dir", "svc", "--json",
    )  # fmt: skip
    config = config_from_args(DeployConfig, args)
    assert config == DeployConfig(
        bundle=Path("b"),
        bucket="bk",
        prefix="a/b",  # slashes stripped by the config
        stage="prod",
        region="eu-west-1",
        memory=2048,
        timeout=10,
        private=True,
        package_only=True,
        upload=False,
        arch="arm64",
        wheelhouse=Path("wh"),
        service_dir=Path("svc"),
    )
    assert isinstance(config.wheelhouse, Path) and isinstance(config.service_dir, Path)
    assert args.json is True


def test_deploy_remove_needs_no_bundle_and_download_wheels_is_cli_only() -> None:
    config = config_from_args(DeployConfig, _parse("deploy", "--remove", "--stage", "dev"))
    assert config.remove and config.bundle is None and config.command == "remove"
    args = _parse("deploy", "--download-wheels", "wheels/", "--arch", "arm64")
    assert args.download_wheels == Path("wheels/") and args.arch == "arm64"
    assert args.bundle is None


def test_deploy_bad_arch_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _parse("deploy", "b", "--bucket", "bk", "--arch", "sparc")
    assert exit_info.value.code == 2
    assert "invalid choice: 'sparc'" in capsys.readouterr().err


def test_deploy_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert _options("deploy") == [
        "BUNDLE_DIR", "--bucket", "--prefix", "--stage", "--region", "--memory", "--timeout",
        "--private", "--package-only", "--no-upload", "--remove", "--arch", "--wheelhouse",
        "--download-wheels", "--service-dir", "--json",
    ]  # fmt: skip
    text = _help(capsys, "deploy")
    for shown in (
        "--stage STAGE Serverless stage (default dev)",
        "--region REGION AWS region (default: AWS_REGION or us-east-1)",
        "--memory MEMORY Lambda memory in MB; CPU grows with it (default 1536)",
        "at most 28 (API Gateway stops at 29; default 28)",
        "--no-upload do not upload the bundle (it is already in S3) --remove",  # no "(default on)"
        "--arch {x86_64,arm64} Lambda architecture",
        "~20% cheaper per GB-second",
        "of that architecture (default x86_64)",
        "--wheelhouse DIR install",
        "--service-dir DIR the Serverless service folder (default: deploy/ of this checkout)",
        "(default: models/<model name>/<model version> from skyclass.json)",
    ):
        assert shown in text


# --- review ------------------------------------------------------------------------------------


def test_review_defaults() -> None:
    args = _parse("review", "data.zip", "--out", "review/")
    config = config_from_args(ReviewConfig, args)
    assert config == ReviewConfig(dataset=Path("data.zip"), out=Path("review"))
    assert (config.run, config.weights, config.cache) == (None, None, None)
    assert (config.folds, config.seed, config.recompute, config.quiet) == (5, 0, False, False)
    assert config.extra == {}
    assert config_from_args(ReviewPage, args) == ReviewPage(serve=False, port=8001)


def test_review_every_option_lands_in_its_field() -> None:
    args = _parse(
        "review", "d.zip", "--out", "o", "--run", "runs/r1", "--weights", "w.pth",
        "--folds", "3", "--seed", "7", "--recompute", "--serve", "--port", "9000", "--quiet",
    )  # fmt: skip
    config = config_from_args(ReviewConfig, args)
    assert config == ReviewConfig(
        dataset=Path("d.zip"),
        out=Path("o"),
        run=Path("runs/r1"),
        weights=Path("w.pth"),
        folds=3,
        seed=7,
        recompute=True,
        quiet=True,
    )
    assert config.backbone == "run:runs/r1"
    assert config_from_args(ReviewPage, args) == ReviewPage(serve=True, port=9000)


def test_review_needs_out(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse("review", "d.zip")
    assert "--out" in capsys.readouterr().err


def test_review_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert _options("review") == [
        "DATASET.zip", "--out", "--run", "--weights", "--folds", "--seed", "--recompute",
        "--serve", "--port", "--quiet",
    ]  # fmt: skip
    text = _help(capsys, "review")
    for shown in (
        "DATASET.zip a zip written by `prepare`",
        "--out REVIEW_DIR output folder",
        "--run RUN_DIR embed with this training run's fine-tuned backbone "
        "(default: ImageNet MobileNetV2)",
        "--weights PATH ImageNet MobileNetV2 weights file --folds",
        "--folds FOLDS cross-validation folds (default 5)",
        "--seed SEED seed of the folds (default 0)",
        "--serve then open the review page on http://127.0.0.1:PORT/",
        "--port PORT port of the page (default 8001)",
        "--quiet no progress bar, no summary",
    ):
        assert shown in text


# --- export ------------------------------------------------------------------------------------


def test_export_defaults() -> None:
    config = export_config_from_args(_parse("export", "runs/r1", "--out", "bundle/"))
    assert config == ExportConfig(run=Path("runs/r1"), out=Path("bundle"))
    assert (config.checkpoint, config.parity_count, config.opset) == ("best", 32, 18)
    assert config.quantize == QuantizeOptions()
    assert (
        config.quantize.mode,
        config.quantize.calibration_images,
        config.quantize.min_agreement,
        config.quantize.max_accuracy_drop,
        config.quantize.seed,
        config.quantize.recipe,
    ) == ("none", 300, 0.99, 0.005, 0, QuantRecipe())


def test_export_quantize_options_land_in_quantize_options() -> None:
    args = _parse(
        "export", "r", "--out", "o", "--checkpoint", "last", "--parity-images", "p",
        "--parity-count", "4", "--name", "n", "--model-version", "v", "--opset", "17",
        "--quantize", "int8", "--calibration-images", "20", "--min-agreement", "0.9",
        "--max-accuracy-drop", "-0.01", "--force", "--quiet",
    )  # fmt: skip
    config = export_config_from_args(args)
    assert config == ExportConfig(
        run=Path("r"),
        out=Path("o"),
        checkpoint="last",
        parity_images=Path("p"),
        parity_count=4,
        name="n",
        version="v",
        opset=17,
        force=True,
        quiet=True,
        quantize=QuantizeOptions(
            mode="int8", calibration_images=20, min_agreement=0.9, max_accuracy_drop=-0.01
        ),
    )


def test_export_bad_quantize_value_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _parse("export", "r", "--out", "o", "--quantize", "fp16")
    assert exit_info.value.code == 2
    assert "invalid choice: 'fp16'" in capsys.readouterr().err
    with pytest.raises(ExportError, match="--calibration-images must be at least 1"):
        export_config_from_args(_parse("export", "r", "--out", "o", "--calibration-images", "0"))


def test_export_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert _options("export") == [
        "RUN_DIR", "--out", "--checkpoint", "--parity-images", "--parity-count", "--name",
        "--model-version", "--opset", "--quantize", "--calibration-images", "--min-agreement",
        "--max-accuracy-drop", "--force", "--quiet",
    ]  # fmt: skip
    text = _help(capsys, "export")
    group = text.split("quantization (served model): ", 1)[1]
    for shown in (
        "--quantize {int8,none} int8: also write model.int8.onnx",
        "none: serve FP32 model.onnx (default none)",
        "--calibration-images CALIBRATION_IMAGES training images that calibrate the INT8 "
        "ranges (default 300)",
        "give the same top-1 (default 0.99)",
        "--max-accuracy-drop MAX_ACCURACY_DROP gate: most accuracy INT8 may lose, overall and "
        "per class, as a fraction (default 0.005 = 0.5 points)",
    ):
        assert shown in group
    assert "--force" not in group.split("examples:")[0]  # --force/--quiet stay in options
