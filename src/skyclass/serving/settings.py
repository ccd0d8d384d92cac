"""How the handler is configured: `ServingSettings`, read from the environment once.

On AWS Lambda the function's environment variables configure it (serverless.yml sets
MODEL_URI); `skyclass serve` builds the same settings from its options (`ServeConfig`, whose
fields are the command's options) on top of the environment. Nothing here writes
`os.environ`: an `App` gets its settings when it is made, so two apps in one process (tests,
benchmarks) never see each other's. Standard library only (this ships in the Lambda zip).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skyclass.cores import usable_cores
from skyclass.decode_limits import DEFAULT_MAX_DECODE_BYTES
from skyclass.images import DEFAULT_MAX_PIXELS

LOG = logging.getLogger("skyclass.serving")

# Lambda's own synchronous payload limit.
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024
DEFAULT_TOP_K = 3
DEFAULT_DEADLINE_S = 10.0
# Predictions `skyclass serve` decodes at once by default: each may use the whole decode budget
# (~400 MB).
DEFAULT_MAX_PREDICTIONS = max(1, min(4, usable_cores()))


@dataclass(frozen=True)
class ServingSettings:
    """Everything the handler reads from its environment; the field's `env` is the variable."""

    # A bundle folder or s3://bucket/prefix.
    model_uri: str = field(default="", metadata={"env": "MODEL_URI"})
    max_body_bytes: int = field(default=DEFAULT_MAX_BODY_BYTES, metadata={"env": "MAX_BODY_BYTES"})
    # The decode budget of skyclass.decode_limits.
    max_pixels: int = field(default=DEFAULT_MAX_PIXELS, metadata={"env": "MAX_PIXELS"})
    max_decode_bytes: int = field(
        default=DEFAULT_MAX_DECODE_BYTES, metadata={"env": "MAX_DECODE_BYTES"}
    )
    # Seconds a decode may run (and always DEADLINE_MARGIN_S inside Lambda's remaining time).
    request_deadline_s: float = field(
        default=DEFAULT_DEADLINE_S, metadata={"env": "REQUEST_DEADLINE_S"}
    )
    # Classes answered when the request gives no ?top_k=.
    top_k: int = field(default=DEFAULT_TOP_K, metadata={"env": "TOP_K"})
    # '' (no CORS header: the upload page is same-origin), '*' or one origin.
    cors_origin: str = field(default="", metadata={"env": "CORS_ORIGIN"})
    # onnxruntime intra-op threads; 0: its default (all cores).
    threads: int = field(default=0, metadata={"env": "SKYCLASS_THREADS"})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingSettings:
        """The settings in `environ` (default os.environ); a malformed number keeps the default
        and is logged, so a typo in one variable never takes the API down."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is None:
                continue
            kind: Any = type(f.default)
            try:
                values[f.name] = raw.strip() if kind is str else kind(raw)
            except ValueError:
                LOG.warning(
                    "%s=%r is not a valid %s; using the default %r",
                    f.metadata["env"],
                    raw[:40],
                    kind.__name__,
                    f.default,
                )
        return cls(**values)  # type: ignore[arg-type]

    def replace(self, **changes: object) -> ServingSettings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ServeConfig:
    """`skyclass serve`: a local HTTP server around the handler (fields = the options)."""

    bundle: str = field(
        metadata={
            "positional": True,
            "metavar": "BUNDLE_DIR",
            "help": "bundle folder or s3://bucket/prefix",
        }
    )
    host: str = field(
        default="127.0.0.1", metadata={"help": "address to listen on; 0.0.0.0 for all"}
    )
    port: int = field(default=8000, metadata={"help": "port to listen on; 0 picks a free one"})
    cors: str | None = field(
        default=None,
        metadata={
            "metavar": "ORIGIN",
            "default_help": "none, only the upload page served here",
            "help": "let pages of ORIGIN (e.g. https://example.org, or '*' for any site) call the "
            "API from a browser",
        },
    )
    max_predictions: int = field(
        default=DEFAULT_MAX_PREDICTIONS,
        metadata={
            "metavar": "N",
            "default_help": "CPU cores, at most 4",
            "help": "predictions decoded at once; more get a quick 503",
        },
    )
    quiet: bool = field(default=False, metadata={"help": "no access log"})

    def settings(self, base: ServingSettings | None = None) -> ServingSettings:
        """The handler's settings: the environment's, with this bundle (and --cors if given)."""
        base = ServingSettings.from_env() if base is None else base
        changes: dict[str, object] = {"model_uri": str(self.bundle)}
        if self.cors is not None:
            changes["cors_origin"] = self.cors
        return base.replace(**changes)
