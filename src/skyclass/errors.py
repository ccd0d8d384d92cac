"""Errors a user can act on. The CLI prints their message (no traceback) and exits with 2.

Every user-facing error class lives here and derives from `SkyclassError` (standard library
only: serving imports it). Modules re-export the ones they raise (`skyclass.export.ExportError`).
Not here: `serving.events.HttpError`, an HTTP answer the handler turns into a response.
"""


class SkyclassError(Exception):
    """Base class: something about the user's input or environment that they can fix."""


class PrepareError(SkyclassError):
    """`prepare` cannot produce a dataset from this input."""


class DatasetFormatError(SkyclassError):
    """A file given as a prepared dataset is not one."""


class EvaluateError(SkyclassError):
    """`evaluate` cannot score this model on this data (missing run data, class mismatch...)."""


class ExportError(SkyclassError):
    """The bundle cannot be written, or the exported model does not match PyTorch."""


class WeightsError(SkyclassError):
    """Pretrained weights are missing or are not the expected file."""


class CheckpointError(SkyclassError):
    """A run directory or checkpoint that cannot be used."""


class BundleError(SkyclassError):
    """A bundle that is missing, incomplete, or whose files do not match their sha256."""


class PredictError(SkyclassError):
    """The target cannot be used (no bundle there, server unreachable)."""


class ImageError(SkyclassError, ValueError):
    """An input that is not a usable image. `reason` is a short machine-readable code.

    Also a ValueError (what it was before it joined SkyclassError), so callers catching that
    keep working.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TrainError(SkyclassError):
    """Training cannot go on (diverged, or a resume that does not match)."""


class RunDirError(SkyclassError):
    """--out cannot be used (not writable, or it already holds a different run)."""


class DeployError(SkyclassError):
    """Deployment cannot start or did not succeed; the message says what to do."""


class ReviewError(SkyclassError):
    """`review` cannot score this dataset."""
