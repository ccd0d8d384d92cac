"""How `skyclass COMMAND --help` looks: wrapped prose, examples kept as written, real defaults.

Descriptions are one long line each and get wrapped; an epilog with line breaks (the
examples every command ends with) is printed as written. Options whose default is "whatever
the recipe says" (default None) show the `default` recipe's actual value, read from
`TrainConfig.from_recipe` when the help is printed (that import loads torch, so only
`train --help` and `run --help` pay for it).
"""

from __future__ import annotations

import argparse

# The recipe whose values an option's help shows as its default, and the other one shown too.
HELP_RECIPE = "default"
OTHER_RECIPE = "reference"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wrap single-line text, keep multi-line text (examples) as written, fill recipe defaults."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        field = getattr(action, "recipe_field", None)
        if field is None or "%(default)" in text:
            return text
        values = recipe_values(field)
        shown = f"default {values[HELP_RECIPE]} from the '{HELP_RECIPE}' recipe"
        if values[OTHER_RECIPE] != values[HELP_RECIPE]:
            shown += f"; '{OTHER_RECIPE}': {values[OTHER_RECIPE]}"
        return f"{text} ({shown.replace('%', '%%')})"  # `text` is escaped already


def recipe_values(field: str) -> dict[str, str]:
    """The value of TrainConfig `field` (or an augmentation field) in each recipe, as text."""
    from skyclass.train.config import RECIPES, TrainConfig

    values = {}
    for name in RECIPES:
        config = TrainConfig.from_recipe(name)
        value = getattr(config, field) if hasattr(config, field) else getattr(config.augment, field)
        values[name] = show_value(value)
    return values


def show_value(value: object) -> str:
    """0.0001 -> 1e-4, True -> on, None -> off: how a user would type it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "off"
    if isinstance(value, float):
        text = f"{value:.0e}" if 0 < abs(value) < 1e-3 else f"{value:g}"
        return text.replace("e-0", "e-")
    return str(value)


def examples(*lines: str) -> str:
    """An epilog of real example command lines (kept as written by HelpFormatter)."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)
