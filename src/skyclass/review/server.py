"""`skyclass review --serve`: a local page to decide about each suspect, saved as you go.

Same conventions as `skyclass serve`: standard-library HTTP server on 127.0.0.1, the page
loads nothing from outside (thumbnails come from the dataset zip through this server). Every
decision rewrites REVIEW_DIR/decisions.csv atomically before the answer is sent, so killing the
server loses nothing, and reopening it shows the decisions already made. No torch here.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from skyclass.dataset_zip import PreparedDataset
from skyclass.errors import SkyclassError
from skyclass.prepare.decisions import Decision, now_iso, read_decisions, write_decisions
from skyclass.review import DECISIONS_NAME, SUMMARY_NAME, read_issues
from skyclass.review.config import DEFAULT_PORT
from skyclass.review.gallery import thumbnail_jpeg
from skyclass.serving.local_server import IDLE_TIMEOUT_S, serve_until_interrupted

PAGE = "review_page.html"
MAX_BODY = 64 * 1024
# What each page action writes (accept = relabel to the suggestion).
PAGE_ACTIONS = ("accept", "keep", "exclude", "relabel")


class ReviewSession:
    """The suspects, the decisions file and the undo history behind the page."""

    def __init__(self, review_dir: str | Path) -> None:
        self.dir = Path(review_dir)
        try:
            self.summary = json.loads((self.dir / SUMMARY_NAME).read_text())
            rows = read_issues(self.dir)
        except (OSError, ValueError) as exc:
            raise SkyclassError(
                f"{self.dir} holds no review (run `skyclass review DATASET.zip "
                f"--out {self.dir}` first): {exc}"
            ) from exc
        self.dataset = PreparedDataset(self.summary["dataset"])
        self.classes: list[str] = list(self.summary["class_names"])
        # Only photos in the zip can be decided here (prepare's conflicts are not in it).
        self.issues = [r for r in rows if r["path"]]
        self.by_id = {i: r for i, r in enumerate(self.issues)}
        self.decisions_path = self.dir / DECISIONS_NAME
        self.decisions: dict[str, Decision] = {}
        if self.decisions_path.is_file():
            self.decisions = {d.source: d for d in read_decisions(self.decisions_path)}
        self.history: list[tuple[str, Decision | None]] = []
        self.lock = threading.Lock()
        self.images = {r["path"] for r in self.issues}
        for paths in self.summary.get("typical", {}).values():
            self.images.update(paths)
        self._thumbs: dict[str, bytes] = {}

    def state(self) -> dict:
        with self.lock:
            return {
                "dataset": Path(self.summary["dataset"]).name,
                "classes": self.classes,
                "issues": [{"id": i, **r} for i, r in self.by_id.items()],
                "typical": self.summary.get("typical", {}),
                "decisions": self._decisions_by_id(),
                "decisions_file": str(self.decisions_path),
            }

    def _decisions_by_id(self) -> dict[int, dict]:
        out = {}
        for i, r in self.by_id.items():
            d = self.decisions.get(r["source"])
            if d is not None and d.sha256 == r["sha256"]:
                out[i] = {"action": d.action, "label": d.label}
        return out

    def decide(self, issue_id: int, action: str, label: str = "") -> dict:
        issue = self.by_id.get(issue_id)
        if issue is None:
            raise ValueError(f"no suspect #{issue_id}")
        if action not in PAGE_ACTIONS:
            raise ValueError(f"action must be one of {PAGE_ACTIONS}")
        if action == "accept":
            if not issue["suggested"]:
                raise ValueError("this suspect has no suggested class: keep, exclude or pick one")
            action, label = "relabel", issue["suggested"]
        if action == "relabel":
            if label not in self.classes:
                raise ValueError(f"unknown class {label!r}")
            if label == issue["given"]:
                action, label = "keep", ""
        else:
            label = ""
        decision = Decision(
            source=issue["source"],
            sha256=issue["sha256"],
            given=issue["given"],
            action=action,
            label=label,
            path=issue["path"],
            decided_at=now_iso(),
        )
        with self.lock:
            self.history.append((issue["source"], self.decisions.get(issue["source"])))
            self._set(issue["source"], decision)
            return self._decisions_by_id()

    def undo(self) -> dict:
        with self.lock:
            undone = None
            if self.history:
                source, previous = self.history.pop()
                self._set(source, previous)
                undone = next((i for i, r in self.by_id.items() if r["source"] == source), None)
            return {"undone": undone, "decisions": self._decisions_by_id()}

    def _set(self, source: str, decision: Decision | None) -> None:
        """Change one decision and rewrite the file at once (atomically)."""
        updated = dict(self.decisions)
        updated.pop(source, None)
        if decision is not None:
            updated[source] = decision
        write_decisions(self.decisions_path, list(updated.values()))
        self.decisions = updated

    def thumbnail(self, path: str) -> bytes | None:
        if path not in self.images:
            return None
        if path not in self._thumbs:
            self._thumbs[path] = thumbnail_jpeg(self.dataset.read(path), side=224)
        return self._thumbs[path]


def page_html() -> bytes:
    return resources.files("skyclass.review").joinpath("static").joinpath(PAGE).read_bytes()


def make_handler(session: ReviewSession, quiet: bool = False) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "skyclass-review"
        protocol_version = "HTTP/1.1"
        timeout = IDLE_TIMEOUT_S

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path in ("/", "/index.html"):
                self._send(200, page_html(), "text/html; charset=utf-8")
            elif url.path == "/api/state":
                self._json(200, session.state())
            elif url.path == "/img":
                path = (parse_qs(url.query).get("p") or [""])[0]
                data = session.thumbnail(path)
                if data is None:
                    self._json(404, {"error": "not_found", "message": "no such image"})
                else:
                    self._send(200, data, "image/jpeg", cache=True)
            else:
                self._json(404, {"error": "not_found", "message": f"no page {url.path}"})

        def do_POST(self) -> None:
            routes: dict[str, Callable[[dict], Any]] = {
                "/api/decide": lambda b: session.decide(
                    int(b.get("id", -1)), str(b.get("action", "")), str(b.get("label") or "")
                ),
                "/api/undo": lambda b: session.undo(),
            }
            route = routes.get(urlsplit(self.path).path)
            if route is None:
                self._json(404, {"error": "not_found", "message": "no such endpoint"})
                return
            try:
                length = int(self.headers.get("content-length") or 0)
                if not 0 <= length <= MAX_BODY:
                    raise ValueError("body too large")
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("send a JSON object")
                self._json(
                    200, {"decisions": route(body)} if "decide" in self.path else route(body)
                )
            except (ValueError, TypeError) as exc:
                self.close_connection = True
                self._json(400, {"error": "bad_request", "message": str(exc)})

        def _json(self, status: int, payload: Any) -> None:
            self._send(status, json.dumps(payload).encode("utf-8"), "application/json")

        def _send(self, status: int, data: bytes, ctype: str, cache: bool = False) -> None:
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(data)))
            self.send_header("cache-control", "max-age=3600" if cache else "no-store")
            # The page may talk only to this server.
            self.send_header(
                "content-security-policy",
                "default-src 'self'; img-src 'self'; style-src 'self' "
                "'unsafe-inline'; script-src 'self' 'unsafe-inline'",
            )
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            if not quiet:
                sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return Handler


def make_server(
    review_dir: str | Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT, quiet: bool = False
) -> ThreadingHTTPServer:
    session = ReviewSession(review_dir)
    try:
        server = ThreadingHTTPServer((host, port), make_handler(session, quiet))
    except OSError as exc:
        raise SkyclassError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    server.daemon_threads = True
    return server


def serve(
    review_dir: str | Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT, quiet: bool = False
) -> None:
    server = make_server(review_dir, host, port, quiet)
    bound_host, bound_port = server.server_address[:2]
    if isinstance(bound_host, bytes):  # typeshed allows it; AF_INET gives str
        bound_host = bound_host.decode()
    print(
        f"skyclass review page on http://{bound_host}:{bound_port}/ (keys: a accept, k keep, "
        f"x exclude, 1-9 class, u undo, arrows move; Ctrl-C to stop; decisions are saved to "
        f"{Path(review_dir) / DECISIONS_NAME} as you go)",
        flush=True,
    )
    serve_until_interrupted(server)
