"""The command-line form of the tests' tiny real run (MobileNetV2 x0.25, random init, one
thread, deterministic on CPU), shared by the tests that train in a child process."""

from __future__ import annotations


def tiny_train_args(epochs: int) -> list[str]:
    """`skyclass train` options for a tiny run of `epochs` epochs."""
    return [
        "--epochs", str(epochs), "--width-mult", "0.25", "--no-pretrained", "--lr", "0.05",
        "--unfreeze-from", "0", "--batch-size", "8", "--workers", "0", "--threads", "1",
        "--seed", "0", "--amp", "off", "--quiet",
    ]  # fmt: skip
