"""`skyclass serve`: a local HTTP server that calls the Lambda handler with real v2 events.

Each HTTP request becomes the API Gateway HTTP API (payload v2) event Lambda would receive,
body base64-encoded as API Gateway does for binary bodies, and goes through the very same
`App` as on Lambda, so local and deployed behaviour cannot drift apart. Standard library only.

Unlike Lambda (one request per instance) one process serves everyone here, so it bounds what
runs at once: at most `max_predictions` POSTs are decoded and classified concurrently (each
within the decode budget); another one waits up to BUSY_WAIT_S, then gets a 503 with
Retry-After. A slot is taken only once the whole body has arrived (slow senders hold none).
A prediction whose client hangs up stops decoding at the decoder's next read. No CORS header
by default: the upload page is served by the same origin; `--cors ORIGIN` lets other pages
call it.
"""

from __future__ import annotations

import base64
import errno
import json
import select
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from skyclass.errors import SkyclassError
from skyclass.serving.events import HttpError, parse_content_length
from skyclass.serving.lambda_handler import App
from skyclass.serving.settings import DEFAULT_MAX_PREDICTIONS, ServeConfig, ServingSettings


def build_v2_event(
    method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str = "127.0.0.1"
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event, as Lambda receives it."""
    url = urlsplit(target)
    now = time.time()
    request_id = str(uuid.uuid4())
    lowered: dict[str, str] = {}
    for key, value in headers.items():  # repeated headers are comma-joined, as in v2
        k = key.lower()
        lowered[k] = f"{lowered[k]},{value}" if k in lowered else value
    query: dict[str, str] = {}
    for key, value in parse_qsl(url.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": url.path or "/",
        "rawQueryString": url.query,
        "headers": lowered,
        "queryStringParameters": query or None,
        "requestContext": {
            "accountId": "local",
            "apiId": "local",
            "domainName": lowered.get("host", "local"),
            "http": {
                "method": method,
                "path": url.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": base64.b64encode(body).decode("ascii") if body else None,
        "isBase64Encoded": bool(body),
    }


class _LambdaContext:
    """The few attributes of Lambda's context object that the handler reads, plus
    `client_gone` (the decode stops when it turns true)."""

    def __init__(self, request_id: str, connection: socket.socket | None = None) -> None:
        self.aws_request_id = request_id
        self.function_name = "skyclass-local"
        self._connection = connection
        self._checked, self._gone = 0.0, False

    def client_gone(self) -> bool:
        """True once the client closed its connection (polled at most every 50 ms)."""
        if self._gone or self._connection is None:
            return self._gone
        now = time.monotonic()
        if now - self._checked >= 0.05:
            self._checked = now
            self._gone = connection_closed(self._connection)
        return self._gone


def connection_closed(sock: socket.socket) -> bool:
    """Whether the peer closed `sock` (readable with nothing to read, or reset)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):
        return True


# Seconds a connection may stay silent: without it, a client that stops sending mid-request
# (or never sends one) holds a server thread for ever.
IDLE_TIMEOUT_S = 30.0
# Seconds a POST waits for a free prediction slot before it is answered 503.
BUSY_WAIT_S = 0.5


def make_request_handler(
    app: App,
    max_predictions: int = DEFAULT_MAX_PREDICTIONS,
) -> type[BaseHTTPRequestHandler]:
    max_body = app.settings.max_body_bytes
    slots = threading.BoundedSemaphore(max(1, max_predictions))

    class Handler(BaseHTTPRequestHandler):
        server_version = "skyclass"
        protocol_version = "HTTP/1.1"
        timeout = IDLE_TIMEOUT_S  # socket timeout; http.server closes the connection on it

        def _dispatch(self) -> None:
            headers = dict(self.headers.items())
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                self._send_json(
                    411,
                    {
                        "error": "length_required",
                        "message": "send a Content-Length (no chunked bodies)",
                    },
                )
                return
            try:
                length = parse_content_length(self.headers.get("content-length")) or 0
                urlsplit(self.path)  # the event needs it: refuse a malformed target first
            except HttpError as err:
                self._send_json(err.status, {"error": err.code, "message": err.message})
                return
            except ValueError as exc:  # urlsplit: "http://[::1/x" is not a URL
                self._send_json(
                    400, {"error": "bad_request", "message": f"malformed request target ({exc})"}
                )
                return
            # Over the limit: do not read it, the handler answers 413 from Content-Length.
            body = self.rfile.read(length) if length <= max_body else b""
            if length > max_body:
                self.close_connection = True
            event = build_v2_event(self.command, self.path, headers, body, self.client_address[0])
            context = _LambdaContext(event["requestContext"]["requestId"], self.connection)
            if self.command != "POST" or length > max_body:  # cheap answers need no slot
                self._send(app(event, context))
                return
            # Slow senders do not hold a slot: it is taken once the whole body is here.
            if not slots.acquire(timeout=BUSY_WAIT_S):
                self._send_json(
                    503,
                    {
                        "error": "busy",
                        "message": "the server is busy with other predictions; retry in a moment",
                    },
                    {"retry-after": "1"},
                )
                return
            try:
                result = app(event, context)
            finally:
                slots.release()
            self._send(result)

        def _send(self, result: dict[str, Any]) -> None:
            body = result.get("body") or ""
            data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
            self.send_response(int(result["statusCode"]))
            for key, value in (result.get("headers") or {}).items():
                self.send_header(key, str(value))
            self.send_header("content-length", str(len(data)))
            if self.close_connection:
                self.send_header("connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _send_json(
            self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            self.close_connection = True
            self._send(
                {
                    "statusCode": status,
                    "body": json.dumps(payload),
                    "headers": {"content-type": "application/json", **(headers or {})},
                }
            )

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return Handler


def make_server(
    bundle: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    quiet: bool = False,
    cors: str | None = None,
    max_predictions: int = DEFAULT_MAX_PREDICTIONS,
    settings: ServingSettings | None = None,
) -> ThreadingHTTPServer:
    """A server for BUNDLE (a folder or s3:// URI) with the model already loaded (fail fast).

    `settings`: the handler's (default: the environment's, read now), with BUNDLE as the model
    and `cors` (the origin, or '*', allowed to call it from other pages) when given.
    """
    config = ServeConfig(
        bundle=str(bundle),
        host=host,
        port=port,
        quiet=quiet,
        cors=cors,
        max_predictions=max_predictions,
    )
    return server_for(config, settings)


def server_for(
    config: ServeConfig,
    settings: ServingSettings | None = None,
) -> ThreadingHTTPServer:
    """`make_server` for a `ServeConfig` (what `skyclass serve` parsed)."""
    app = App(settings=config.settings(settings))
    _ = app.model
    handler = make_request_handler(app, config.max_predictions)
    if config.quiet:
        handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    try:
        server = ThreadingHTTPServer((config.host, config.port), handler)
    except OSError as exc:
        hint = (
            f"; another program is using port {config.port}: choose another with --port N, "
            "or --port 0 for any free one"
            if exc.errno == errno.EADDRINUSE
            else ""
        )
        raise SkyclassError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}{hint}",
        ) from exc
    server.daemon_threads = True
    return server


def serve(config: ServeConfig) -> None:
    """`skyclass serve`: serve until Ctrl-C."""
    server = server_for(config)
    bound_host, bound_port = str(server.server_address[0]), server.server_address[1]
    print(
        f"skyclass serving {config.bundle} on http://{bound_host}:{bound_port}/ (Ctrl-C to stop)",
        flush=True,
    )
    serve_until_interrupted(server)


def serve_until_interrupted(server: ThreadingHTTPServer) -> None:
    """Serve until Ctrl-C, then close the socket (the local servers' shared main loop)."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
