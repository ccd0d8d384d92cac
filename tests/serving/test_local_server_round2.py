"""`skyclass serve` under hostile clients, round two: malformed targets, CORS, a full server.

The server runs in this process (make_server on a free port, real sockets), so the tests can
set its prediction slots and CORS origin.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import hostile_payloads as hp
from skyclass.serving.local_server import connection_closed, make_server


@pytest.fixture()
def start_server(bundle_dir, monkeypatch):
    servers = []
    monkeypatch.delenv("CORS_ORIGIN", raising=False)  # the default: no CORS header

    def start(**kwargs):
        server = make_server(str(bundle_dir), port=0, quiet=True, **kwargs)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        host, port = server.server_address[:2]
        return f"http://{host}:{port}/", (host, port)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def raw_request(address, request: bytes) -> bytes:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("target", [b"http://[::1/x", b"http://[bad/", b"https://[::1:80/"])
def test_a_malformed_request_target_is_a_400(start_server, target, capfd):
    _, address = start_server()
    answer = raw_request(
        address, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:200]
    assert json.loads(body)["error"] == "bad_request"
    assert "Traceback" not in capfd.readouterr().err


def test_content_length_of_4301_digits_is_a_400(start_server):
    _, address = start_server()
    answer = raw_request(
        address,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        b"Content-Length: " + b"9" * 4301 + b"\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


def test_no_cors_header_unless_an_origin_is_given(start_server):
    url, _ = start_server()
    answer = requests.get(url + "health", headers={"Origin": "https://evil.example"}, timeout=10)
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers
    url, _ = start_server(cors="https://app.example")
    answer = requests.get(url + "health", timeout=10)
    assert answer.headers["access-control-allow-origin"] == "https://app.example"
    url, _ = start_server()  # one server's origin never leaks into the next (no os.environ)
    answer = requests.get(url + "health", timeout=10)
    assert "access-control-allow-origin" not in answer.headers


def test_a_full_server_answers_503_quickly(start_server):
    """One prediction slot, six uploads at once: the extra ones get 503 in about BUSY_WAIT_S."""
    url, _ = start_server(max_predictions=1)
    data = hp.rgb_png(6000)  # 36 Mpx of RGB, within the budget: each prediction takes a while

    def post(_):
        start = time.monotonic()
        r = requests.post(url, data=data, headers={"content-type": "image/png"}, timeout=120)
        return r.status_code, time.monotonic() - start, r.json()

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(post, range(6)))
    statuses = [s for s, _, _ in answers]
    assert 200 in statuses and 503 in statuses, statuses
    for status, seconds, body in answers:
        if status == 503:
            assert body["error"] == "busy" and seconds < 10


def test_a_closed_connection_is_seen_as_gone():
    left, right = socket.socketpair()
    try:
        assert not connection_closed(left)
        right.sendall(b"x")  # pipelined bytes: still there
        assert not connection_closed(left)
        right.close()
        left.recv(1)
        assert connection_closed(left)
    finally:
        left.close()
