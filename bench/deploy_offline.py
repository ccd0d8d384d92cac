"""Lambda package size and latency through `serverless offline`, with the model in a local S3.

    .venv/bin/python bench/deploy_offline.py BUNDLE_DIR [BUNDLE_DIR ...] [--cold-runs 3]
        [--warm 50] [--arch x86_64 arm64]

Several bundles (e.g. one exported with --quantize none, one with --quantize int8) are timed
in the same run, taking turns cold start by cold start; each is reported under the precision
it serves. The package is built once per --arch (the handler runs only from x86_64 here).

Runs on 127.0.0.1 only: a moto S3 server holds the bundle (uploaded by skyclass.deploy), the
Lambda zip is built by `skyclass deploy --package-only` from deploy/.wheelhouse (`make node`),
and `serverless offline` runs the handler with the first python3 on PATH (this venv's).

cold  = a fresh `serverless offline` (new handler process), empty model cache: the first POST,
        which pays for the process start, imports, the S3 download, the sha256 checks, the
        ONNX session and one prediction;
warm  = the following POSTs (multipart/form-data, a real 416x416 JPEG), as the client sees
        them (HTTP + serverless-offline's own overhead) and as the handler reports them.
parts = where the cold start goes (--floor-runs): the handler's cold path stage by stage in a
        fresh process (import, boto3 import, S3 client, download + sha256, session + first
        prediction), and two first requests through a throwaway serverless-offline service: a
        no-op Python function (serverless-offline's and a new python3's own cost) and the
        real handler reading the bundle from disk (everything but S3).
Results: bench/results/deploy_offline.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from _common import add_note_option, load_average, run_record
from skyclass.deploy import GOAL_UNZIPPED_BYTES, GOAL_ZIPPED_BYTES

REPO = Path(__file__).resolve().parents[1]
SERVICE = REPO / "deploy"
VENV_BIN = Path(sys.executable).parent
PHOTO_DIR = REPO.parent / "shared" / "datasets" / "bird_drone" / "drone"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def aws_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        PATH=os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")]),
        VIRTUAL_ENV=str(VENV_BIN.parent),
        SLS_TELEMETRY_DISABLED="1",
        SLS_NOTIFICATIONS_MODE="off",
    )
    return env


WHEELHOUSES = {"x86_64": SERVICE / ".wheelhouse", "arm64": SERVICE / ".wheelhouse-arm64"}


def package(
    bundle: Path, bucket: str, env: dict[str, str], arch: str = "x86_64", keep: Path | None = None
) -> dict[str, Any]:
    cmd = [
        str(VENV_BIN / "skyclass"),
        "deploy",
        str(bundle),
        "--bucket",
        bucket,
        "--package-only",
        "--no-upload",
        "--wheelhouse",
        str(WHEELHOUSES[arch]),
        "--arch",
        arch,
        "--json",
    ]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    summary = json.loads(done.stdout[done.stdout.rindex("\n{") + 1 :])["package"]
    if keep is not None:  # the next --arch overwrites .serverless/skyclass.zip
        keep.write_bytes((SERVICE / ".serverless" / "skyclass.zip").read_bytes())
    return {
        "arch": arch,
        "zipped_mib": round(summary["zipped_bytes"] / 2**20, 2),
        "unzipped_mib": round(summary["unzipped_bytes"] / 2**20, 2),
        "zipped_bytes": summary["zipped_bytes"],
        "unzipped_bytes": summary["unzipped_bytes"],
        "skyclass_deploy_package_seconds": round(seconds, 1),
        "goal_mib": {"zipped": mib(GOAL_ZIPPED_BYTES), "unzipped": mib(GOAL_UNZIPPED_BYTES)},
        "what_is_big": what_is_big(SERVICE / ".serverless" / "skyclass.zip"),
    }


def mib(n: int) -> float:
    return round(n / 2**20, 2)


def what_is_big(zip_path: Path, top: int = 12) -> dict[str, Any]:
    """Unzipped and zipped MiB per top-level folder and of the biggest files in the zip."""
    with zipfile.ZipFile(zip_path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
    folders: dict[str, list[int]] = {}
    for info in infos:
        sizes = folders.setdefault(info.filename.split("/")[0], [0, 0])
        sizes[0] += info.file_size
        sizes[1] += info.compress_size
    return {
        "folders": {
            name: {"unzipped_mib": mib(u), "zipped_mib": mib(z)}
            for name, (u, z) in sorted(folders.items(), key=lambda kv: -kv[1][0])
            if u >= 2**18
        },
        "files": {
            i.filename: {"unzipped_mib": mib(i.file_size), "zipped_mib": mib(i.compress_size)}
            for i in sorted(infos, key=lambda i: -i.file_size)[:top]
        },
    }


# A Lambda REST event POSTing the JPEG named by the child's last argument (used by both
# child scripts below).
EVENT_FROM_ARGV = r"""
event = {"httpMethod": "POST", "path": "/predict", "headers": {"Content-Type": "image/jpeg"},
         "requestContext": {"requestId": "b"}, "isBase64Encoded": True,
         "body": base64.b64encode(open(sys.argv[-1], "rb").read()).decode()}
"""

ZIP_COLD = (
    r"""
import base64, json, sys, time
start = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from skyclass.serving.lambda_handler import handler
"""
    + EVENT_FROM_ARGV
    + r"""
assert handler(event, None)["statusCode"] == 200
print(json.dumps({"seconds": time.perf_counter() - start, "torch": "torch" in sys.modules}))
"""
)


def zip_cold_starts(
    bundle: Path, photo: Path, runs: int, zip_path: Path = SERVICE / ".serverless" / "skyclass.zip"
) -> dict[str, Any] | None:
    """Fresh CPython 3.12 processes running the handler from the unzipped Lambda zip alone
    (-I -S): import + local model load + first prediction, what Lambda's cold start costs
    apart from the S3 download."""
    exe = next((p for p in sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))), None)
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            done = subprocess.run(
                [str(exe), "-I", "-S", "-c", ZIP_COLD, tmp, str(photo)],
                env={"MODEL_URI": str(bundle)},
                capture_output=True,
                text=True,
                check=True,
            )
            wall = time.perf_counter() - start
            inner = json.loads(done.stdout)
            assert not inner["torch"]
            times.append(
                {
                    "process_wall_ms": round(wall * 1000, 1),
                    "in_process_ms": round(inner["seconds"] * 1000, 1),
                }
            )
    return {
        "python": str(exe),
        "runs": times,
        "median_process_wall_ms": statistics.median(t["process_wall_ms"] for t in times),
    }


def post(url: str, photo: bytes) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    resp = requests.post(url, files={"file": ("photo.jpg", photo, "image/jpeg")}, timeout=60)
    elapsed = time.perf_counter() - start
    resp.raise_for_status()
    return elapsed * 1000.0, resp.json()


@contextlib.contextmanager
def serverless_offline(service: Path, env: dict[str, str], *params: str) -> Iterator[int]:
    """`serverless offline start` in `service` on free ports; yields the HTTP port once it
    answers, and stops the whole process group afterwards."""
    port, lambda_port = free_port(), free_port()
    cmd = [
        "npx",
        "--no",
        "serverless",
        "offline",
        "start",
        "--host",
        "127.0.0.1",
        "--httpPort",
        str(port),
        "--lambdaPort",
        str(lambda_port),
        *(f"--param={p}" for p in params),
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=service,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not port_open(port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("serverless offline did not start")
            time.sleep(0.1)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def offline_run(
    env: dict[str, str], bucket: str, prefix: str, photo: bytes, warm: int, cache: Path
) -> dict[str, Any]:
    env = {**env, "SKYCLASS_CACHE_DIR": str(cache)}
    with serverless_offline(SERVICE, env, f"bucket={bucket}", f"prefix={prefix}") as port:
        url = f"http://127.0.0.1:{port}/predict"
        cold_ms, _ = post(url, photo)
        client_ms, handler_ms = [], []
        for _ in range(warm):
            ms, payload = post(url, photo)
            client_ms.append(ms)
            handler_ms.append(payload["latency_ms"])
        return {"cold_ms": round(cold_ms, 1), "client_ms": client_ms, "handler_ms": handler_ms}


# A throwaway service beside the real one (same serverless-offline, same python3): a function
# that does nothing, and the real handler reading a local bundle (no S3, no boto3).
FLOOR_SERVICE = """\
frameworkVersion: "3"
service: skyclass-floor
provider:
  name: aws
  runtime: python3.12
  region: us-east-1
  environment:
    MODEL_URI: {bundle}
functions:
  noop:
    handler: noop.handler
    events:
      - http: {{path: noop, method: any}}
  local:
    handler: skyclass.serving.lambda_handler.handler
    events:
      - http: {{path: predict, method: any}}
plugins:
  - serverless-offline
custom:
  serverless-offline: {{noPrependStageInUrl: true}}
"""
NOOP_HANDLER = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n"


def floor_runs(bundle: Path, env: dict[str, str], photo: bytes, runs: int) -> dict[str, Any]:
    """First requests, in a fresh `serverless offline` each run, to a no-op Python function
    (what serverless-offline and a new python3 process cost by themselves) and to the real
    handler with a local bundle (that plus imports, ONNX session and one prediction, with no
    S3 download): the part of the cold start no change to skyclass's S3 fetch can remove."""
    noop, local = [], []
    with tempfile.TemporaryDirectory() as tmp:
        service = Path(tmp)
        (service / "serverless.yml").write_text(FLOOR_SERVICE.format(bundle=bundle.resolve()))
        (service / "noop.py").write_text(NOOP_HANDLER)
        (service / "node_modules").symlink_to(SERVICE / "node_modules")
        for _ in range(runs):
            with serverless_offline(service, env) as port:
                start = time.perf_counter()
                requests.get(f"http://127.0.0.1:{port}/noop", timeout=60).raise_for_status()
                noop.append(round((time.perf_counter() - start) * 1000, 1))
                local.append(round(post(f"http://127.0.0.1:{port}/predict", photo)[0], 1))
    return {
        "noop_function_first_request_ms": {"runs": noop, "median": statistics.median(noop)},
        "local_bundle_first_request_ms": {"runs": local, "median": statistics.median(local)},
    }


# The handler's cold path stage by stage, in a fresh interpreter like serverless-offline's.
STAGES = (
    r"""
import base64, json, os, sys, time
marks = {}
t = time.perf_counter()
def mark(name):
    global t
    now = time.perf_counter()
    marks[name] = round((now - t) * 1000, 1)
    t = now
from skyclass.serving.lambda_handler import handler
mark("import_handler_ms")
import boto3
mark("import_boto3_ms")
boto3.client("s3")
mark("boto3_client_ms")
from skyclass.serving.bundle import resolve_bundle
resolve_bundle(os.environ["MODEL_URI"])
mark("s3_download_and_sha256_ms")
"""
    + EVENT_FROM_ARGV
    + r"""
assert handler(event, None)["statusCode"] == 200
mark("first_call_ms")
print(json.dumps(marks))
"""
)


def cold_stages(env: dict[str, str], bucket: str, prefix: str, photo: Path, runs: int) -> dict:
    """Median milliseconds of each cold-path stage over `runs` fresh processes, each with an
    empty model cache. first_call = a second client and the cached copy's manifest check,
    the ONNX session and one prediction (the download is already done)."""
    samples = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            child_env = {
                **env,
                "MODEL_URI": f"s3://{bucket}/{prefix}",
                "SKYCLASS_CACHE_DIR": cache,
            }
            done = subprocess.run(
                [sys.executable, "-c", STAGES, str(photo)],
                env=child_env,
                capture_output=True,
                text=True,
                check=True,
            )
            samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        stage: statistics.median(sample[stage] for sample in samples) for stage in samples[0]
    } | {"runs": runs}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, nargs="+")
    parser.add_argument(
        "--arch",
        nargs="+",
        default=["x86_64", "arm64"],
        choices=tuple(WHEELHOUSES),
        help="architectures to package",
    )
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--warm", type=int, default=50)
    parser.add_argument("--no-package", action="store_true", help="skip the package step")
    parser.add_argument(
        "--floor-runs",
        type=int,
        default=3,
        help="fresh serverless-offline runs of the no-op function and the local-bundle handler, "
        "and fresh processes timing the handler's cold path stage by stage (0: skip)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/deploy_offline.json")
    add_note_option(parser)
    args = parser.parse_args()
    load_before = load_average()

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines

    from skyclass.deploy import upload_bundle

    photo_path = sorted(PHOTO_DIR.glob("*.jpg"))[0]
    photo = photo_path.read_bytes()
    moto_port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    server.start()
    try:
        env = aws_env(f"http://127.0.0.1:{moto_port}")
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
        import boto3

        bucket = "skyclass-bench"
        boto3.client("s3").create_bucket(Bucket=bucket)
        labels = {}
        for i, bundle in enumerate(args.bundle):
            served = json.loads((bundle / "skyclass.json").read_text())
            label = served.get("serving", {}).get("precision", "fp32")
            label = label if label not in labels else f"{label}-{i}"
            labels[label] = (bundle, f"models/bench/{label}", served)
            upload_bundle(bundle, bucket, f"models/bench/{label}", log=lambda _: None)
        result: dict[str, Any] = {
            "bundles": {
                label: {
                    "model": served["model"],
                    "serving": served.get("serving", {}).get("model_file", "model.onnx"),
                    "model_mb": round(
                        served["files"][served.get("serving", {}).get("model_file", "model.onnx")][
                            "bytes"
                        ]
                        / 2**20,
                        2,
                    ),
                }
                for label, (_, _, served) in labels.items()
            }
        }
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
        with tempfile.TemporaryDirectory() as tmp:
            if not args.no_package:
                result["package"] = {}
                first_bundle = args.bundle[-1]  # the zip holds no model: any bundle will do
                for arch in args.arch:
                    keep = Path(tmp) / f"skyclass-{arch}.zip"
                    result["package"][arch] = package(first_bundle, bucket, env, arch, keep)
                result["zip_cold_start_cpython312"] = (
                    {
                        label: zip_cold_starts(
                            bundle,
                            photo_path,
                            runs=5,
                            zip_path=Path(tmp) / "skyclass-x86_64.zip",
                        )
                        for label, (bundle, _, _) in labels.items()
                    }
                    if "x86_64" in args.arch
                    else None
                )
            for i in range(args.cold_runs):  # the bundles take turns, so load hits them alike
                for label, (_, prefix, _) in labels.items():
                    runs[label].append(
                        offline_run(
                            env, bucket, prefix, photo, args.warm, Path(tmp) / f"cache-{label}-{i}"
                        )
                    )
            if args.floor_runs:
                result["cold_start_parts"] = {
                    label: {
                        "stages": cold_stages(env, bucket, prefix, photo_path, args.floor_runs),
                        **floor_runs(bundle, env, photo, args.floor_runs),
                    }
                    for label, (bundle, prefix, _) in labels.items()
                }
    finally:
        server.stop()
    result["offline"] = {}
    for label, label_runs in runs.items():
        client = [ms for run in label_runs for ms in run["client_ms"]]
        handler = [ms for run in label_runs for ms in run["handler_ms"]]
        colds = [run["cold_ms"] for run in label_runs]
        result["offline"][label] = {
            "cold_start_ms": {"runs": colds, "median": round(statistics.median(colds), 1)},
            "warm_client_ms": {
                "p50": percentile(client, 0.5),
                "p99": percentile(client, 0.99),
                "n": len(client),
            },
            "warm_handler_ms": {"p50": percentile(handler, 0.5), "p99": percentile(handler, 0.99)},
        }
    result["image"] = "416x416 JPEG, multipart/form-data"
    result.update(run_record(args.note, load_before))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
