"""Command-line options made from a config dataclass, so each option is defined once: on its field.

A stage's config dataclass (e.g. `PrepareConfig`) is the one place where an option's name, type,
default, choices and help live. `add_options` turns its fields into argparse options and
`config_from_args` builds the config back from the parsed namespace. What a field's
`metadata` may say (all optional):

- `help`: the option's help text; the default is appended as "(default X)" unless the text
  already says `%(default)s` or the default is None/False;
- `flag`: the option string when it is not `--` + the field name in kebab case
  (`--rotate` for `rotate_limit`); `positional: True` makes it an argument instead;
- `choices`, `metavar`, `required`, `nargs` (`"?"`: a positional that may be left out);
- `type`: the function that parses the text (default: from the annotation; paths stay `str`,
  the config converts them, so messages show the path as the user typed it);
- `unit`: the option is given in units of this many config units (`--max-file-mb` for a
  `max_file_bytes` field: unit 1024 * 1024);
- `default_help`: how to show a default that is computed or None ("all cores");
- `cli: False`: not an option (set by the API or by another option).

Booleans: default False gives a plain `--x` switch; default True gives `--x/--no-x`
(`argparse.BooleanOptionalAction`), or only `--no-x` when that is the field's `flag` (its help
then shows no default: the switch only turns the field off).
Importing this module costs nothing; the config modules it reads must stay as light (no torch).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from skyclass.cli.helpfmt import HelpFormatter
from skyclass.cli.helpfmt import examples as examples_epilog

T = TypeVar("T")
ArgTarget = argparse.ArgumentParser | argparse._ArgumentGroup


def cli_fields(
    cls: type, only: Iterable[str] | None = None, skip: Iterable[str] = ()
) -> list[dataclasses.Field]:
    """The fields of `cls` that are options, in declaration order (`only` filters, keeps order)."""
    wanted = None if only is None else set(only)
    unknown = (wanted or set()) | set(skip)
    names = {f.name for f in dataclasses.fields(cls)}
    if unknown - names:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown - names)}")
    return [
        f
        for f in dataclasses.fields(cls)
        if f.metadata.get("cli", True)
        and f.name not in set(skip)
        and (wanted is None or f.name in wanted)
    ]


def field_default(f: dataclasses.Field) -> Any:
    """A field's default value (its default_factory called), or None when it has none."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def unwrap_optional(annotation: Any) -> Any:
    """`float | None` -> float (the type the option parses); other annotations unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def show_default(value: Any) -> str:
    """How a default reads in --help: 0.0001 -> 1e-4, 64000000 -> 64,000,000, True -> on."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    if isinstance(value, float):
        text = f"{value:.0e}" if 0 < abs(value) < 1e-3 else f"{value:g}"
        return text.replace("e-0", "e-")
    return str(value)


def _help(f: dataclasses.Field, default: Any) -> str | None:
    text = f.metadata.get("help")
    if text is None:
        return None
    if default is True and f.metadata.get("flag", "").startswith("--no-"):
        return text  # `--no-x` only turns x off: "(default on)" would read as the switch's
    shown = f.metadata.get("default_help")
    if shown is not None:
        shown = f": {shown}"
    elif default is not None and default is not False and not isinstance(default, list):
        shown = f" {show_default(default)}"
    if shown is None or "%(default)" in text:
        return text
    return f"{text} (default{shown})".replace("%", "%%").replace("%%(default)", "%(default)")


def add_option(target: ArgTarget, f: dataclasses.Field, annotation: Any) -> argparse.Action:
    """One argparse option (or argument) for field `f` of a config dataclass."""
    meta = f.metadata
    unit = meta.get("unit", 1)
    default = field_default(f)
    if isinstance(default, (int, float)) and not isinstance(default, bool) and unit != 1:
        default = default // unit
    kind = unwrap_optional(annotation)
    flag = meta.get("flag", "--" + f.name.replace("_", "-"))
    kwargs: dict[str, Any] = {"help": _help(f, default)}
    for key in ("choices", "metavar", "required", "nargs"):
        if key in meta:
            kwargs[key] = meta[key]
    if kind is bool:
        if default and flag.startswith("--no-"):
            kwargs.update(action="store_false", default=True)
        elif default:
            kwargs.update(action=argparse.BooleanOptionalAction, default=True)
        else:
            kwargs.update(action="store_true", default=False)
        return target.add_argument(flag, dest=f.name, **kwargs)
    if "metavar" not in kwargs and "choices" not in kwargs and not meta.get("positional"):
        kwargs["metavar"] = flag.lstrip("-").replace("-", "_").upper()  # argparse's, by flag
    parse: Callable[[str], Any] | None = meta.get("type")
    if parse is None and typing.get_origin(kind) is list:
        kwargs["nargs"] = "+"
        kind = typing.get_args(kind)[0] if typing.get_args(kind) else str
    if parse is None:
        parse = kind if kind in (int, float) else str
    kwargs["type"] = parse
    if meta.get("positional"):
        return target.add_argument(f.name, **kwargs)
    return target.add_argument(flag, dest=f.name, default=default, **kwargs)


def add_options(
    target: ArgTarget, cls: type, *, only: Iterable[str] | None = None, skip: Iterable[str] = ()
) -> list[argparse.Action]:
    """Add an option for every CLI field of dataclass `cls` (see the module docstring)."""
    hints = typing.get_type_hints(cls)
    return [add_option(target, f, hints[f.name]) for f in cli_fields(cls, only, skip)]


def config_values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The values of `cls`'s CLI fields found in `args` (units converted back)."""
    values = {}
    for f in cli_fields(cls):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            unit = f.metadata.get("unit", 1)
            values[f.name] = value * unit if value is not None and unit != 1 else value
    return values


def config_from_args(cls: type[T], args: argparse.Namespace, **values: Any) -> T:
    """`cls` built from the parsed options, with `values` (e.g. an output path) on top."""
    return cls(**{**config_values(cls, args), **values})


def add_command(
    sub: argparse._SubParsersAction,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str,
    examples: Iterable[str],
) -> argparse.ArgumentParser:
    """A sub-command's parser: one-line `help`, wrapped `description`, real `examples` at the
    end of its --help (helpfmt), and `handler` (parsed args -> exit code) to run it."""
    parser = sub.add_parser(
        name,
        help=help,
        description=description,
        formatter_class=HelpFormatter,
        epilog=examples_epilog(*examples),
    )
    parser.set_defaults(handler=handler)
    return parser
