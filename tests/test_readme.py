"""README.md: the newcomer path comes first, and its Python API example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_api_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Python API section holds one runnable python block"
    return blocks[0]


def _small(code: str, replacements: dict[str, str]) -> str:
    """The README's values -> a small data set and a tiny model (each must occur once)."""
    for old, new in replacements.items():
        assert code.count(old) == 1, f"{old!r} is no longer in the README's Python block"
        code = code.replace(old, new)
    return code


def test_readme_opens_with_the_two_make_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1)
    assert [line.split("#")[0].strip() for line in first.strip().splitlines()] == [
        "make demo",
        "make test",
    ]
    order = [
        text.index(h)
        for h in (
            "## Your first hour",
            "## The stages",
            "## Python API",
            "## Reading the report",
            "## Troubleshooting",
            "## What it measured",
        )
    ]
    assert order == sorted(order)


def test_readme_python_api_runs(synthetic_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """On the generated photo folder (tests/synthetic.py): runs from a bare clone too."""
    code = _small(
        _python_api_block(),
        {
            '"my_photos"': repr(str(synthetic_dir)),
            'out="data.zip")': 'out="data.zip", size=64, workers=1, quiet=True)',
            "epochs=3)": "epochs=1, width_mult=0.25, pretrained=False, unfreeze_from=0, "
            'workers=0, amp="off", quiet=True)',
            'EvaluateConfig(target="runs/api")': 'EvaluateConfig(target="runs/api", quiet=True)',
            'name="my_model")': 'name="my_model", quiet=True, parity_count=8)',
        },
    )
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "runs/api/report" in printed
    assert (tmp_path / "bundle-api" / "skyclass.json").is_file()
    assert (tmp_path / "runs" / "api" / "report" / "report.html").is_file()
