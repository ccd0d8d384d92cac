"""The `skyclass` command: one sub-command per pipeline stage, each in its own module.

Each module defines `register(subparsers)`, which adds its parser with `options.add_command`
(help, description, examples and the `handler` that takes the parsed arguments and returns an
exit code) and its options, from the stage's config dataclass where there is one
(`options.add_options`). Heavy imports (torch) happen
inside the handlers, so `skyclass --help` and `skyclass serve` stay light.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Sequence

from skyclass import __version__, cpu_memory
from skyclass.errors import SkyclassError

# "No space left", "disk quota exceeded", "file too large" (RLIMIT_FSIZE): no room to write.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# Order shown in --help: the pipeline's order.
COMMANDS = ("prepare", "review", "train", "evaluate", "export", "serve", "predict", "deploy", "run")
# The commands that run PyTorch on the CPU: their memory settings go in before torch loads.
TORCH_COMMANDS = ("train", "evaluate", "export", "run", "review")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skyclass",
        description=(
            "Prepare a photo folder, fine-tune MobileNetV2 on it, evaluate, export a lean "
            "CPU model and serve it over HTTP (locally or on AWS Lambda)."
        ),
        epilog="Run 'skyclass COMMAND --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"skyclass {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:  # a command module that fails to import is a bug: let it raise
        importlib.import_module(f"skyclass.cli.{name}_cmd").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in TORCH_COMMANDS:
        cpu_memory.tune()
    try:
        return int(args.handler(args) or 0)
    except SkyclassError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # train's says which epoch is saved and how to resume
        print(f"\n{exc}" if str(exc) else "\ninterrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a full disk is no bug: say so, without a traceback
        if exc.errno not in DISK_FULL_ERRNOS:
            raise
        print(
            f"error: out of disk space ({exc.strerror}: {exc.filename or 'a file'}); "
            "what was written before is intact: free space and run the command again "
            "(train: with --resume)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
