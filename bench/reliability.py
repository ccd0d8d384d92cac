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
   bench/results/serve_load.json).
All figures come from those runs; nothing here is typed in by hand.

    nice -n 10 .venv/bin/python bench/reliability.py [--fuzz-seconds 60] [--skip-load]
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
    "tests/train/test_disk_full.py::test_full_disk_during_a_checkpoint_keeps_the_previous_one":
        ("train: disk full while writing a checkpoint (ENOSPC in-process, then EFBIG from "
         "RLIMIT_FSIZE under the CLI), then --resume", 2),
    "tests/train/test_kill_random.py::test_kill_9_at_random_moments_then_resume":
        ("train: kill -9 at random moments, repeatedly, each followed by --resume", None),
    "tests/train/test_resume_ddp.py::test_kill_9_then_resume_ends_where_an_uninterrupted_run_"
    "ends": ("train: kill -9 mid epoch 2 plus a torn extra history row, then --resume "
             "(bit-identical weights)", 1),
    "tests/serving/test_local_server_faults.py::test_stalled_clients_are_cut_off_and_others_"
    "still_served": ("serve: 20 clients stall mid-body (slowloris) while a real upload is "
                     "served", 20),
}
HOSTILE_PREPARE = "tests/prepare/test_hostile.py"
# Words in a prepare test's name that make it a fault (the process or the files fail under
# it) rather than a hostile input (what the folder or zip holds).
PREPARE_FAULT_WORDS = ("kill", "vanish", "worker")
# The tests that pin the bugs this work found and fixed (see their docstrings).
REGRESSION_MARKS = ("test_regressions_found_by_fuzzing", "test_disk_full.py",
                    "test_local_server_faults.py")


def run_pytest(targets: list[str], env: dict[str, str]) -> tuple[dict[str, dict], str]:
    """Run pytest once (shared session fixtures); returns per-test outcome/time and output."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        proc = subprocess.run([PY, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                               f"--junitxml={junit}", *targets], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        tests = {}
        for case in ET.parse(junit).getroot().iter("testcase"):
            path = case.get("classname", "").replace(".", "/") + ".py"
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "failed"
                elif child.tag == "skipped":
                    outcome = "skipped"
            tests[f"{path}::{case.get('name')}"] = {"outcome": outcome,
                                                    "seconds": round(float(case.get("time")), 2)}
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
        entry = {"fault": fault, "test": node, "outcome": result["outcome"],
                 "seconds": result["seconds"]}
        if count is None and kills:
            count = int(kills.group(1))
            entry["last_pt_epoch_at_each_kill"] = json.loads(kills.group(2))
        entry["injected"] = count or 0
        entry["survived"] = entry["injected"] if result["outcome"] == "passed" else 0
        faults.append(entry)
    for node, result in sorted(prepare_tests(tests, faults=True).items()):
        faults.append({"fault": "prepare: " + _words(node), "test": node,
                       "outcome": result["outcome"], "seconds": result["seconds"],
                       "injected": 1, "survived": int(result["outcome"] == "passed")})
    return faults


def _words(node: str) -> str:
    return node.split("::", 1)[1].removeprefix("test_").replace("_", " ")


def prepare_tests(tests: dict[str, dict], faults: bool) -> dict[str, dict]:
    """tests/prepare/test_hostile.py's tests that are faults (or, faults=False, inputs)."""
    return {k: v for k, v in tests.items() if k.startswith(HOSTILE_PREPARE)
            and any(w in k.split("::", 1)[1] for w in PREPARE_FAULT_WORDS) == faults}


def fuzz_section(seconds: float, engine: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        stats_path = Path(tmp) / "fuzz.json"
        proc = subprocess.run([PY, "bench/fuzz_handler.py", "--seconds", str(seconds),
                               "--engine", engine, "--stats-out", str(stats_path)], cwd=ROOT,
                              capture_output=True, text=True)
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    log = proc.stdout + proc.stderr
    done = re.findall(r"#(\d+)\s+(?:DONE|pulse|NEW|REDUCE)\s+cov: (\d+) ft: (\d+) corp: (\d+)/",
                      log)
    units = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    crashed = proc.returncode != 0 or "Uncaught Python exception" in log
    section = {
        "engine": stats.get("engine"), "seconds": stats.get("seconds"),
        "executions": int(units.group(1)) if units else stats.get("executions"),
        "crashes": max(int(crashed), stats.get("crashes", 0)),
        "slow_inputs_over_2s": stats.get("slow_inputs"),
        "slowest_input_s": stats.get("max_input_seconds"),
        "outcomes": stats.get("outcomes"), "exit_code": proc.returncode,
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
            raise SystemExit(f"bench/serve_load.py wrote no results (exit {proc.returncode}); "
                             "use --skip-load to reuse the last ones on purpose")
    data = json.loads(path.read_text())
    load, soak = data["load"], data["soak"]
    return {
        "bundle": data["bundle_origin"], "requests": load["requests"],
        "concurrency": load["concurrency"], "errors": load["errors"],
        "p50_ms": load["latency_ms"]["p50"], "p99_ms": load["latency_ms"]["p99"],
        "throughput_rps": load["throughput_rps"],
        "soak_requests": soak["requests"], "soak_bad_requests": sum(
            v for k, v in soak["by_kind"].items() if k not in ("good", "skipped_time_up")),
        "soak_wrong_status": soak["wrong_status"],
        "soak_rss_mb": {k: soak["rss_mb"][k] for k in ("start", "end", "max")},
        "source": "bench/results/serve_load.json" + (" (reused)" if skip else ""),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fuzz-seconds", type=float, default=60.0, help="per engine")
    parser.add_argument("--fuzz-engines", nargs="+", choices=("atheris", "random"),
                        default=None, help="default: atheris (if it imports) and random")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "reliability.json")
    args = parser.parse_args(argv)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        stats_file = Path(tmp) / "property_stats.json"
        env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1",
               "SKYCLASS_FUZZ_STATS": str(stats_file)}
        tests, output = run_pytest([PROPERTY_TESTS, HOSTILE_PREPARE, *FAULT_TESTS], env)
        stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    props = property_section(tests, stats)
    faults = faults_section(tests, output)
    prepare_inputs = {_words(k): v["outcome"] for k, v in prepare_tests(tests, False).items()}
    regressions = {k: v["outcome"] for k, v in tests.items()
                   if any(m in k for m in REGRESSION_MARKS)}
    print(f"property tests: {props['inputs_total']} inputs, {len(props['failed_tests'])} failed",
          flush=True)
    fuzz = {}
    for engine in args.fuzz_engines or default_engines():
        fuzz[engine] = fuzz_section(args.fuzz_seconds, engine)
        print(f"fuzz ({engine}): {fuzz[engine]['executions']} executions, "
              f"{fuzz[engine]['crashes']} crashes", flush=True)
    load = load_section(args.skip_load)
    failures = {
        "property_test_failures": len(props["failed_tests"]),
        "fuzz_crashes": sum(f["crashes"] for f in fuzz.values()),
        "fault_tests_failed": sum(f["outcome"] != "passed" for f in faults),
        "prepare_hostile_input_tests_failed": sum(v != "passed" for v in prepare_inputs.values()),
        "load_errors": load["errors"],
        "soak_wrong_status": load["soak_wrong_status"],
    }
    result = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "hostile_inputs": {"handler_property_tests": props, "handler_fuzz": fuzz,
                           "prepare_hostile_folders_and_zips": prepare_inputs},
        "failures": {**failures, "total": sum(failures.values())},
        "regression_tests_of_fixed_bugs": regressions,
        "faults": {"injected": sum(f["injected"] for f in faults),
                   "survived": sum(f["survived"] for f in faults), "by_test": faults},
        "load": load,
        "wall_seconds": round(time.time() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"failures": result["failures"], "faults": {
        k: result["faults"][k] for k in ("injected", "survived")}, "load": load}, indent=2))
    return 0 if result["failures"]["total"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
