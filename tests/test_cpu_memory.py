"""skyclass.cpu_memory: the allocator switches take effect, and stay off when asked to.

Their speed-up is measured in bench/cpu_memory.py, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from skyclass import cpu_memory

PROBE = """
import json, os, sys
{before}
from skyclass import cpu_memory
applied = cpu_memory.tune()
import torch
print(json.dumps({{"applied": applied, "thp_env": os.environ.get("THP_MEM_ALLOC_ENABLE")}}))
"""

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")


def probe(before: str = "", **env: str) -> dict:
    """tune() in a fresh interpreter (the THP switch depends on what was imported first)."""
    clean = {
        k: v for k, v in os.environ.items() if k not in ("THP_MEM_ALLOC_ENABLE", cpu_memory.ENV)
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(before=before)],
        check=True,
        capture_output=True,
        text=True,
        env={**clean, **env},
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@glibc_only
def test_tune_before_torch_sets_both_switches():
    assert probe() == {"applied": {"malloc": True, "thp": True}, "thp_env": "1"}


@glibc_only
def test_after_torch_only_malloc_can_change():
    assert probe("import torch") == {"applied": {"malloc": True, "thp": False}, "thp_env": None}


def test_off_leaves_everything_alone():
    for value in ("off", "0", "OFF"):
        assert probe(**{cpu_memory.ENV: value}) == {
            "applied": {"malloc": False, "thp": False},
            "thp_env": None,
        }


@glibc_only
def test_a_users_own_thp_choice_wins():
    assert probe(THP_MEM_ALLOC_ENABLE="0") == {
        "applied": {"malloc": True, "thp": False},
        "thp_env": "0",
    }


def test_cli_tunes_only_the_torch_commands(monkeypatch):
    from skyclass import cli

    calls = []
    monkeypatch.setattr(cpu_memory, "tune", lambda: calls.append(1) or {})
    assert cli.main(["serve", "/nonexistent"]) != 0
    assert calls == []
    assert cli.main(["train", "/nonexistent.zip", "--out", "/nonexistent/run"]) != 0
    assert calls  # by the CLI before torch loads (and again by train())
