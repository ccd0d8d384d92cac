"""`skyclass predict TARGET IMAGE...`: classify photos with a bundle or a deployed API.

TARGET is a bundle folder (inference in this process, through the serving Classifier) or an
http(s):// URL of `skyclass serve` or the Lambda API, to which each image is POSTed as
multipart/form-data in the field `file`, exactly like a REST client (Insomnia, curl -F) does.
Standard library only on the client side, so the lean serving install can use it.
"""

from __future__ import annotations

import json
import mimetypes
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skyclass.errors import SkyclassError
from skyclass.images import ImageError


class PredictError(SkyclassError):
    """The target cannot be used (no bundle there, server unreachable)."""


@dataclass
class PredictConfig:
    target: str
    images: list[Path] = field(default_factory=list)
    top_k: int = 3
    timeout: float = 30.0

    def __post_init__(self) -> None:
        self.images = [Path(p) for p in self.images]
        if self.top_k < 1:
            raise PredictError("--top-k must be at least 1")
        if not self.images:
            raise PredictError("give at least one image")


def is_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))


def encode_multipart(field_name: str, filename: str, data: bytes,
                     content_type: str) -> tuple[bytes, str]:
    """A multipart/form-data body with one file part (RFC 7578) and its Content-Type."""
    boundary = f"skyclass-{uuid.uuid4().hex}"
    quoted = filename.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field_name}\"; "
            f"filename=\"{quoted}\"\r\nContent-Type: {content_type}\r\n\r\n")
    body = head.encode("utf-8") + data + f"\r\n--{boundary}--\r\n".encode("ascii")
    return body, f"multipart/form-data; boundary={boundary}"


def post_image(url: str, path: Path, top_k: int, timeout: float) -> dict[str, Any]:
    """POST one image to a skyclass API; the JSON answer (also for error statuses)."""
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    body, header = encode_multipart("file", path.name, path.read_bytes(), content_type)
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.urlencode([*urllib.parse.parse_qsl(parts.query), ("top_k", top_k)])
    request = urllib.request.Request(
        urllib.parse.urlunsplit(parts._replace(query=query)), data=body, method="POST",
        headers={"Content-Type": header, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # the API's JSON error: report it per image
        try:
            return json.loads(exc.read())
        except ValueError:
            return {"error": f"http_{exc.code}", "message": str(exc.reason)}
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise PredictError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from exc
    except ValueError as exc:
        raise PredictError(f"{url} did not answer JSON: is it a skyclass API?") from exc


def predict_local(config: PredictConfig) -> list[dict[str, Any]]:
    from skyclass.serving.bundle import resolve_bundle
    from skyclass.serving.classifier import Classifier

    classifier = Classifier.from_bundle(resolve_bundle(config.target))
    results = []
    for path in config.images:
        try:
            predictions = [p.to_dict() for p in classifier.predict_bytes(path, config.top_k)]
            results.append({"image": str(path), "predictions": predictions,
                            "model": classifier.model_info})
        except (ImageError, OSError) as exc:
            results.append({"image": str(path), "error": "bad_image", "message": str(exc)})
    return results


def predict(config: PredictConfig) -> list[dict[str, Any]]:
    """One result per image: {"image", "predictions"|"error", ...}. Bad images do not abort."""
    missing = [str(p) for p in config.images if not p.is_file()]
    if missing:
        raise PredictError(f"no such image file: {', '.join(missing)}")
    if not is_url(config.target):
        return predict_local(config)
    return [{"image": str(p), **post_image(config.target, p, config.top_k, config.timeout)}
            for p in config.images]


def format_table(results: list[dict[str, Any]]) -> str:
    """A plain-text table: image, rank, label, probability."""
    rows = [("image", "#", "label", "probability")]
    for result in results:
        if "predictions" not in result:
            rows.append((result["image"], "-", f"error: {result.get('message', result)}", ""))
            continue
        for rank, p in enumerate(result["predictions"], 1):
            rows.append((result["image"] if rank == 1 else "", str(rank), p["label"],
                         f"{p['probability']:.4f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
        for r in rows)
