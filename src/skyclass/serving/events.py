"""Turn a Lambda event (API Gateway REST v1, HTTP API v2, Function URL) into one Request.

What the course projects' handlers got wrong is handled here once: `isBase64Encoded` is
honoured (never a blind b64decode), header names are case-insensitive, a multipart body is
parsed properly with the stdlib `email` parser (the part named `file`, else the first file
part — not just `parts[0]`), and a raw `image/*` or `application/octet-stream` body works too.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

FILE_FIELD = "file"
RAW_TYPES = ("application/octet-stream",)
# Bounds of a form we parse (see _check_form_shape): far above what a browser sends.
MAX_CONTENT_TYPE_CHARS = 1024
MAX_FORM_PARTS = 100
MAX_PART_HEADER_BYTES = 16 * 1024
# Digits of a Content-Length we parse: 20 hold any real size (2^64 has 20); a longer one is
# malformed (Python refuses int() of over 4,300 digits, which was a 500).
MAX_LENGTH_DIGITS = 20
# Line endings as the stdlib `email` parser splits lines: CRLF, a bare CR or a bare LF.
_BLANK_LINE = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")
_LINE_ENDS = (b"\n", b"\r")


class HttpError(Exception):
    """An error answered to the client as JSON: {"error": code, "message": message}."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive header map (HTTP header names are case-insensitive)."""

    def __init__(self, raw: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, str] = {}
        for key, value in (raw or {}).items():
            if value is None:
                continue
            if isinstance(value, (list, tuple)):  # v1 multiValueHeaders
                value = ",".join(str(v) for v in value)
            self._data[str(key).lower()] = str(value)

    def __getitem__(self, key: str) -> str:
        return self._data[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class Request:
    method: str
    path: str
    headers: Headers
    query: dict[str, str]
    body: bytes
    request_id: str
    source: str = "v2"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower case ('' when absent)."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _decode_body(event: Mapping[str, Any]) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise HttpError(
                400, "bad_body", "isBase64Encoded is true but the body is not valid base64"
            ) from exc
    # API Gateway hands text bodies over as text; their bytes are the UTF-8 encoding.
    try:
        return str(body).encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError as exc:  # a lone surrogate (U+D800...) has no UTF-8 bytes
        raise HttpError(
            400, "bad_body", "the body text is not valid Unicode: send binary bodies base64-encoded"
        ) from exc


def _strip_stage(path: str, stage: str | None) -> str:
    if stage and stage != "$default" and (path == f"/{stage}" or path.startswith(f"/{stage}/")):
        path = path[len(stage) + 1 :]
    return path or "/"


def parse_event(event: Mapping[str, Any], context: Any = None) -> Request:
    """Any of the three HTTP event shapes -> Request (raises HttpError for a malformed body)."""
    if not isinstance(event, Mapping):
        raise HttpError(400, "bad_event", "the event is not an HTTP event object")
    try:
        return _parse_http_event(event, context)
    except (AttributeError, TypeError, ValueError) as exc:
        # `aws lambda invoke` can send any JSON: a field of the wrong type is the caller's error.
        raise HttpError(
            400,
            "bad_event",
            f"the event is not a valid API Gateway / Function URL event ({type(exc).__name__})",
        ) from exc


def _parse_http_event(event: Mapping[str, Any], context: Any) -> Request:
    ctx = event.get("requestContext") or {}
    request_id = str(ctx.get("requestId") or getattr(context, "aws_request_id", "") or "local")
    if event.get("version") == "2.0" or "rawPath" in event:  # HTTP API v2 and Function URLs
        http = ctx.get("http") or {}
        method = str(http.get("method") or "GET")
        path = _strip_stage(str(event.get("rawPath") or http.get("path") or "/"), ctx.get("stage"))
        headers = Headers(event.get("headers"))
        if event.get("cookies") and "cookie" not in headers:
            headers = Headers({**headers, "cookie": "; ".join(event["cookies"])})
        query = {k: str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
        source = "v2"
    else:  # REST API v1 (and serverless-offline's v1 events)
        method = str(event.get("httpMethod") or ctx.get("httpMethod") or "GET")
        path = _strip_stage(str(event.get("path") or "/"), ctx.get("stage"))
        merged: dict[str, Any] = dict(event.get("multiValueHeaders") or {})
        merged.update(event.get("headers") or {})
        headers = Headers(merged)
        query = {k: str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
        source = "v1"
    return Request(method.upper(), path, headers, query, _decode_body(event), request_id, source)


def parse_content_length(value: str | None) -> int | None:
    """A Content-Length header -> bytes (None when absent); HttpError 400 when malformed.

    Strict: ASCII digits only (no sign, spaces inside, '_' or '²', all of which int() would
    take or choke on), at most MAX_LENGTH_DIGITS of them, so parsing costs nothing.
    """
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_LENGTH_DIGITS:
        raise HttpError(
            400,
            "bad_content_length",
            f"the Content-Length header is not a number of at most {MAX_LENGTH_DIGITS} digits",
        )
    return int(text)


def _bad_form(message: str) -> HttpError:
    return HttpError(400, "bad_multipart", message)


def _form_head(content_type_header: str, parser: type, body: bytes = b"") -> Any:
    """The form as the `email` parser sees it (headers only with BytesHeaderParser)."""
    head = b"Content-Type: " + content_type_header.encode("latin-1", "replace") + b"\r\n\r\n"
    return parser(policy=email.policy.HTTP).parsebytes(head + body)


def _check_form_shape(body: bytes, content_type_header: str) -> None:
    """Refuse, before parsing, the forms that make the stdlib `email` parser slow or crash.

    Its header-parameter parsing is quadratic (a 600 kB Content-Type took 35 s, 500 kB of
    part-header parameters 18 s) and nested multiparts recurse until RecursionError. A real
    upload form has a short Content-Type, a few parts, small part headers and no nesting.
    """
    if len(content_type_header) > MAX_CONTENT_TYPE_CHARS:
        raise _bad_form(f"the Content-Type header is over {MAX_CONTENT_TYPE_CHARS} characters")
    boundary = _form_head(content_type_header, email.parser.BytesHeaderParser).get_boundary()
    if not boundary:
        raise _bad_form("multipart/form-data without a boundary parameter")
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    parts, pos = 0, body.find(delimiter)
    while pos >= 0:
        # Only a delimiter at a line start counts; a line may end in CRLF, CR or LF.
        if pos == 0 or body[pos - 1 : pos] in _LINE_ENDS:
            parts += 1
            if parts > MAX_FORM_PARTS + 1:  # n parts have n + 1 delimiters
                raise _bad_form(f"the form has more than {MAX_FORM_PARTS} parts")
            head = body[pos : pos + MAX_PART_HEADER_BYTES + 4]
            blank = _BLANK_LINE.search(head)
            end = blank.start() if blank else -1
            if end < 0 and len(head) > MAX_PART_HEADER_BYTES:
                raise _bad_form(f"a part's headers are over {MAX_PART_HEADER_BYTES} bytes")
            if b"multipart/" in head[: end if end >= 0 else None].lower():
                raise _bad_form(
                    "nested multipart parts are not supported: send the image as a plain file part"
                )
        pos = body.find(delimiter, pos + len(delimiter))


def _multipart_file(body: bytes, content_type_header: str) -> tuple[bytes, str]:
    """The uploaded file of a multipart/form-data body: field `file`, else the first file part."""
    if "boundary=" not in content_type_header.lower():
        raise HttpError(400, "bad_multipart", "multipart/form-data without a boundary parameter")
    _check_form_shape(body, content_type_header)
    try:
        return _parse_form_file(body, content_type_header)
    except (RecursionError, LookupError, ValueError, TypeError, AttributeError) as exc:
        # The stdlib parser's own failures on hostile input: a client error, not a 500.
        raise _bad_form(
            f"the multipart/form-data body could not be parsed ({type(exc).__name__})"
        ) from exc


def _parse_form_file(body: bytes, content_type_header: str) -> tuple[bytes, str]:
    message = _form_head(content_type_header, email.parser.BytesParser, body)
    if not message.is_multipart():
        raise HttpError(400, "bad_multipart", "the multipart/form-data body could not be parsed")
    named, first_file = None, None
    for part in message.iter_parts():
        if part.get_content_disposition() != "form-data":
            continue
        name = part.get_param("name", header="content-disposition")
        if name == FILE_FIELD and named is None:
            named = part
        if part.get_filename() is not None and first_file is None:
            first_file = part
    chosen = named or first_file
    if chosen is None:
        raise HttpError(
            400, "no_image", f"the form has no file: send the image in a field named {FILE_FIELD!r}"
        )
    payload = chosen.get_payload(decode=True)
    if isinstance(payload, str):
        payload = payload.encode("utf-8", errors="surrogateescape")
    return payload or b"", chosen.get_content_type()


def extract_image(request: Request) -> bytes:
    """The image bytes of a POST: multipart form, or a raw image/* / octet-stream body."""
    ctype = request.content_type
    if not request.body:
        raise HttpError(
            400,
            "empty_body",
            "the request has no body: POST an image (raw, or as "
            f"multipart/form-data in a field named {FILE_FIELD!r})",
        )
    if ctype == "multipart/form-data":
        data, _ = _multipart_file(request.body, request.headers.get("content-type", ""))
        if not data:
            raise HttpError(400, "empty_body", "the uploaded file is empty")
        return data
    if ctype.startswith("image/") or ctype in RAW_TYPES:
        return request.body
    raise HttpError(
        415,
        "unsupported_media_type",
        f"content type {ctype or '(none)'!r} is not supported: send "
        "multipart/form-data, image/* or application/octet-stream",
    )
