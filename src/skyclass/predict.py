"""`skyclass predict TARGET IMAGE...`: classify photos with a bundle or a deployed API.

TARGET is a bundle folder (inference in this process, through the serving Classifier) or an
http(s):// URL of `skyclass serve` or the Lambda API, to which each image is POSTed as
multipart/form-data in the field `file`, exactly like a REST client (Insomnia, curl -F) does.
Standard library only on the client side, so the lean serving install can use it.
"""

from __future__ import annotations

import csv
import io
import json
import mimetypes
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from skyclass.cores import usable_cores
from skyclass.errors import PredictError
from skyclass.fileio import atomic_write
from skyclass.images import ImageError
from skyclass.progress import progress


@dataclass
class PredictConfig:
    """What to classify (files and folders, searched recursively) and where the answers go."""

    target: str = field(
        metadata={
            "positional": True,
            "metavar": "TARGET",
            "help": "bundle folder, s3:// URI or http(s) URL",
        }
    )
    images: list[Path] = field(
        default_factory=list,
        metadata={
            "positional": True,
            "metavar": "IMAGE|FOLDER",
            "help": "image files and folders of images (searched recursively)",
        },
    )
    top_k: int = field(default=3, metadata={"help": "how many classes to show per image"})
    timeout: float = field(default=30.0, metadata={"help": "seconds to wait for an HTTP answer"})
    batch_size: int = field(
        default=32, metadata={"help": "images per ONNX forward pass with a bundle"}
    )
    quiet: bool = field(
        default=False,
        metadata={  # no progress bar
            "help": "no table, no progress bar (the files are still written)"
        },
    )

    def __post_init__(self) -> None:
        self.images = [Path(p) for p in self.images]
        if self.top_k < 1:
            raise PredictError("--top-k must be at least 1")
        if self.batch_size < 1:
            raise PredictError("--batch-size must be at least 1")
        if not self.images:
            raise PredictError("give at least one image or folder")


def _is_hidden(path: Path) -> bool:
    return any(part.startswith(".") for part in path.parts if part not in (".", ".."))


def expand_images(paths: list[Path]) -> list[Path]:
    """Files as given; folders searched recursively (hidden files and folders left out).

    Every file of a folder is tried, not only known image suffixes: one that is no image
    comes back as a per-file error, so nothing is skipped silently.
    """
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise PredictError(f"no such image file or folder: {', '.join(missing)}")
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(
                    f
                    for f in path.rglob("*")
                    if f.is_file() and not _is_hidden(f.relative_to(path))
                )
            )
        else:
            found.append(path)
    if not found:
        raise PredictError(f"no files in {', '.join(str(p) for p in paths)}")
    return found


def is_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))


def encode_multipart(
    field_name: str, filename: str, data: bytes, content_type: str
) -> tuple[bytes, str]:
    """A multipart/form-data body with one file part (RFC 7578) and its Content-Type."""
    boundary = f"skyclass-{uuid.uuid4().hex}"
    quoted = filename.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; '
        f'filename="{quoted}"\r\nContent-Type: {content_type}\r\n\r\n'
    )
    body = head.encode("utf-8") + data + f"\r\n--{boundary}--\r\n".encode("ascii")
    return body, f"multipart/form-data; boundary={boundary}"


def post_image(url: str, path: Path, top_k: int, timeout: float) -> dict[str, Any]:
    """POST one image to a skyclass API; the JSON answer (also for error statuses)."""
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    body, header = encode_multipart("file", path.name, path.read_bytes(), content_type)
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.urlencode([*urllib.parse.parse_qsl(parts.query), ("top_k", top_k)])
    request = urllib.request.Request(
        urllib.parse.urlunsplit(parts._replace(query=query)),
        data=body,
        method="POST",
        headers={"Content-Type": header, "Accept": "application/json"},
    )
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


def _decode_batch(classifier: Any, paths: list[Path], pool: ThreadPoolExecutor) -> list[Any]:
    """Each path -> its model input, or the exception that says why it cannot be read."""

    def one(path: Path) -> Any:
        try:
            return classifier.preprocess(path)
        except (ImageError, OSError) as exc:
            return exc

    return list(pool.map(one, paths))


def _local_results(
    classifier: Any, paths: list[Path], inputs: list[Any], top_k: int
) -> list[dict[str, Any]]:
    """One forward pass for the readable images of a batch; a per-file error for the rest."""
    import numpy as np

    from skyclass.serving.classifier import top_predictions

    ok = [i for i, x in enumerate(inputs) if not isinstance(x, Exception)]
    probs = (
        classifier.predict_proba(np.stack([inputs[i] for i in ok]))
        if ok
        else np.empty((0, len(classifier.class_names)))
    )
    rows: dict[int, dict[str, Any]] = {}
    for row, i in enumerate(ok):
        p = probs[row]
        rows[i] = {
            "image": str(paths[i]),
            "predictions": [t.to_dict() for t in top_predictions(p, classifier.class_names, top_k)],
            "probabilities": {name: float(p[c]) for c, name in enumerate(classifier.class_names)},
            "model": classifier.model_info,
        }
    return [
        rows.get(i) or {"image": str(paths[i]), "error": "bad_image", "message": str(inputs[i])}
        for i in range(len(paths))
    ]


def _batches(paths: list[Path], size: int, quiet: bool) -> Iterator[list[Path]]:
    """Batches of paths; a progress bar (on a terminal) counts the images as they go."""
    items = progress(paths, total=len(paths), desc="predict", quiet=quiet or len(paths) <= size)
    while batch := list(islice(items, size)):
        yield batch


def predict_local(config: PredictConfig, paths: list[Path]) -> list[dict[str, Any]]:
    """Batched inference through the bundle's ONNX model; images decode on a thread pool."""
    from skyclass.serving.bundle import resolve_bundle
    from skyclass.serving.classifier import Classifier

    classifier = Classifier.from_bundle(resolve_bundle(config.target))
    results: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=usable_cores()) as pool:
        for batch in _batches(paths, config.batch_size, config.quiet):
            inputs = _decode_batch(classifier, batch, pool)
            results.extend(_local_results(classifier, batch, inputs, config.top_k))
    return results


def predict_remote(
    config: PredictConfig, paths: list[Path], all_classes: bool
) -> list[dict[str, Any]]:
    """POST each image; with `all_classes` ask for every class (for --csv/--jsonl)."""
    from skyclass.serving.lambda_handler import MAX_TOP_K

    top_k = MAX_TOP_K if all_classes else config.top_k
    results = []
    for path in progress(paths, total=len(paths), desc="predict", quiet=config.quiet):
        answer = {"image": str(path), **post_image(config.target, path, top_k, config.timeout)}
        if "predictions" in answer and all_classes:
            answer["probabilities"] = {p["label"]: p["probability"] for p in answer["predictions"]}
            answer["predictions"] = answer["predictions"][: config.top_k]
        results.append(answer)
    return results


def predict(config: PredictConfig, all_classes: bool = False) -> list[dict[str, Any]]:
    """One result per image: {"image", "predictions"|"error", ...}. Bad images do not abort.

    Folders are searched recursively. A local bundle answers every class's probability
    ("probabilities"); a URL does too when `all_classes` is set (it costs a larger answer).
    """
    if not is_url(config.target) and not config.target.startswith("s3://"):
        from skyclass.inputs import BUNDLE, require

        require(
            config.target,
            (BUNDLE,),
            "predict",
            "a bundle folder from `skyclass export`, "
            "an s3:// bundle or the http(s):// URL of a skyclass API",
        )
    paths = expand_images(config.images)
    if not is_url(config.target):
        return predict_local(config, paths)
    return predict_remote(config, paths, all_classes)


def class_names_of(results: list[dict[str, Any]]) -> list[str]:
    """Every class seen in the results' probabilities, in the model's order where known."""
    names: list[str] = []
    for result in results:
        for name in result.get("probabilities", {}):
            if name not in names:
                names.append(name)
    return names


def csv_text(results: list[dict[str, Any]]) -> str:
    """image, predicted, probability, error, then one column per class (its probability)."""
    classes = class_names_of(results)
    fixed = ["image", "predicted", "probability", "error"]
    header = fixed + [f"p_{c}" if c in fixed else c for c in classes]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for r in results:
        top = (r.get("predictions") or [{}])[0]
        probs = r.get("probabilities", {})
        writer.writerow(
            [
                r["image"],
                top.get("label", ""),
                f"{top['probability']:.6f}" if "probability" in top else "",
                "" if "predictions" in r else r.get("message", r.get("error", "")),
                *(f"{probs[c]:.6f}" if c in probs else "" for c in classes),
            ]
        )
    return out.getvalue()


def jsonl_text(results: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)


def check_output(path: Path) -> None:
    """Before any work: an output file must not be a folder and its folder must exist."""
    if path.is_dir():
        raise PredictError(
            f"{path} is a folder: give a file name, e.g. {path / 'predictions'}"
            f"{path.suffix or '.csv'}"
        )
    if not path.parent.is_dir():
        raise PredictError(
            f"the folder of {path} does not exist: create it with "
            f"`mkdir -p {path.parent}` or choose another file"
        )


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def format_table(results: list[dict[str, Any]]) -> str:
    """A plain-text table: image, rank, label, probability."""
    rows = [("image", "#", "label", "probability")]
    for result in results:
        if "predictions" not in result:
            rows.append((result["image"], "-", f"error: {result.get('message', result)}", ""))
            continue
        for rank, p in enumerate(result["predictions"], 1):
            rows.append(
                (
                    result["image"] if rank == 1 else "",
                    str(rank),
                    p["label"],
                    f"{p['probability']:.4f}",
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
        for r in rows
    )
