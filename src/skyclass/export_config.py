"""What `skyclass export` is asked to do: `ExportConfig` and its INT8 options, light to import
(no numpy, no torch).

Each field's metadata is its command-line option (`skyclass.cli.options`): `QuantizeOptions`'
fields are the options of the "quantization (served model)" group. `skyclass.quantize` does
the work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from skyclass.errors import ExportError

QUANTIZE_CHOICES = ("int8", "none")
# FP32 is the default, by measurement (bench/results/serve_latency.json): INT8 was ~1.5x faster
# and a quarter of the size, but the accuracy gate refused it on both benchmark runs (bird_drone:
# 98.7% top-1 agreement, under the 99% bar; ddd_visible: 49%), so by default it would only add
# calibration time to every export. `--quantize int8` opts in, behind the same gate.
DEFAULT_QUANTIZE = "none"
DEFAULT_CALIBRATION_IMAGES = 300
DEFAULT_MIN_AGREEMENT = 0.99
DEFAULT_MAX_ACCURACY_DROP = 0.005  # 0.5 accuracy points


@dataclass(frozen=True)
class QuantRecipe:
    """How the INT8 model is made: the onnxruntime `quantize_static` settings, in one place.

    The default is chosen by measurement (bench/quantize_variants.py, results in
    bench/results/quantize_variants.json); the bench builds its variants from this class too.
    """

    activations: str = "uint8"  # uint8 | int8
    weights: str = "int8"  # int8 | uint8
    reduce_range: bool = False  # 7-bit weights: no VPMADDUBSW saturation on AVX2 without VNNI
    per_channel: bool = True
    calibration: str = "minmax"  # minmax | percentile | entropy
    percentile: float = 99.999  # with calibration="percentile": the share of values kept
    fp32_nodes: str = "stem+head"  # none | stem+head | stem+head+depthwise
    quant_format: str = "qdq"  # qdq | qoperator


DEFAULT_RECIPE = QuantRecipe()


@dataclass(frozen=True)
class QuantizeOptions:
    """What `export --quantize` was asked for, with the gate's thresholds."""

    mode: str = field(
        default=DEFAULT_QUANTIZE,
        metadata={
            "flag": "--quantize",
            "choices": QUANTIZE_CHOICES,
            "help": "int8: also write model.int8.onnx (static INT8, ~1/4 the size) and serve it "
            "if it passes the accuracy gate on the test split; none: serve FP32 model.onnx",
        },
    )
    calibration_images: int = field(
        default=DEFAULT_CALIBRATION_IMAGES,
        metadata={"help": "training images that calibrate the INT8 ranges"},
    )
    min_agreement: float = field(
        default=DEFAULT_MIN_AGREEMENT,
        metadata={
            "help": "gate: least share of test images, overall and per class, where INT8 and "
            "FP32 give the same top-1"
        },
    )
    max_accuracy_drop: float = field(
        default=DEFAULT_MAX_ACCURACY_DROP,
        metadata={
            "help": "gate: most accuracy INT8 may lose, overall and per class, as a fraction "
            f"(default %(default)s = {DEFAULT_MAX_ACCURACY_DROP * 100:g} points)"
        },
    )
    seed: int = field(default=0, metadata={"cli": False})  # of the calibration sample
    recipe: QuantRecipe = field(default=DEFAULT_RECIPE, metadata={"cli": False})

    def problems(self) -> list[str]:
        """Option values that make no sense, as messages (empty when all are fine)."""
        found = []
        if self.mode not in QUANTIZE_CHOICES:
            found.append(
                f"--quantize must be one of {', '.join(QUANTIZE_CHOICES)}, not {self.mode!r}"
            )
        if self.calibration_images < 1:
            found.append("--calibration-images must be at least 1")
        if not 0.0 <= self.min_agreement <= 1.0:
            found.append("--min-agreement must be a fraction in 0..1 (0.99 = 99%)")
        if not -1.0 <= self.max_accuracy_drop <= 1.0:
            found.append(
                "--max-accuracy-drop must be a fraction in -1..1 (0.005 = 0.5 points; "
                "negative demands that INT8 gain accuracy)"
            )
        return found


CHECKPOINT_CHOICES = ("best", "last")


@dataclass
class ExportConfig:
    run: Path = field(
        metadata={
            "positional": True,
            "metavar": "RUN_DIR",
            "help": "run directory of `skyclass train` (or a .pt checkpoint)",
        }
    )
    out: Path = field(
        metadata={"required": True, "metavar": "BUNDLE_DIR", "help": "bundle folder to create"}
    )
    checkpoint: str = field(
        default="best",
        metadata={"choices": CHECKPOINT_CHOICES, "help": "which checkpoint of the run to export"},
    )
    # Used when the run's dataset zip is not reachable.
    parity_images: Path | None = field(
        default=None,
        metadata={
            "metavar": "FOLDER",
            "default_help": "the run's test split",
            "help": "real photos for the parity check when the run's dataset zip is not reachable",
        },
    )
    parity_count: int = field(
        default=32, metadata={"help": "how many images the parity check uses"}
    )
    name: str | None = field(
        default=None,
        metadata={
            "default_help": "run folder",
            "help": "model name in skyclass.json and responses",
        },
    )
    version: str | None = field(
        default=None,
        metadata={
            "flag": "--model-version",
            "default_help": "epoch + checkpoint sha256 prefix",
            "help": "model version string",
        },
    )
    opset: int = field(default=18, metadata={"help": "ONNX opset"})
    force: bool = field(default=False, metadata={"help": "replace an existing BUNDLE_DIR"})
    quiet: bool = field(default=False, metadata={"help": "print nothing on success"})
    quantize: QuantizeOptions = field(default_factory=QuantizeOptions, metadata={"cli": False})

    def __post_init__(self) -> None:
        self.run = Path(self.run)
        self.out = Path(self.out)
        if self.parity_images is not None:
            self.parity_images = Path(self.parity_images)
        if self.parity_count < 1:
            raise ExportError("--parity-count must be at least 1")
        if self.quantize.problems():
            raise ExportError("; ".join(self.quantize.problems()))
