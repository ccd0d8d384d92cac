"""Coverage-guided fuzzing of the serving request parser and the image decoder (`make fuzz`).

Every input is tried three ways, as the handler can meet it:
  1. a Lambda event (when it parses as JSON): `parse_event` -> `extract_image` -> decode;
  2. a multipart/form-data body (boundary taken from its first line, whatever its line end):
     `extract_image` -> decode;
  3. a raw image body: `skyclass.images.preprocess` (decode, EXIF, RGB, decode budget, resize).
With --bundle BUNDLE each input also goes through the whole handler (`App` with that model): as
the JSON event, as a raw upload and as a form; an answer that is a 5xx or not valid JSON (NaN
included) counts as a crash.
The only exceptions allowed out are the handler's own client errors (`HttpError`, answered as
a 4xx JSON) and `ImageError` (answered 400/413); anything else is a crash, which atheris /
libFuzzer stops on and saves under bench/results/fuzz_artifacts/. An input that takes longer
than --slow seconds is counted (a CPU-DoS candidate); one over libFuzzer's -timeout is a crash.

Engine: atheris (libFuzzer, coverage of the instrumented Python code: skyclass, email, json,
base64 and Pillow's Python-level format parsers; Pillow's C decoders are exercised but not
instrumented). When atheris cannot be imported, or with --engine random, a plain
random-mutation loop over the same corpus runs instead (bit flips, truncation, splices,
insertions, cross-overs), with the same checks.

The committed seed corpus is bench/fuzz_corpus/ (tiny real JPEG/PNG/GIF/WEBP, a multipart
body, v1/v2 events, and the round-two shapes: a bare-CR form, a progressive JPEG with extra
scans, 16-bit and float TIFFs, an EPS header, an ICO). libFuzzer's new inputs go to a scratch
copy, never into the repository.

    python bench/fuzz_handler.py --seconds 60 [--engine atheris|random] [--stats-out F.json]
        [--bundle BUNDLE] [--executions N]
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "fuzz_corpus"
ARTIFACTS = HERE / "results" / "fuzz_artifacts"

try:
    import atheris
except ImportError:  # not installable here: the random-mutation loop still runs
    atheris = None

if atheris is not None:
    with atheris.instrument_imports(include=["skyclass", "email", "json", "base64", "PIL"]):
        from skyclass.images import ImageError, PreprocessSpec, preprocess
        from skyclass.serving.events import (
            Headers,
            HttpError,
            Request,
            extract_image,
            parse_event,
        )
else:
    from skyclass.images import ImageError, PreprocessSpec, preprocess
    from skyclass.serving.events import Headers, HttpError, Request, extract_image, parse_event

SPEC = PreprocessSpec(size=64)  # decode is what is fuzzed; a small resize keeps it fast
EXPECTED = (HttpError, ImageError)
LINE_END = re.compile(rb"\r\n|\r|\n")
APP: Any = None  # the handler with a real model, when --bundle is given


class BadAnswer(Exception):
    """The handler answered a 5xx or a body that is not valid JSON: a crash of the target."""


class Stats:
    """What a run did, written to --stats-out every second and at the end."""

    def __init__(self, engine: str, out: Path | None) -> None:
        self.data: dict[str, Any] = {
            "engine": engine,
            "executions": 0,
            "seconds": 0.0,
            "outcomes": {},
            "slow_inputs": 0,
            "max_input_seconds": 0.0,
            "crashes": 0,
            "crash_files": [],
        }
        self.out, self.start, self.last_write = out, time.monotonic(), 0.0

    def record(self, outcomes: list[str], seconds: float, slow: float) -> None:
        d = self.data
        d["executions"] += 1
        for outcome in outcomes:
            d["outcomes"][outcome] = d["outcomes"].get(outcome, 0) + 1
        d["max_input_seconds"] = max(d["max_input_seconds"], round(seconds, 4))
        d["slow_inputs"] += seconds > slow
        if time.monotonic() - self.last_write > 1.0:
            self.write()

    def write(self) -> None:
        self.data["seconds"] = round(time.monotonic() - self.start, 1)
        self.last_write = time.monotonic()
        if self.out is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.out.write_text(json.dumps(self.data, indent=2) + "\n")


def _decode(image: bytes) -> str:
    preprocess(image, SPEC)
    return "decoded"


def _guard(label: str, fn: Any, *args: Any) -> str:
    """Run one interpretation; expected client errors become an outcome label."""
    try:
        return f"{label}:{fn(*args)}"
    except HttpError as exc:
        return f"{label}:http_{exc.status}"
    except ImageError as exc:
        return f"{label}:image_{exc.reason}"


def _as_event(event: Any) -> str:
    request = parse_event(event)
    if request.method != "POST":
        return "not_post"
    return _decode(extract_image(request))


def _as_form(data: bytes) -> str:
    first = LINE_END.split(data, 1)[0].strip()
    boundary = first[2:72].decode("latin-1") if first.startswith(b"--") else "x"
    headers = Headers({"content-type": f"multipart/form-data; boundary={boundary}"})
    return _decode(extract_image(Request("POST", "/", headers, {}, data, "fuzz")))


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} in an answer")


def _answer(event: Any) -> str:
    """The handler's status for `event`; raises BadAnswer on a 5xx or an invalid JSON body."""
    response = APP(event)
    status = response["statusCode"]
    body = response["body"]
    if status >= 500:
        raise BadAnswer(f"status {status}: {body[:300]}")
    if response["headers"]["content-type"].startswith("application/json"):
        try:
            json.loads(body, parse_constant=_no_constant)
        except ValueError as exc:
            raise BadAnswer(f"invalid JSON answer ({exc}): {body[:300]}") from exc
    return str(status)


def _post_event(body: bytes, content_type: str) -> dict[str, Any]:
    return {
        "version": "2.0",
        "rawPath": "/",
        "headers": {"content-type": content_type},
        "requestContext": {"http": {"method": "POST"}, "requestId": "fuzz"},
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def _through_app(data: bytes, event: Any) -> list[str]:
    outcomes = []
    if event is not None:
        outcomes.append("app_event:" + _answer(event))
    first = LINE_END.split(data, 1)[0].strip()
    boundary = first[2:72].decode("latin-1") if first.startswith(b"--") else "x"
    outcomes.append(
        "app_form:" + _answer(_post_event(data, f"multipart/form-data; boundary={boundary}"))
    )
    outcomes.append("app_raw:" + _answer(_post_event(data, "application/octet-stream")))
    return outcomes


def check_one(data: bytes) -> list[str]:
    """All interpretations of one input; raises on anything but an expected client error."""
    outcomes = []
    try:
        event = json.loads(data)
    except (ValueError, RecursionError):  # not JSON (or nested too deep for json itself)
        event = None
    if APP is not None:  # the whole handler covers the three paths below, and more
        return _through_app(data, event)
    if event is not None:
        outcomes.append(_guard("event", _as_event, event))
    outcomes.append(_guard("form", _as_form, data))
    outcomes.append(_guard("raw", _decode, data))
    return outcomes


def load_corpus(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()]


# --- fallback engine ---------------------------------------------------------------------------


def mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    """One to four random edits of the kinds libFuzzer's default mutators make."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # bit flip, biased to the header
            i = rng.randrange(min(len(buf), 512)) if rng.random() < 0.5 else rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # truncate
            del buf[pos:]
        elif op == 2:  # insert random bytes
            buf[pos:pos] = rng.randbytes(rng.randint(1, 32))
        elif op == 3 and buf:  # overwrite with an "interesting" value
            value = rng.choice(
                [
                    b"\x00",
                    b"\xff",
                    b"\x7f",
                    b"\xff\xff",
                    b"\x00\x00\x00\x00",
                    b"\xff\xff\xff\xff",
                    b"\r\n",
                    b"--",
                    b'"',
                ]
            )
            buf[pos : pos + len(value)] = value
        elif op == 4 and buf:  # duplicate a chunk
            start = rng.randrange(len(buf))
            chunk = buf[start : start + rng.randint(1, 256)]
            buf[pos:pos] = chunk
        else:  # cross-over with another corpus entry
            other = rng.choice(corpus)
            cut = rng.randrange(len(other) + 1)
            buf = buf[:pos] + bytearray(other[cut:])
    return bytes(buf)


def save_crash(data: bytes, exc: BaseException) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"crash-{type(exc).__name__}-{abs(hash(data)) & 0xFFFFFFFF:08x}"
    path.write_bytes(data)
    return path


def random_loop(
    seconds: float,
    corpus: list[bytes],
    stats: Stats,
    slow: float,
    seed: int,
    executions: int | None = None,
) -> int:
    """The no-atheris engine: mutate the corpus for `seconds` (or until `executions` inputs
    were tried); returns the crash count."""
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    seen: set[str] = set()
    inputs = list(corpus)
    while time.monotonic() < deadline and (
        executions is None or stats.data["executions"] < executions
    ):
        data = mutate(rng, rng.choice(inputs), corpus)
        start = time.monotonic()
        try:
            outcomes = check_one(data)
        except Exception as exc:  # noqa: BLE001 - a crash: keep one input per failure site
            site = "".join(traceback.format_exception(exc)[-2:])
            if site not in seen:
                seen.add(site)
                stats.data["crash_files"].append(str(save_crash(data, exc)))
                print(f"CRASH {type(exc).__name__}: {exc}\n{site}", file=sys.stderr)
            stats.data["crashes"] += 1
            outcomes = ["crash"]
        stats.record(outcomes, time.monotonic() - start, slow)
    stats.write()
    return stats.data["crashes"]


def load_app(bundle: Path) -> None:
    """The real handler on BUNDLE, one inference thread (decode is what is fuzzed)."""
    global APP
    from skyclass.serving.classifier import Classifier
    from skyclass.serving.lambda_handler import App

    logging.getLogger("skyclass.serving").setLevel(logging.ERROR)  # no line per request
    APP = App(lambda: Classifier.from_bundle(bundle, threads=1))
    _ = APP.model


# --- main --------------------------------------------------------------------------------------


def run_atheris(args: argparse.Namespace, stats: Stats) -> None:
    """Hand over to libFuzzer (never returns: it exits when the time is up or on a crash)."""
    # One scratch folder, emptied each run (libFuzzer exits without cleaning up after itself).
    work = Path(tempfile.gettempdir()) / "skyclass-fuzz-corpus"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    for path in CORPUS.iterdir():
        shutil.copy(path, work / path.name)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def one_input(data: bytes) -> None:
        start = time.monotonic()
        outcomes = check_one(data)
        stats.record(outcomes, time.monotonic() - start, args.slow)

    argv = [
        sys.argv[0],
        f"-max_total_time={int(args.seconds)}",
        f"-timeout={args.timeout}",
        "-rss_limit_mb=3072",
        "-print_final_stats=1",
        f"-seed={args.seed}",
        f"-artifact_prefix={ARTIFACTS}/",
        "-max_len=65536",
        str(work),
        str(CORPUS),
    ]
    print(f"atheris: {args.seconds:.0f} s, scratch corpus {work}", file=sys.stderr)
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--engine", choices=["auto", "atheris", "random"], default="auto")
    parser.add_argument("--slow", type=float, default=2.0, help="seconds that make an input slow")
    parser.add_argument("--timeout", type=int, default=20, help="libFuzzer per-input timeout")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stats-out", type=Path, default=None)
    parser.add_argument(
        "--bundle",
        type=Path,
        default=None,
        help="also run every input through the handler with this model",
    )
    parser.add_argument(
        "--executions",
        type=int,
        default=None,
        help="random engine: stop after this many inputs (or --seconds)",
    )
    args = parser.parse_args(argv)
    if args.bundle is not None:
        load_app(args.bundle)
    corpus = load_corpus(CORPUS)
    for data in corpus:  # the seeds themselves must pass
        check_one(data)
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if atheris is not None else "random"
    if engine == "atheris" and atheris is None:
        print("atheris is not installed: pip install 'atheris>=2.3,<4'", file=sys.stderr)
        return 2
    stats = Stats(engine, args.stats_out)
    if engine == "atheris":
        run_atheris(args, stats)
        return 0
    crashes = random_loop(args.seconds, corpus, stats, args.slow, args.seed, args.executions)
    d = stats.data
    print(
        f"random engine: {d['executions']} inputs in {d['seconds']} s, {crashes} crashes, "
        f"{d['slow_inputs']} slow (> {args.slow} s), slowest {d['max_input_seconds']} s",
        file=sys.stderr,
    )
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
