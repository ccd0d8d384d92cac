"""Benchmark: `reference` vs `default` recipe, and skyclass train vs a notebook-style loop.

    nice -n 10 .venv/bin/python bench/train_accuracy.py --epochs 4

1. Both recipes train on the same prepared bird_drone zip (same split, same epoch budget) on
   this machine; test accuracy, per-class recall, wall time and images/s are recorded.
2. A plain loop written the way the reference notebook did it (torchvision ImageFolder-style
   dataset over the RAW 416-px JPEGs, PIL transforms, the whole model in train mode, L1/L2
   over every parameter, reference hyper-parameters) trains for `--naive-epochs` epochs
   (default: as many as the recipes) on the same train/test split, before the recipes and
   again after them; its training images/s and its test accuracy after that many epochs are
   set against each skyclass recipe's.

On a GPU machine: `--device cuda --naive-epochs 0 --name train_accuracy_gpu`.

Writes bench/results/train_accuracy.json and bench/results/train_accuracy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from _common import cpu_memory_as_the_cli
from skyclass import cpu_memory

CPU_MEMORY = cpu_memory_as_the_cli()  # before torch loads

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from skyclass.checkpoint import read_history  # noqa: E402
from skyclass.dataset_zip import PreparedDataset  # noqa: E402
from skyclass.model import build_model  # noqa: E402
from skyclass.train import TrainConfig, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT.parent / "shared" / "datasets" / "bird_drone"
RESULTS = ROOT / "bench" / "results"


def ensure_dataset(path: Path, raw: Path) -> Path:
    """Use the prepared zip if it exists, else prepare bird_drone at 224 px with seed 0."""
    if path.is_file():
        return path
    from skyclass.prepare import PrepareConfig, prepare

    print(f"preparing {raw} -> {path} (seed 0)", flush=True)
    prepare(PrepareConfig(raw=raw, out=path, size=224, seed=0, quiet=True))
    return path


def run_recipe(
    name: str, data: Path, out: Path, epochs: int, overrides: dict, runtime: dict
) -> dict:
    """One recipe; `overrides` change what it learns, `runtime` only where it runs."""
    config = TrainConfig.from_recipe(
        name, data=str(data), out=str(out), epochs=epochs, **runtime, **overrides
    )
    summary = train(config)
    history = read_history(out)
    return {
        "recipe": name,
        "overrides": overrides,
        "summary": summary,
        "history": history,
        "train_images_per_s": _mean_rate(history),
        # Training scores the test split once, with best.pt (chosen on validation): both
        # columns show that figure (a two-way zip validates on its test split, with a warning).
        "best_test_acc": summary["test_acc"],
        "best_val_acc": summary["best_val_acc"],
        "final_test_acc": summary["test_acc"],
        "final_recall": summary["test_recall"],
        "wall_seconds": summary["wall_seconds"],
        "diverged": None,
    }


def _mean_rate(history: list[dict]) -> float:
    images = sum(r["train_images"] for r in history)
    seconds = sum(r["train_seconds"] for r in history)
    return images / seconds if seconds else 0.0


# --------------------------------------------------------------------------- notebook loop


class PhotoFolder(Dataset):
    """ImageFolder-style: PIL open + torchvision transforms, from raw files or the zip."""

    def __init__(
        self, files: list[tuple[Path | str, int]], transform, zip_path: Path | None = None
    ) -> None:
        self.files, self.transform, self.zip_path = files, transform, zip_path

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        import io

        from PIL import Image

        path, target = self.files[i]
        if self.zip_path is not None:  # the prepared 224-px image, read from the zip
            path = io.BytesIO(PreparedDataset(self.zip_path).read(str(path)))
        return self.transform(Image.open(path).convert("RGB")), target


def naive_loop(
    data: Path,
    raw: Path,
    epochs: int,
    workers: int,
    source: str = "prepared",
    test_split: str = "test",
) -> dict:
    """The reference notebook's way: PIL transforms, everything in train mode, no selection.

    `source` "prepared" feeds it the same 224-px images skyclass trains on (so the speed ratio
    measures training, not decoding); "raw" decodes the original files as the notebook did.
    """
    from torchvision import transforms as T

    ds = PreparedDataset(data)
    splits = ("train", test_split)
    if source == "raw":
        files = {s: [(raw / e.source, e.target) for e in ds.split(s)] for s in splits}
        zip_path = None
    else:
        files = {s: [(e.path, e.target) for e in ds.split(s)] for s in splits}
        zip_path = data
    norm = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    train_tf = T.Compose(
        [
            T.RandomRotation(20),
            T.RandomHorizontalFlip(),
            T.Resize((224, 224)),
            T.ColorJitter(0.1, 0.1, 0.1),
            T.ToTensor(),
            norm,
            T.RandomErasing(p=0.5, scale=(0.0625, 0.0625), ratio=(1, 1)),
        ]
    )
    test_tf = T.Compose([T.Resize((224, 224)), T.ToTensor(), norm])
    train_loader = DataLoader(
        PhotoFolder(files["train"], train_tf, zip_path),
        batch_size=32,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
    )
    test_loader = DataLoader(
        PhotoFolder(files[test_split], test_tf, zip_path), batch_size=64, num_workers=workers
    )
    torch.manual_seed(0)
    model = build_model(len(ds.classes), pretrained=True)
    for p in model.features[:16].parameters():
        p.requires_grad = False
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    rows = []
    load_before = os.getloadavg()[0]
    for epoch in range(1, epochs + 1):
        model.train()  # the notebook's bug: frozen BatchNorm layers keep updating statistics
        seen, correct, start = 0, 0, time.perf_counter()
        for x, y in train_loader:
            out = model(x)
            loss = nn.functional.cross_entropy(out, y)
            l1 = sum(p.abs().sum() for p in model.parameters())  # frozen ones too
            l2 = sum(p.pow(2).sum() for p in model.parameters())
            loss = loss + 5e-4 * l1 + 1e-4 * l2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(y)
            correct += (out.argmax(1) == y).sum().item()
        train_seconds = time.perf_counter() - start
        model.eval()
        test_correct = test_seen = 0
        with torch.no_grad():
            for x, y in test_loader:
                test_correct += (model(x).argmax(1) == y).sum().item()
                test_seen += len(y)
        rows.append(
            {
                "epoch": epoch,
                "train_acc": correct / seen,
                "test_acc": test_correct / test_seen,
                "train_images": seen,
                "train_seconds": train_seconds,
                "images_per_s": seen / train_seconds,
            }
        )
        print(f"naive epoch {epoch}: {rows[-1]}", file=sys.stderr, flush=True)
    return {
        "history": rows,
        "train_images_per_s": _mean_rate(rows),
        "final_test_acc": rows[-1]["test_acc"],
        "best_test_acc": max(r["test_acc"] for r in rows),
        "workers": workers,
        "loadavg_1min": [load_before, os.getloadavg()[0]],
    }


def baseline_env() -> dict[str, str]:
    """The environment of a baseline's own interpreter (the notebook loop, fastai): torch's own
    memory behaviour, as a notebook runs it; none of the settings this process made for
    skyclass's runs (`skyclass.cpu_memory`), which a child would otherwise inherit."""
    env = {k: v for k, v in os.environ.items() if k != cpu_memory.THP_ENV}
    env[cpu_memory.ENV] = "off"
    return env


def naive_in_fresh_process(
    data: Path, raw: Path, epochs: int, workers: int, source: str = "prepared"
) -> dict:
    """The notebook loop in a new interpreter, as a notebook runs it: none of the memory
    settings `skyclass train` applies to its own process (skyclass.cpu_memory)."""
    import subprocess

    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--naive-child",
            "--data",
            str(data),
            "--raw",
            str(raw),
            "--naive-epochs",
            str(epochs),
            "--workers",
            str(workers),
            "--naive-input",
            source,
        ],
        check=True,
        capture_output=True,
        text=True,
        env=baseline_env(),
    )
    print(proc.stderr[-2000:], end="", flush=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fastai_in_fresh_process(data: Path, epochs: int, workers: int) -> dict:
    """bench/fastai_anchor.py in its own interpreter (fastai is not a skyclass dependency)."""
    import subprocess

    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("fastai_anchor.py")),
            "--data",
            str(data),
            "--epochs",
            str(epochs),
            "--workers",
            str(workers),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=baseline_env(),
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report


def markdown(result: dict) -> str:
    lines = [
        "# train_accuracy benchmark",
        "",
        f"Data: `{result['data']}` ({result['train_images']} train / {result['test_images']} "
        f"test images, classes {', '.join(result['classes'])}); {result['epochs']} epochs per "
        f"recipe; machine: {result['machine']}; device: {result.get('device', 'cpu')}; torch "
        f"{result['torch']}; threads {result['threads']}; DataLoader workers "
        f"{result.get('workers', '?')}. All runs ran one after the other on this machine; the "
        "notebook loop, when there is one, in a Python process of its own.",
        "",
        "| run | best test acc | final test acc | "
        + " | ".join(f"recall {c}" for c in result["classes"])
        + " | wall s | train img/s |",
        "|---|---|---|" + "---|" * len(result["classes"]) + "---|---|",
    ]
    for r in result["recipes"]:
        if r.get("diverged"):
            lines.append(f"| {r['recipe']} | diverged: {r['diverged']} |")
            continue
        recall = " | ".join(f"{r['final_recall'][c]:.4f}" for c in result["classes"])
        changed = overrides_text(r.get("overrides", {}))
        label = f"skyclass `{r['recipe']}`" + (f" with {changed}" if changed else "")
        lines.append(
            f"| {label} | {r['best_test_acc']:.4f} | "
            f"{r['final_test_acc']:.4f} | {recall} | {r['wall_seconds']:.0f} | "
            f"{r['train_images_per_s']:.1f} (per epoch: {per_epoch(r['history'])}) |"
        )
    fastai = result.get("fastai")
    if fastai:
        recall = " | ".join(
            f"{fastai['test_recall'].get(c, float('nan')):.4f}" for c in result["classes"]
        )
        lines.append(
            f"| fastai `fine_tune` (1 frozen + {fastai['epochs'] - 1} epochs, its "
            f"defaults; last epoch) | | {fastai['test_acc']:.4f} | {recall} | "
            f"{fastai['wall_seconds']:.0f} | {fastai['train_images_per_s']:.1f} |"
        )
    naive = result.get("naive")
    naive_input = NAIVE_INPUT[result.get("naive_input", "raw")]
    if naive:
        blanks = " | ".join("" for _ in result["classes"])
        epochs = len(naive["history"])
        lines.append(
            f"| notebook-style loop ({epochs} epoch(s), run before and after the "
            f"recipes; no selection: its last epoch) | | "
            f"{naive['final_test_acc']:.4f} | {blanks} | | "
            f"{naive['train_images_per_s']:.1f} |"
        )
        lines += [
            "",
            f"Training throughput against the notebook loop (same data, "
            f"{naive['workers']} DataLoader worker(s) each):",
            "",
        ]
        validated_on = {r["summary"].get("validation_split") for r in result["recipes"]}
        split = "validation" if "val" in validated_on else "test"
        lines += [
            f"- skyclass `{name}`: **{ratio:.2f}x** the images/s; {split} accuracy after "
            f"epoch {epochs}: {acc:.4f} (the loop's test accuracy: "
            f"{naive['final_test_acc']:.4f})"
            for name, ratio, acc in speedups(result)
        ]
        lines += [
            "",
            "skyclass runs with its defaults: images pre-resized to 224 px by "
            "`prepare`, frozen prefix in eval mode under no_grad, channels_last, "
            f"mixed precision: {result.get('amp', '?')}, {memory_text(result)} "
            "(`skyclass.cpu_memory`); the notebook loop, in a fresh Python process "
            f"of its own with torch's defaults, decodes and transforms {naive_input} "
            "with PIL and runs the whole fp32 model in train mode (the `reference` "
            "recipe has its hyper-parameters).",
        ]
    lines += ablation_lines(result)
    lines += [
        "",
        f"One test image is {100 / result['test_images']:.2f} percentage points of "
        "accuracy. Per-epoch rows (loss, accuracy, LR, images/s, epoch time) and the "
        f"1-minute load average around each run are in {result['name']}.json.",
    ]
    return "\n".join(lines) + "\n"


NAIVE_INPUT = {
    "prepared": "the same prepared 224-px images from the zip",
    "raw": "the raw original photos",
}


def memory_text(result: dict) -> str:
    """What skyclass.cpu_memory did for the skyclass runs (files before it was recorded: the
    glibc setting only, which train() always made)."""
    applied = result.get("cpu_memory", {"malloc": True, "thp": False})
    parts = ["huge pages"] * bool(applied["thp"]) + ["glibc keeping freed memory"] * bool(
        applied["malloc"]
    )
    return " and ".join(parts) or "torch's default memory behaviour"


def speedups(result: dict) -> list[tuple[str, float, float]]:
    """(recipe, images/s over the notebook loop's, validation accuracy at the loop's last
    epoch: the test split of a two-way zip)."""
    naive = result["naive"]
    epochs = len(naive["history"])
    rows = []
    for r in result["recipes"]:
        if r.get("diverged") or len(r["history"]) < epochs:
            continue
        rows.append(
            (
                r["recipe"],
                r["train_images_per_s"] / naive["train_images_per_s"],
                r["history"][epochs - 1]["val_acc"],
            )
        )
    return rows


def overrides_text(overrides: dict) -> str:
    """How a run's recipe overrides read in a table: "frozen_bn=adapt, ema=1" ("" for none)."""
    return ", ".join(f"{k}={v}" for k, v in overrides.items())


def per_epoch(history: list[dict]) -> str:
    return "/".join(f"{r['images_per_s']:.0f}" for r in history)


def ablation_lines(result: dict) -> list[str]:
    """One row per `--name train_ablation_*` run: the default recipe with one change."""
    rows = []
    split = (result["train_images"], result["test_images"])
    for path in sorted(RESULTS.glob("train_ablation_*.json")):
        ablation = json.loads(path.read_text())
        if (ablation["train_images"], ablation["test_images"]) != split:
            continue  # measured on another prepare output: not comparable, leave it out
        for r in ablation["recipes"]:
            if r.get("diverged"):
                continue
            change = overrides_text(r["overrides"]) or "none"
            rows.append(
                f"| `{r['recipe']}` with {change} | {r['best_test_acc']:.4f} | "
                f"{r['final_test_acc']:.4f} |"
            )
    if not rows:
        return []
    base = next((r for r in result["recipes"] if r["recipe"] == "default"), None)
    head = [
        "",
        "Ablations (same data, split and epoch budget; one change to `default`):",
        "",
        "| run | best test acc | final test acc |",
        "|---|---|---|",
    ]
    if base and not base.get("diverged"):
        head.append(
            f"| `default` as shipped | {base['best_test_acc']:.4f} | {base['final_test_acc']:.4f} |"
        )
    return head + rows


def parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        out[key] = json.loads(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/bd.zip"))
    parser.add_argument("--raw", type=Path, default=RAW)
    parser.add_argument("--work", type=Path, default=Path("/tmp/skyclass-bench"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--recipes", nargs="+", default=["reference", "default"])
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=JSON",
        help="overrides applied to the default recipe (exploration)",
    )
    parser.add_argument(
        "--naive-epochs",
        type=int,
        default=None,
        help="epochs of the notebook-style loop (default: --epochs; 0: skip)",
    )
    parser.add_argument(
        "--naive-input",
        choices=("prepared", "raw"),
        default="prepared",
        help="the notebook loop reads the prepared 224-px images (default: the "
        "ratio then measures training) or decodes the raw originals",
    )
    parser.add_argument(
        "--fastai-epochs",
        type=int,
        default=0,
        help="also run fastai's fine_tune for this many epochs "
        "(bench/fastai_anchor.py; needs fastai installed; 0: skip)",
    )
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda (every run)")
    parser.add_argument(
        "--workers",
        type=int,
        default=-1,
        help="DataLoader workers of every run (default: skyclass's choice)",
    )
    parser.add_argument("--name", default="train_accuracy")
    parser.add_argument("--naive-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--render", action="store_true", help="only rewrite the .md from an existing results .json"
    )
    args = parser.parse_args()
    if args.naive_child:  # the notebook loop, alone in this process: print its result
        workers = max(args.workers, 0)
        print(
            json.dumps(
                naive_loop(args.data, args.raw, args.naive_epochs, workers, args.naive_input)
            )
        )
        return
    if args.render:
        saved = json.loads((RESULTS / f"{args.name}.json").read_text())
        (RESULTS / f"{args.name}.md").write_text(markdown(saved))
        return

    if args.naive_epochs is None:
        args.naive_epochs = args.epochs
    data = ensure_dataset(args.data, args.raw)
    ds = PreparedDataset(data)
    from skyclass.train.distributed import DistContext
    from skyclass.train.loaders import default_workers
    from skyclass.train.runtime import amp_dtype, pick_device

    device = pick_device(args.device)
    workers = (
        args.workers
        if args.workers >= 0
        else default_workers(DistContext(), len(ds.split("train")), device.type == "cuda")
    )
    runtime = {"device": args.device, "workers": workers}
    result: dict = {
        "data": str(data),
        "classes": ds.classes,
        "epochs": args.epochs,
        "train_images": len(ds.split("train")),
        "test_images": len(ds.split("test")),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "recipes": [],
        "started": time.ctime(),
        "name": args.name,
        "device": (torch.cuda.get_device_name(device) if device.type == "cuda" else device.type),
        "amp": str(amp_dtype(TrainConfig(data="-", out="-"), device) or "off"),
        "workers": workers,
        "naive_input": args.naive_input,
        "cpu_memory": CPU_MEMORY,
    }
    naive_runs = []
    if args.naive_epochs:  # before the recipes and again after: the CPU load drifts
        naive_runs.append(
            naive_in_fresh_process(data, args.raw, args.naive_epochs, workers, args.naive_input)
        )
    for name in args.recipes:
        out = args.work / f"{args.name}-{name}"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        overrides = parse_overrides(args.set) if name == "default" else {}
        load_before = os.getloadavg()[0]
        try:
            entry = run_recipe(name, data, out, args.epochs, overrides, runtime)
        except Exception as exc:  # noqa: BLE001 - a diverging recipe is a result, not a crash
            entry = {"recipe": name, "diverged": str(exc)}
        entry["loadavg_1min"] = [load_before, os.getloadavg()[0]]
        result["recipes"].append(entry)
        print(
            json.dumps({k: v for k, v in entry.items() if k != "history"}, default=str)[:600],
            flush=True,
        )
    if args.naive_epochs:
        naive_runs.append(
            naive_in_fresh_process(data, args.raw, args.naive_epochs, workers, args.naive_input)
        )
        images = sum(r["train_images"] for n in naive_runs for r in n["history"])
        seconds = sum(r["train_seconds"] for n in naive_runs for r in n["history"])
        result["naive"] = {
            "runs": naive_runs,
            "workers": workers,
            "train_images_per_s": images / seconds,
            "final_test_acc": naive_runs[0]["final_test_acc"],
            "best_test_acc": naive_runs[0]["best_test_acc"],
            "history": naive_runs[0]["history"],
        }
        usable = [r for r in result["recipes"] if not r.get("diverged")]
        ref = next((r for r in usable if r["recipe"] == "reference"), None) or next(
            iter(usable), None
        )
        if ref:
            result["speedup_baseline"] = ref["recipe"]
            result["speedup_vs_naive"] = (
                ref["train_images_per_s"] / result["naive"]["train_images_per_s"]
            )
    if args.fastai_epochs:
        result["fastai"] = fastai_in_fresh_process(data, args.fastai_epochs, workers)
    result["finished"] = time.ctime()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2, default=str))
    (RESULTS / f"{args.name}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
