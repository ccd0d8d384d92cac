"""Errors a user can act on. The CLI prints their message (no traceback) and exits with 2."""


class SkyclassError(Exception):
    """Base class: something about the user's input or environment that they can fix."""


class PrepareError(SkyclassError):
    """`prepare` cannot produce a dataset from this input."""


class DatasetFormatError(SkyclassError):
    """A file given as a prepared dataset is not one."""


class EvaluateError(SkyclassError):
    """`evaluate` cannot score this model on this data (missing run data, class mismatch...)."""


class TrainError(SkyclassError):
    """Training cannot go on (diverged, or a resume that does not match)."""


class RunDirError(SkyclassError):
    """--out cannot be used (not writable, or it already holds a different run)."""
