"""The one HTTP handler: AWS Lambda calls `handler`, `skyclass serve` calls the very same one.

Routes (matched on the last path segment, so a stage or mount prefix does not matter):
  GET  /          health + model info as JSON; the upload page when the client asks for HTML
  GET  /health    health + model info as JSON
  POST / or /predict   classify the posted image, `?top_k=N`

Configuration (`settings.ServingSettings`, read from the environment once, on Lambda's first
call): MODEL_URI (bundle folder or s3://bucket/prefix), MAX_BODY_BYTES (default 6 MB, Lambda's
own payload limit), MAX_PIXELS and MAX_DECODE_BYTES (the decode budget of
skyclass.decode_limits), REQUEST_DEADLINE_S (default 10 s, and always DEADLINE_MARGIN_S inside
Lambda's remaining time: a decode still running then is stopped and answered 503), TOP_K
(default 3), CORS_ORIGIN (default none: no CORS header; `*` or an origin to let other sites'
pages call the API), SKYCLASS_THREADS. The model is loaded once per process, on the first
request, and the request body is never logged. No answer ever holds NaN or Infinity.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, Protocol

from skyclass import __version__
from skyclass.decode_limits import DecodeLimits
from skyclass.errors import SkyclassError
from skyclass.images import ImageError
from skyclass.serving.events import (
    HttpError,
    Request,
    extract_image,
    parse_content_length,
    parse_event,
)
from skyclass.serving.settings import ServingSettings

LOG = logging.getLogger("skyclass.serving")
LOG.setLevel(logging.INFO)  # Lambda's root logger is at WARNING; the request line is INFO
MAX_TOP_K = 100
JSON_TYPE = "application/json"
CORS_HEADERS = {
    "access-control-allow-headers": "content-type",
    "access-control-allow-methods": "GET, POST, OPTIONS",
    "vary": "origin",
}
# Seconds kept back from Lambda's remaining time: enough to answer before it kills the call.
DEADLINE_MARGIN_S = 3.0
# ImageError reasons -> (status, error code) of the answer; any other reason is a 400.
IMAGE_ERRORS = {
    "too_large": (413, "image_too_large"),
    "too_costly": (413, "image_too_costly"),
    "too_slow": (503, "decode_timeout"),
    "cancelled": (503, "client_gone"),
}


class Model(Protocol):
    """What the handler needs of a classifier (the ONNX one, or the torch one in bench/)."""

    class_names: list[str]

    @property
    def model_info(self) -> dict[str, Any]: ...

    def predict_image(
        self, data: bytes, top_k: int = 3, max_pixels: int = ..., limits: DecodeLimits | None = None
    ) -> list[Any]: ...


def load_model(settings: ServingSettings) -> Model:
    """settings.model_uri -> verified local bundle -> onnxruntime Classifier."""
    from skyclass.serving.bundle import resolve_bundle
    from skyclass.serving.classifier import Classifier

    return Classifier.from_bundle(resolve_bundle(settings.model_uri), threads=settings.threads)


def load_default_model() -> Model:
    """The model the environment names (MODEL_URI), read now."""
    return load_model(ServingSettings.from_env())


def cors_headers(origin: str) -> dict[str, str]:
    """CORS headers for `origin` ('*' or one origin); none for '' (same-origin page)."""
    origin = origin.strip()
    return {"access-control-allow-origin": origin, **CORS_HEADERS} if origin else {}


def _response(
    status: int,
    payload: Any,
    headers: Mapping[str, str] | None = None,
    content_type: str = JSON_TYPE,
) -> dict[str, Any]:
    try:  # NaN/Infinity are not JSON: a browser's JSON.parse fails on them
        body = payload if isinstance(payload, str) else json.dumps(payload, allow_nan=False)
    except ValueError:
        LOG.error("an answer held a non-finite number; answered 500 instead")
        status, body = (
            500,
            json.dumps(
                {"error": "internal_error", "message": "the answer held a non-finite number"}
            ),
        )
    return {
        "statusCode": status,
        "headers": {"content-type": content_type, **(headers or {})},
        "body": body,
        "isBase64Encoded": False,
    }


def error_response(err: HttpError, request_id: str) -> dict[str, Any]:
    payload = {"error": err.code, "message": err.message, "request_id": request_id}
    return _response(err.status, payload, err.headers)


def decode_limits(settings: ServingSettings, context: Any = None) -> DecodeLimits:
    """The decode budget of one request: the settings' limits, a deadline inside Lambda's time,
    and the local server's client-gone check (`context.client_gone`)."""
    budget = max(0.1, settings.request_deadline_s)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        with contextlib.suppress(Exception):
            budget = min(budget, max(0.1, remaining() / 1000.0 - DEADLINE_MARGIN_S))
    return DecodeLimits(
        max_pixels=settings.max_pixels,
        max_bytes=settings.max_decode_bytes,
        deadline=time.monotonic() + budget,
        cancelled=getattr(context, "client_gone", None),
    )


def _image_error(exc: ImageError) -> HttpError:
    status, code = IMAGE_ERRORS.get(exc.reason, (400, "bad_image"))
    if status == 503:
        return HttpError(
            503, code, f"the image was not classified: {exc.detail}", headers={"retry-after": "1"}
        )
    if status == 413:
        return HttpError(
            413,
            code,
            "the image is too large or too costly to decode "
            f"(decompression-bomb guard): {exc.detail}",
        )
    return HttpError(status, code, f"the upload is not a usable image ({exc.reason}: {exc.detail})")


def _parse_top_k(query: Mapping[str, str], default: int) -> int:
    raw = query.get("top_k")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(400, "bad_top_k", f"top_k must be an integer, got {raw[:20]!r}") from None
    if not 1 <= value <= MAX_TOP_K:
        raise HttpError(400, "bad_top_k", f"top_k must be between 1 and {MAX_TOP_K}")
    return value


def index_html() -> str:
    return resources.files("skyclass.serving").joinpath("static/index.html").read_text("utf-8")


class App:
    """Routing, limits and error handling around a lazily loaded model (one per process)."""

    def __init__(
        self, loader: Callable[[], Model] | None = None, settings: ServingSettings | None = None
    ) -> None:
        """`settings` default to the environment's, read now; `loader` to loading
        `settings.model_uri` (tests and benchmarks hand in a model of their own)."""
        self.settings = ServingSettings.from_env() if settings is None else settings
        self._loader = loader or functools.partial(load_model, self.settings)
        self._model: Model | None = None
        self._lock = threading.Lock()
        self._cors = cors_headers(self.settings.cors_origin)

    @property
    def model(self) -> Model:
        if self._model is None:
            with self._lock:  # the local server is threaded: load exactly once
                if self._model is None:
                    self._model = self._loader()
        return self._model

    def health(self) -> dict[str, Any]:
        model = self.model
        return {
            "status": "ok",
            "model": model.model_info,
            "classes": list(model.class_names),
            "skyclass_version": __version__,
        }

    def predict(self, request: Request, context: Any = None) -> dict[str, Any]:
        limit = self.settings.max_body_bytes
        declared_size = parse_content_length(request.headers.get("content-length")) or 0
        if len(request.body) > limit or declared_size > limit:
            raise HttpError(
                413, "payload_too_large", f"the body is over the limit of {limit:,} bytes"
            )
        top_k = _parse_top_k(request.query, self.settings.top_k)
        data = extract_image(request)
        model = self.model
        start = time.perf_counter()
        try:
            limits = decode_limits(self.settings, context)
            predictions = model.predict_image(data, top_k=top_k, limits=limits)
        except ImageError as exc:
            raise _image_error(exc) from exc
        if not all(math.isfinite(p.probability) for p in predictions):
            LOG.error("model output is not finite (NaN/Infinity): the bundle is broken")
            raise HttpError(
                503,
                "model_output_invalid",
                "the model produced a non-finite "
                "probability: its weights are broken; re-export the model",
            )
        return {
            "predictions": [p.to_dict() for p in predictions],
            "model": model.model_info,
            "latency_ms": round((time.perf_counter() - start) * 1000.0, 3),
        }

    def route(self, request: Request, context: Any = None) -> dict[str, Any]:
        segment = request.path.rstrip("/").rsplit("/", 1)[-1]
        if segment not in ("", "health", "predict"):
            raise HttpError(404, "not_found", f"no route {request.path!r}: use GET / or POST /")
        if request.method == "OPTIONS":
            return _response(204, "", content_type="text/plain")
        if request.method in ("GET", "HEAD") and segment != "predict":
            wants_html = "text/html" in request.headers.get("accept", "")
            if segment == "" and wants_html:
                return _response(200, index_html(), content_type="text/html; charset=utf-8")
            return _response(200, self.health())
        if request.method == "POST" and segment != "health":
            return _response(200, self.predict(request, context))
        allowed = (
            "POST, OPTIONS"
            if segment == "predict"
            else ("GET, HEAD, OPTIONS" if segment == "health" else "GET, HEAD, POST, OPTIONS")
        )
        raise HttpError(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {request.path}; use {allowed}",
            headers={"allow": allowed},
        )

    def __call__(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        start = time.perf_counter()
        request_id = str(getattr(context, "aws_request_id", "") or "local")
        status, method, path = 500, "?", "?"
        try:
            request = parse_event(event, context)
            request_id, method, path = request.request_id, request.method, request.path
            response = self.route(request, context)
        except HttpError as err:
            response = error_response(err, request_id)
        except SkyclassError as exc:  # model missing / damaged: the operator must act
            LOG.error("model unavailable (request %s): %s", request_id, exc)
            response = error_response(
                HttpError(503, "model_unavailable", f"the model could not be loaded: {exc}"),
                request_id,
            )
        except Exception:  # any bug: log it, answer 500 without internals
            LOG.exception("internal error (request %s)", request_id)
            response = error_response(
                HttpError(
                    500, "internal_error", "internal error; quote the request id when reporting it"
                ),
                request_id,
            )
        status = response["statusCode"]
        response["headers"].update(self._cors)  # on every answer, errors included
        response["headers"]["x-request-id"] = request_id
        # One line per request: never the body, which may be a private photo.
        LOG.info(
            json.dumps(
                {
                    "request_id": request_id,
                    "method": method,
                    "path": path,
                    "status": status,
                    "ms": round((time.perf_counter() - start) * 1000.0, 1),
                }
            )
        )
        return response


@functools.lru_cache(maxsize=1)
def default_app() -> App:
    """The process's App, its settings read from the environment at the first request."""
    return App(settings=ServingSettings.from_env())


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """AWS Lambda entry point (skyclass.serving.lambda_handler.handler)."""
    return default_app()(event, context)
