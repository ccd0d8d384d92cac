"""Load and soak `skyclass serve` on 127.0.0.1: real images, real HTTP, bounded and self-stopping.

1. load: N requests (default 2,000) at concurrency C (default 16), real bird/drone JPEGs, half as
   multipart/form-data and half as raw image/jpeg bodies. Every answer must be a 200 with
   predictions; reports p50/p90/p99/max latency and throughput.
2. soak: M more requests (default 3,000, at most --soak-seconds) where every 5th one is bad,
   in turn an empty body (400 empty_body), a text body (415 unsupported_media_type) and a
   truncated JPEG (400 bad_image). Every answer must have exactly the expected status and error
   code; the server's RSS (VmRSS of its process) is sampled and must stay bounded.

The bundle: --bundle, else /tmp/dep_bench/bundle when present (a width_mult 1.0 export), else
one is trained for 1 epoch (width_mult 1.0, ImageNet weights) on --data and exported. The server
is started with --port 0 (a free port) on 127.0.0.1 and always stopped at the end.

    nice -n 10 .venv/bin/python bench/serve_load.py [--requests 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from serving.server_proc import serve_in_subprocess  # noqa: E402  (a test helper, not shipped)

SHARED = ROOT.parent / "shared" / "datasets" / "bird_drone"
RESULTS = ROOT / "bench" / "results" / "serve_load.json"
REUSE = Path("/tmp/dep_bench/bundle")
# Bad requests of the soak, in turn: (name, content type, body maker, status, error code).
BAD_KINDS = ("empty", "text", "truncated_jpeg")


def ensure_bundle(args: argparse.Namespace) -> tuple[Path, str]:
    """The bundle to serve and a sentence saying where it came from."""
    if args.bundle:
        return Path(args.bundle), f"given: {args.bundle}"
    if (REUSE / "model.onnx").is_file():
        return REUSE, f"reused {REUSE} (width_mult 1.0 export of bench/deploy_offline.py)"
    from skyclass.export import ExportConfig, export_bundle
    from skyclass.train import TrainConfig, train

    work = Path("/tmp/serve_load")
    run = work / "run"
    if not (run / "best.pt").is_file():
        train(
            TrainConfig(
                data=args.data,
                out=str(run),
                epochs=1,
                width_mult=1.0,
                workers=0,
                seed=0,
                quiet=True,
            )
        )
    bundle = work / "bundle"
    if not (bundle / "model.onnx").is_file():
        export_bundle(ExportConfig(run=run, out=bundle, force=True))
    return bundle, f"trained 1 epoch (width_mult 1.0) on {args.data}, exported to {bundle}"


@contextmanager
def serving(bundle: Path, timeout: float = 120.0) -> Iterator[tuple[str, int]]:
    """`skyclass serve BUNDLE --port 0` on 127.0.0.1 -> (base URL, server pid); stopped after."""
    with serve_in_subprocess(bundle, timeout=timeout) as (url, proc):
        yield url, proc.pid


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


_local = threading.local()


def session() -> requests.Session:
    """One keep-alive session per client thread."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def post(url: str, i: int, photos: list[bytes]) -> tuple[int, str, float]:
    """Request i of the load: a real photo, multipart on even i, raw image/jpeg on odd i."""
    photo = photos[i % len(photos)]
    start = time.perf_counter()
    if i % 2 == 0:
        resp = session().post(url, files={"file": (f"p{i}.jpg", photo, "image/jpeg")}, timeout=60)
    else:
        resp = session().post(url, data=photo, headers={"content-type": "image/jpeg"}, timeout=60)
    elapsed = time.perf_counter() - start
    ok = resp.status_code == 200 and bool(resp.json().get("predictions"))
    return resp.status_code, "ok" if ok else resp.text[:200], elapsed


def bad_request(url: str, kind: str, photo: bytes) -> tuple[int, str]:
    if kind == "empty":
        resp = session().post(url, data=b"", headers={"content-type": "image/jpeg"}, timeout=60)
    elif kind == "text":
        resp = session().post(
            url, data=b"hello, not an image", headers={"content-type": "text/plain"}, timeout=60
        )
    else:
        resp = session().post(
            url, data=photo[: len(photo) // 3], headers={"content-type": "image/jpeg"}, timeout=60
        )
    return resp.status_code, resp.json().get("error", "")


EXPECTED_BAD = {
    "empty": (400, "empty_body"),
    "text": (415, "unsupported_media_type"),
    "truncated_jpeg": (400, "bad_image"),
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def load_phase(url: str, photos: list[bytes], n: int, concurrency: int) -> dict:
    def one(i: int) -> tuple[int, str, float]:
        try:
            return post(url, i, photos)
        except requests.RequestException as exc:
            return -1, f"{type(exc).__name__}: {exc}", 0.0

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(n)))
    wall = time.perf_counter() - start
    latencies = [r[2] * 1000 for r in results if r[1] == "ok"]
    errors = [r for r in results if r[1] != "ok"]
    return {
        "requests": n,
        "concurrency": concurrency,
        "errors": len(errors),
        "error_samples": [f"{s}: {m}" for s, m, _ in errors[:5]],
        "wall_s": round(wall, 2),
        "throughput_rps": round(n / wall, 2),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 1),
            "p90": round(percentile(latencies, 90), 1),
            "p99": round(percentile(latencies, 99), 1),
            "max": round(max(latencies), 1),
            "mean": round(statistics.fmean(latencies), 1),
        }
        if latencies
        else {},
    }


def soak_phase(
    url: str, pid: int, photos: list[bytes], n: int, concurrency: int, seconds: float
) -> dict:
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    rss: list[float] = [round(rss_mb(pid), 1)]
    tally: Counter = Counter()
    wrong: list[str] = []

    def one(i: int) -> None:
        if time.monotonic() > deadline:
            tally["skipped_time_up"] += 1
            return
        try:
            if i % 5 == 4:
                kind = BAD_KINDS[(i // 5) % len(BAD_KINDS)]
                got = bad_request(url, kind, photos[i % len(photos)])
                expected = EXPECTED_BAD[kind]
            else:
                kind = "good"
                status, message, _ = post(url, i, photos)
                got, expected = (status, message), (200, "ok")
        except requests.RequestException as exc:
            kind, got, expected = "exception", (-1, type(exc).__name__), (None, None)
        with lock:
            tally[kind] += 1
            if got != expected:
                wrong.append(f"request {i} ({kind}): got {got}, expected {expected}")
            if i % 100 == 99:
                rss.append(round(rss_mb(pid), 1))

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    rss.append(round(rss_mb(pid), 1))
    done = sum(v for k, v in tally.items() if k != "skipped_time_up")
    return {
        "requests": done,
        "by_kind": dict(tally),
        "wrong_status": len(wrong),
        "wrong_samples": wrong[:5],
        "wall_s": round(time.perf_counter() - start, 2),
        "rss_mb": {"start": rss[0], "end": rss[-1], "max": max(rss), "samples": rss},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default=None)
    parser.add_argument("--data", default="/tmp/bd.zip", help="dataset zip to train one from")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--soak-requests", type=int, default=3000)
    parser.add_argument("--soak-seconds", type=float, default=300.0)
    parser.add_argument(
        "--rss-growth-mb",
        type=float,
        default=50.0,
        help="allowed RSS growth from the start to the end of the soak",
    )
    parser.add_argument("--photos", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    bundle, origin = ensure_bundle(args)
    every = sorted(SHARED.glob("*/*.jpg"))  # spread over both classes
    paths = every[:: max(1, len(every) // args.photos)][: args.photos]
    photos = [p.read_bytes() for p in paths]
    with serving(bundle) as (url, pid):
        for i in range(8):  # warm-up: the first requests pay lazy initialisation
            post(url, i, photos)
        rss_after_warmup = round(rss_mb(pid), 1)
        load = load_phase(url, photos, args.requests, args.concurrency)
        soak = soak_phase(url, pid, photos, args.soak_requests, args.concurrency, args.soak_seconds)
    # Bounded = no growth over the soak: the load phase already grew the server to its working
    # size (onnxruntime buffers for 16 concurrent runs), a leak would keep growing after it.
    growth = soak["rss_mb"]["end"] - soak["rss_mb"]["start"]
    result = {
        "bundle": str(bundle),
        "bundle_origin": origin,
        "manifest_model": json.loads((bundle / "skyclass.json").read_text())["model"],
        "server": "skyclass serve --host 127.0.0.1 --port 0 --quiet (ThreadingHTTPServer)",
        "client": "requests, one keep-alive Session per thread, same machine",
        "photos": len(photos),
        "cpu_count": os.cpu_count(),
        "rss_after_warmup_mb": rss_after_warmup,
        "load": load,
        "soak": soak,
        "soak_rss_growth_mb": round(growth, 1),
        "ok": load["errors"] == 0 and soak["wrong_status"] == 0 and growth < args.rss_growth_mb,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    lat = load["latency_ms"]
    print(
        f"load: {load['requests']} requests, {load['errors']} errors, p50 {lat.get('p50')} ms, "
        f"p99 {lat.get('p99')} ms, {load['throughput_rps']} req/s"
    )
    print(
        f"soak: {soak['requests']} requests, {soak['wrong_status']} wrong, RSS "
        f"{soak['rss_mb']['start']} -> {soak['rss_mb']['end']} MB (max {soak['rss_mb']['max']}"
        f", {rss_after_warmup} MB after warm-up)"
    )
    print(f"wrote {args.out}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
