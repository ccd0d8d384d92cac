"""`skyclass COMMAND --help`: real examples at the end, actual defaults instead of "recipe"."""

from __future__ import annotations

import pytest

from skyclass.cli import COMMANDS, main


def _help(capsys, command: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_help_ends_with_examples(capsys, command):
    text = _help(capsys, command)
    tail = text.rstrip().split("\nexamples:\n", 1)[1].splitlines()
    assert 2 <= len(tail) <= 3
    assert all(line.startswith(("  skyclass ", "  curl ")) for line in tail)
    assert any(line.startswith(f"  skyclass {command}") for line in tail)


@pytest.mark.parametrize("command", ["train", "run"])
def test_recipe_defaults_are_shown_as_values(capsys, command):
    text = " ".join(_help(capsys, command).split())  # argparse wraps lines anywhere
    assert "from the recipe)" not in text
    assert "(default 20 from the 'default' recipe)" in text  # --epochs
    assert "(default 0.01 from the 'default' recipe; 'reference': 0.3)" in text  # --lr
    assert "(default 1e-4 from the 'default' recipe; 'reference': 0)" in text  # --weight-decay
    assert "One epoch" in text and "2-core CPU" in text  # what an epoch costs
