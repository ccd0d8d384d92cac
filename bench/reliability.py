"""Hostile input and faults, in figures: bench/results/reliability.json.

Runs, and counts what they did:
1. the handler's property tests (tests/serving/test_handler_fuzz.py): inputs tried per kind and
   the statuses they got (the tests record them through SKYCLASS_FUZZ_STATS);
2. `prepare` under attack and `train` under faults (tests/prepare/test_hostile.py,
   tests/train/test_disk_full.py, test_kill_random.py, test_resume_ddp.py's kill -9 test):
   each fault injected and whether the test proved nothing was lost;
3. the fuzz target bench/fuzz_handler.py for --fuzz-seconds with each engine of
   --fuzz-engines: atheris (coverage-guided, where it imports) and the random-mutation loop
   (blind, but many more inputs a second: it found the PNG-header crash atheris had missed);
4. the load + soak of `skyclass serve` (bench/serve_load.py; --skip-load reuses its last
   bench/results/serve_load.json);
5. the hostile payload classes of issue 12 (tests/hostile_payloads.py: progressive-scan JPEG,
   16-bit/float/int32 TIFF, RGBA/LA PNG, EPS, ICO/ICNS, animated GIF, bare-CR forms, a 4,301
   digit Content-Length), each posted to the handler in a fresh process, once with this
   checkout's code and once with branch `main`'s (`git archive main src`): status, seconds,
   CPU seconds and the peak RSS (VmHWM) of the request, before and after.
All figures come from those runs; nothing here is typed in by hand. --sections runs some of
them only; the others are then carried over from the previous results file, marked with the
time they were measured.

    nice -n 10 .venv/bin/python bench/reliability.py [--fuzz-seconds 60] [--skip-load]
        [--sections payloads fuzz] [--fuzz-executions 100000] [--bundle BUNDLE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
PROPERTY_TESTS = "tests/serving/test_handler_fuzz.py"
# Fault tests: node id -> (fault injected, how many times per run, or None: parsed from output).
FAULT_TESTS = {
    "tests/train/test_disk_full.py::test_full_disk_during_a_checkpoint_keeps_the_previous_one": (
        "train: disk full while writing a checkpoint (ENOSPC in-process, then EFBIG from "
        "RLIMIT_FSIZE under the CLI), then --resume",
        2,
    ),
    "tests/train/test_kill_random.py::test_kill_9_at_random_moments_then_resume": (
        "train: kill -9 at random moments, repeatedly, each followed by --resume",
        None,
    ),
    "tests/train/test_resume_ddp.py::test_kill_9_then_resume_ends_where_an_uninterrupted_run_"
    "ends": (
        "train: kill -9 mid epoch 2 plus a torn extra history row, then --resume "
        "(bit-identical weights)",
        1,
    ),
    "tests/serving/test_local_server_faults.py::test_stalled_clients_are_cut_off_and_others_"
    "still_served": (
        "serve: 20 clients stall mid-body (slowloris) while a real upload is served",
        20,
    ),
}
HOSTILE_PREPARE = "tests/prepare/test_hostile.py"
# Words in a prepare test's name that make it a fault (the process or the files fail under
# it) rather than a hostile input (what the folder or zip holds).
PREPARE_FAULT_WORDS = ("kill", "vanish", "worker")
# The handler answers of the payload classes must stay within these (issue 12's goals).
GOAL_SECONDS = 2.0
GOAL_RSS_MB = 700
PAYLOAD_CHILD = """
import base64, json, sys, time
from pathlib import Path
from skyclass.serving.classifier import Classifier
from skyclass.serving.lambda_handler import App
bundle, payload, content_type, length = sys.argv[1:5]
app = App(lambda: Classifier.from_bundle(bundle, threads=1))
app.model
rss = lambda: next(int(l.split()[1]) for l in open("/proc/self/status")
                   if l.startswith("VmHWM")) / 1024
before = rss()
headers = {"content-type": content_type}
if length:
    headers["content-length"] = length
event = {"version": "2.0", "rawPath": "/", "headers": headers,
         "requestContext": {"http": {"method": "POST"}, "requestId": "bench"},
         "body": base64.b64encode(Path(payload).read_bytes()).decode(), "isBase64Encoded": True}
start, cpu = time.perf_counter(), time.process_time()
try:
    response = app(event)
    status = response["statusCode"]
    try:
        json.loads(response["body"], parse_constant=lambda c: 1 / 0)
        valid = True
    except Exception:
        valid = False
    code = json.loads(response["body"]).get("error") if valid else None
except BaseException as exc:  # the old code may crash outright
    status, valid, code = None, False, type(exc).__name__
print(json.dumps({"status": status, "error": code, "valid_json": valid,
                  "seconds": round(time.perf_counter() - start, 3),
                  "cpu_seconds": round(time.process_time() - cpu, 3),
                  "rss_mb_before_request": round(before, 1), "peak_rss_mb": round(rss(), 1)}))
"""
# The tests that pin the bugs this work found and fixed (see their docstrings).
REGRESSION_MARKS = (
    "test_regressions_found_by_fuzzing",
    "test_disk_full.py",
    "test_local_server_faults.py",
)


def run_pytest(targets: list[str], env: dict[str, str]) -> tuple[dict[str, dict], str]:
    """Run pytest once (shared session fixtures); returns per-test outcome/time and output."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        proc = subprocess.run(
            [
                PY,
                "-m",
                "pytest",
                "-q",
                "-s",
                "-p",
                "no:cacheprovider",
                f"--junitxml={junit}",
                *targets,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        tests = {}
        for case in ET.parse(junit).getroot().iter("testcase"):
            path = case.get("classname", "").replace(".", "/") + ".py"
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "failed"
                elif child.tag == "skipped":
                    outcome = "skipped"
            tests[f"{path}::{case.get('name')}"] = {
                "outcome": outcome,
                "seconds": round(float(case.get("time")), 2),
            }
    return tests, proc.stdout + proc.stderr


def property_section(tests: dict[str, dict], stats: dict) -> dict:
    mine = {k: v for k, v in tests.items() if k.startswith(PROPERTY_TESTS)}
    return {
        "tests": len(mine),
        "failed_tests": sorted(k for k, v in mine.items() if v["outcome"] == "failed"),
        "seconds": round(sum(v["seconds"] for v in mine.values()), 1),
        "inputs_per_kind": stats,
        "inputs_total": sum(v["tried"] for v in stats.values()),
    }


def faults_section(tests: dict[str, dict], output: str) -> list[dict]:
    kills = re.search(r"killed (\d+) times, last\.pt epochs at the kills: (\[[^\]]*\])", output)
    faults = []
    for node, (fault, count) in FAULT_TESTS.items():
        result = tests.get(node, {"outcome": "not run", "seconds": 0})
        entry = {
            "fault": fault,
            "test": node,
            "outcome": result["outcome"],
            "seconds": result["seconds"],
        }
        if count is None and kills:
            count = int(kills.group(1))
            entry["last_pt_epoch_at_each_kill"] = json.loads(kills.group(2))
        entry["injected"] = count or 0
        entry["survived"] = entry["injected"] if result["outcome"] == "passed" else 0
        faults.append(entry)
    for node, result in sorted(prepare_tests(tests, faults=True).items()):
        faults.append(
            {
                "fault": "prepare: " + _words(node),
                "test": node,
                "outcome": result["outcome"],
                "seconds": result["seconds"],
                "injected": 1,
                "survived": int(result["outcome"] == "passed"),
            }
        )
    return faults


def _words(node: str) -> str:
    return node.split("::", 1)[1].removeprefix("test_").replace("_", " ")


def prepare_tests(tests: dict[str, dict], faults: bool) -> dict[str, dict]:
    """tests/prepare/test_hostile.py's tests that are faults (or, faults=False, inputs)."""
    return {
        k: v
        for k, v in tests.items()
        if k.startswith(HOSTILE_PREPARE)
        and any(w in k.split("::", 1)[1] for w in PREPARE_FAULT_WORDS) == faults
    }


def _merge_stats(parts: list[dict]) -> dict:
    """The stats of parallel random-engine jobs as one run."""
    merged: dict = {
        "engine": parts[0].get("engine"),
        "jobs": len(parts),
        "seconds": max(p.get("seconds", 0) for p in parts),
        "outcomes": {},
    }
    for key in ("executions", "crashes", "slow_inputs"):
        merged[key] = sum(p.get(key, 0) for p in parts)
    merged["max_input_seconds"] = max(p.get("max_input_seconds", 0) for p in parts)
    for part in parts:
        for outcome, n in part.get("outcomes", {}).items():
            merged["outcomes"][outcome] = merged["outcomes"].get(outcome, 0) + n
    return merged


def fuzz_section(
    seconds: float,
    engine: str,
    bundle: Path | None = None,
    executions: int | None = None,
    jobs: int = 1,
) -> dict:
    """bench/fuzz_handler.py; the random engine may run as `jobs` processes (seeds 1..jobs)
    sharing `executions` between them."""
    extra = ["--bundle", str(bundle)] if bundle is not None else []
    jobs = jobs if engine == "random" else 1
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for job in range(jobs):
            share = (
                ["--executions", str(-(-executions // jobs))]
                if (executions and engine == "random")
                else []
            )
            stats_path, log_path = Path(tmp) / f"fuzz-{job}.json", Path(tmp) / f"fuzz-{job}.log"
            with open(log_path, "w") as log_file:  # a file: a full pipe would block the job
                procs.append(
                    (
                        stats_path,
                        log_path,
                        subprocess.Popen(
                            [
                                PY,
                                "bench/fuzz_handler.py",
                                "--seconds",
                                str(seconds),
                                "--engine",
                                engine,
                                "--seed",
                                str(job + 1),
                                "--stats-out",
                                str(stats_path),
                                *extra,
                                *share,
                            ],
                            cwd=ROOT,
                            stdout=log_file,
                            stderr=subprocess.STDOUT,
                            text=True,
                        ),
                    )
                )
        returncode = max(proc.wait() for _, _, proc in procs)
        logs = [log_path.read_text(errors="replace") for _, log_path, _ in procs]
        parts = [json.loads(p.read_text()) for p, _, _ in procs if p.exists()]
        stats = _merge_stats(parts) if parts else {}
    log = "".join(logs)
    done = re.findall(
        r"#(\d+)\s+(?:DONE|pulse|NEW|REDUCE)\s+cov: (\d+) ft: (\d+) corp: (\d+)/", log
    )
    units = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    crashed = returncode != 0 or "Uncaught Python exception" in log
    section = {
        "engine": stats.get("engine"),
        "seconds": stats.get("seconds"),
        "executions": int(units.group(1)) if units else stats.get("executions"),
        "crashes": max(int(crashed), stats.get("crashes", 0)),
        "slow_inputs_over_2s": stats.get("slow_inputs"),
        "slowest_input_s": stats.get("max_input_seconds"),
        "outcomes": stats.get("outcomes"),
        "exit_code": returncode,
        "jobs": stats.get("jobs", 1),
        "through_handler_with_model": str(bundle) if bundle is not None else None,
        "handler_answers_5xx_or_invalid_json": stats.get("crashes", 0) if bundle else None,
    }
    if done:
        _, cov, ft, corp = done[-1]
        section.update(coverage_edges=int(cov), features=int(ft), corpus_entries=int(corp))
    if crashed:
        section["crash_log_tail"] = log[-3000:]
    return section


def default_engines() -> list[str]:
    """Both engines where atheris imports (`pip install -e '.[fuzz]'`), else the random one."""
    probe = subprocess.run([PY, "-c", "import atheris"], capture_output=True)
    return ["atheris", "random"] if probe.returncode == 0 else ["random"]


def load_section(skip: bool) -> dict:
    path = RESULTS / "serve_load.json"
    if not skip:
        started = time.time()
        proc = subprocess.run([PY, "bench/serve_load.py"], cwd=ROOT, check=False)
        if not path.is_file() or path.stat().st_mtime < started:  # it broke before writing
            raise SystemExit(
                f"bench/serve_load.py wrote no results (exit {proc.returncode}); "
                "use --skip-load to reuse the last ones on purpose"
            )
    data = json.loads(path.read_text())
    load, soak = data["load"], data["soak"]
    return {
        "bundle": data["bundle_origin"],
        "requests": load["requests"],
        "concurrency": load["concurrency"],
        "errors": load["errors"],
        "p50_ms": load["latency_ms"]["p50"],
        "p99_ms": load["latency_ms"]["p99"],
        "throughput_rps": load["throughput_rps"],
        "soak_requests": soak["requests"],
        "soak_bad_requests": sum(
            v for k, v in soak["by_kind"].items() if k not in ("good", "skipped_time_up")
        ),
        "soak_wrong_status": soak["wrong_status"],
        "soak_rss_mb": {k: soak["rss_mb"][k] for k in ("start", "end", "max")},
        "source": "bench/results/serve_load.json" + (" (reused)" if skip else ""),
    }


def payload_cases() -> dict[str, tuple[bytes, str, str]]:
    """name -> (body, content type, declared Content-Length or '') of every payload class."""
    sys.path.insert(0, str(ROOT / "tests"))
    import hostile_payloads as hp

    cases = {
        name: (build(), "application/octet-stream", "") for name, build in hp.IMAGE_PAYLOADS.items()
    }
    body, ctype = hp.multipart_bare_cr_parts()
    cases["multipart_bare_cr_20000_parts"] = (body, ctype, "")
    body, ctype = hp.multipart_bare_cr_headers()
    cases["multipart_bare_cr_600kB_headers"] = (body, ctype, "")
    cases["content_length_4301_digits"] = (b"x", "image/jpeg", "9" * 4301)
    return cases


def main_checkout(work: Path) -> Path:
    """`main`'s src/ in a scratch folder: the code before this work, for the 'before' runs."""
    archive = subprocess.run(
        ["git", "archive", "main", "src"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "main"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (work / "COMMIT").write_text(commit)
    return work / "src"


def _one_request(
    src: Path, bundle: Path, payload: Path, ctype: str, length: str, timeout: float
) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    try:
        proc = subprocess.run(
            [PY, "-c", PAYLOAD_CHILD, str(bundle), str(payload), ctype, length],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {
            "status": None,
            "error": f"no answer in {timeout:.0f} s (killed)",
            "seconds": timeout,
        }
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {
            "status": None,
            "error": f"process died (exit {proc.returncode})",
            "stderr_tail": proc.stderr[-300:],
        }
    return json.loads(lines[-1])


def payload_section(bundle: Path, timeout: float) -> dict:
    """Each payload class, one fresh handler process per request, main's code and this one."""
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        before_src = main_checkout(work / "main")
        commit = (work / "main" / "COMMIT").read_text()
        for name, (body, ctype, length) in payload_cases().items():
            path = work / name
            path.write_bytes(body)
            row = {"bytes": len(body)}
            for label, src in (("before", before_src), ("after", ROOT / "src")):
                row[label] = _one_request(src, bundle, path, ctype, length, timeout)
            results[name] = row
            print(
                f"{name}: before {row['before'].get('status')} "
                f"{row['before'].get('seconds')} s {row['before'].get('peak_rss_mb')} MB; "
                f"after {row['after'].get('status')} {row['after'].get('seconds')} s "
                f"{row['after'].get('peak_rss_mb')} MB",
                flush=True,
            )
    after = [r["after"] for r in results.values()]
    return {
        "how": "one POST per fresh handler process (tiny bundle, 1 inference thread); seconds "
        "and CPU seconds of the request, peak RSS = the process's VmHWM after it",
        "before_code": f"branch main ({commit})",
        "bundle": str(bundle),
        "by_payload": results,
        "after_worst_seconds": max(r.get("seconds", 0) for r in after),
        "after_worst_cpu_seconds": max(r.get("cpu_seconds", 0) for r in after),
        "after_worst_peak_rss_mb": max(r.get("peak_rss_mb", 0) for r in after),
        "after_over_goal_seconds_wall": sorted(
            name for name, r in results.items() if r["after"].get("seconds", 0) >= GOAL_SECONDS
        ),
        "load_average_during": [round(x, 2) for x in os.getloadavg()],
        "after_5xx_or_invalid_json": sum(
            1
            for r in after
            if r.get("status") is None or r["status"] >= 500 or not r.get("valid_json")
        ),
        "goals": {"seconds": GOAL_SECONDS, "peak_rss_mb": GOAL_RSS_MB},
    }


def ensure_bench_bundle(given: Path | None) -> Path:
    """--bundle, else a tiny model (MobileNetV2 x0.25, 64 px, 1 epoch on eva4_crops) built once
    under /tmp: the payload and fuzz runs measure decoding and parsing, not the network."""
    if given is not None:
        return given
    work = Path(tempfile.gettempdir()) / "skyclass-reliability"
    bundle = work / "bundle"
    if (bundle / "model.onnx").is_file():
        return bundle
    from skyclass.export import ExportConfig, export_bundle
    from skyclass.prepare import PrepareConfig, prepare
    from skyclass.train import TrainConfig, train

    data = work / "eva4.zip"
    if not data.is_file():
        prepare(
            PrepareConfig(
                raw=ROOT.parent / "shared" / "datasets" / "eva4_crops",
                out=data,
                size=64,
                workers=1,
                quiet=True,
                seed=0,
            )
        )
    run = work / "run"
    if not (run / "best.pt").is_file():
        train(
            TrainConfig(
                data=str(data),
                out=str(run),
                epochs=1,
                width_mult=0.25,
                pretrained=False,
                workers=0,
                seed=0,
                amp="off",
                quiet=True,
            )
        )
    export_bundle(ExportConfig(run=run, out=bundle, force=True, quiet=True))
    return bundle


SECTIONS = ("tests", "fuzz", "load", "payloads")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fuzz-seconds", type=float, default=60.0, help="per engine")
    parser.add_argument(
        "--fuzz-engines",
        nargs="+",
        choices=("atheris", "random"),
        default=None,
        help="default: atheris (if it imports) and random",
    )
    parser.add_argument(
        "--fuzz-executions",
        type=int,
        default=None,
        help="random engine: stop after this many inputs (else --fuzz-seconds)",
    )
    parser.add_argument(
        "--fuzz-jobs", type=int, default=1, help="random engine: parallel processes (seeds 1..N)"
    )
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        help="run only these; the others are carried over from --out",
    )
    parser.add_argument(
        "--bundle",
        type=Path,
        default=None,
        help="model for the payload and fuzz runs (default: a tiny one, built)",
    )
    parser.add_argument("--payload-timeout", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "reliability.json")
    args = parser.parse_args(argv)
    started = time.time()
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result = run_sections(args, previous)
    failures = failure_counts(result)
    result.update(
        generated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        machine={
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        failures={**failures, "total": sum(failures.values())},
        wall_seconds=round(time.time() - started, 1),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"failures": result["failures"]}, indent=2))
    return 0 if result["failures"]["total"] == 0 else 1


def _carried(previous: dict, *keys: str) -> dict:
    """A section of the previous results, marked with when it was measured."""
    value = previous
    for key in keys:
        value = value.get(key, {}) if isinstance(value, dict) else {}
    if isinstance(value, dict) and value:
        return {
            **value,
            "carried_over_from": value.get("carried_over_from", previous.get("generated")),
        }
    return value


def run_sections(args: argparse.Namespace, previous: dict) -> dict:
    hostile = dict(previous.get("hostile_inputs", {}))
    result = {
        k: previous[k]
        for k in ("regression_tests_of_fixed_bugs", "faults", "load", "payload_classes")
        if k in previous
    }
    if "tests" in args.sections:
        with tempfile.TemporaryDirectory() as tmp:
            stats_file = Path(tmp) / "property_stats.json"
            env = {**os.environ, "SKYCLASS_FUZZ_STATS": str(stats_file)}
            tests, output = run_pytest([PROPERTY_TESTS, HOSTILE_PREPARE, *FAULT_TESTS], env)
            stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
        props = property_section(tests, stats)
        faults = faults_section(tests, output)
        hostile["handler_property_tests"] = props
        hostile["prepare_hostile_folders_and_zips"] = {
            _words(k): v["outcome"] for k, v in prepare_tests(tests, False).items()
        }
        result["regression_tests_of_fixed_bugs"] = {
            k: v["outcome"] for k, v in tests.items() if any(m in k for m in REGRESSION_MARKS)
        }
        result["faults"] = {
            "injected": sum(f["injected"] for f in faults),
            "survived": sum(f["survived"] for f in faults),
            "by_test": faults,
        }
        print(
            f"property tests: {props['inputs_total']} inputs, {len(props['failed_tests'])} failed",
            flush=True,
        )
    else:
        for key in ("handler_property_tests", "prepare_hostile_folders_and_zips"):
            hostile[key] = _carried(previous, "hostile_inputs", key)
        result["faults"] = _carried(previous, "faults")
    bundle = None
    if {"fuzz", "payloads"} & set(args.sections):
        bundle = ensure_bench_bundle(args.bundle)
    if "fuzz" in args.sections:
        fuzz = {}
        for engine in args.fuzz_engines or default_engines():
            fuzz[engine] = fuzz_section(
                args.fuzz_seconds, engine, bundle, args.fuzz_executions, args.fuzz_jobs
            )
            print(
                f"fuzz ({engine}): {fuzz[engine]['executions']} executions, "
                f"{fuzz[engine]['crashes']} crashes",
                flush=True,
            )
        hostile["handler_fuzz"] = fuzz
    else:
        hostile["handler_fuzz"] = {
            k: _carried(previous, "hostile_inputs", "handler_fuzz", k)
            for k in previous.get("hostile_inputs", {}).get("handler_fuzz", {})
        }
    result["hostile_inputs"] = hostile
    if "load" in args.sections:
        result["load"] = load_section(args.skip_load)
    else:
        result["load"] = _carried(previous, "load")
    if "payloads" in args.sections:
        assert bundle is not None
        result["payload_classes"] = payload_section(bundle, args.payload_timeout)
    elif "payload_classes" in previous:
        result["payload_classes"] = _carried(previous, "payload_classes")
    return result


def failure_counts(result: dict) -> dict[str, int]:
    hostile = result.get("hostile_inputs", {})
    props = hostile.get("handler_property_tests", {})
    fuzz = hostile.get("handler_fuzz", {})
    load = result.get("load", {})
    payloads = result.get("payload_classes", {})
    return {
        "property_test_failures": len(props.get("failed_tests", [])),
        "fuzz_crashes": sum(f.get("crashes", 0) for f in fuzz.values()),
        "fault_tests_failed": sum(
            f["outcome"] != "passed" for f in result.get("faults", {}).get("by_test", [])
        ),
        "prepare_hostile_input_tests_failed": sum(
            v != "passed"
            for k, v in hostile.get("prepare_hostile_folders_and_zips", {}).items()
            if k != "carried_over_from"
        ),
        "load_errors": load.get("errors", 0),
        "soak_wrong_status": load.get("soak_wrong_status", 0),
        "payload_answers_5xx_or_invalid_json": payloads.get("after_5xx_or_invalid_json", 0),
        # CPU seconds: the machine is shared (see machine.load_average_at_end), so the wall
        # seconds, reported beside them, include other processes' time.
        "payload_answers_over_goal": sum(
            1
            for r in payloads.get("by_payload", {}).values()
            if r["after"].get("cpu_seconds", 0) >= GOAL_SECONDS
            or r["after"].get("peak_rss_mb", 0) >= GOAL_RSS_MB
        ),
    }


if __name__ == "__main__":
    sys.exit(main())
