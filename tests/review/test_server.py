"""The review server's HTTP surface: only the dataset's suspects and examples are served,
bad requests get a clear 400 and change nothing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from .test_page import review_server


def _call(url: str, body: dict | None = None) -> tuple[int, bytes, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def test_api_serves_only_known_images_and_rejects_bad_decisions(review_copy):
    with review_server(review_copy) as url:
        status, body, headers = _call(url + "api/state")
        state = json.loads(body)
        assert status == 200 and state["classes"] == ["bird", "drone"] and state["issues"]
        assert "default-src 'self'" in headers["content-security-policy"]
        first = state["issues"][0]
        status, body, headers = _call(url + "img?p=" + urllib.request.quote(first["path"]))
        assert status == 200 and headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
        # Only suspects and typical examples: no reading other zip members (or files).
        for probe in ("manifest.csv", "report.json", "../../etc/passwd"):
            assert _call(url + "img?p=" + urllib.request.quote(probe))[0] == 404
        for bad in (
            {"id": first["id"], "action": "delete"},
            {"id": 10_000, "action": "keep"},
            {"id": first["id"], "action": "relabel", "label": "helicopter"},
        ):
            status, body, _ = _call(url + "api/decide", bad)
            assert status == 400 and json.loads(body)["message"]
        assert not (review_copy / "decisions.csv").exists()
        status, body, _ = _call(url + "api/decide", {"id": first["id"], "action": "keep"})
        assert status == 200 and json.loads(body)["decisions"] == {
            str(first["id"]): {"action": "keep", "label": ""}
        }
        assert (review_copy / "decisions.csv").read_text().count("\n") == 2


def test_no_review_in_the_folder_is_a_clear_error(tmp_path):
    from skyclass.errors import SkyclassError
    from skyclass.review.server import make_server

    with pytest.raises(SkyclassError, match="holds no review"):
        make_server(tmp_path, port=0)
