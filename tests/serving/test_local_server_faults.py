"""`skyclass serve` against clients that misbehave at the socket level."""

from __future__ import annotations

import socket
import threading
import time

import requests

from skyclass.serving.local_server import make_server

HEAD = (
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
    b"Content-Length: 100000\r\n\r\n"
)


def test_stalled_clients_are_cut_off_and_others_still_served(bundle_dir, photo_bytes, monkeypatch):
    """Clients that promise a body and go silent (slowloris) are dropped after the idle
    timeout; meanwhile and afterwards a real upload is answered. Before the fix a stalled
    client held its server thread for ever."""
    server = make_server(str(bundle_dir), "127.0.0.1", 0, quiet=True)
    server.RequestHandlerClass.timeout = 1.0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    url = f"http://{host}:{port}/"
    stalled = []
    try:
        for _ in range(20):
            sock = socket.create_connection((host, port), timeout=10)
            sock.sendall(HEAD + b"\xff\xd8 only the start")
            stalled.append(sock)
        ok = requests.post(
            url, data=photo_bytes, headers={"content-type": "image/jpeg"}, timeout=30
        )
        assert ok.status_code == 200 and ok.json()["predictions"]
        start = time.monotonic()
        for sock in stalled:  # the server closes each (EOF) instead of waiting for ever
            assert sock.recv(4096) == b""
        assert time.monotonic() - start < 8
        assert requests.get(url + "health", timeout=10).json()["status"] == "ok"
    finally:
        for sock in stalled:
            sock.close()
        server.shutdown()
        server.server_close()
