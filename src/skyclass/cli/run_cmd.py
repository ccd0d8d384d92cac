"""`skyclass run RAW_DIR --out OUT`: the whole pipeline in one go.

prepare -> train -> evaluate -> export -> one prediction through the serving handler, each
stage calling the same Python API as its own sub-command. OUT/ ends up holding
dataset.zip, run/ (checkpoints, history, report/) and bundle/ (what `serve`/`deploy` take).
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import time
from pathlib import Path

from skyclass.cli.prepare_cmd import add_prepare_options, prepare_config_from_args
from skyclass.cli.train_cmd import add_train_options, train_config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="prepare → train → evaluate → export → one test prediction, in one go",
        description=(
            "Run the whole pipeline on RAW_DIR (class folders of photos, or a zip of them). "
            "Writes OUT/dataset.zip, OUT/run/ (checkpoints, history.jsonl, report/) and "
            "OUT/bundle/ (model.onnx, model.pt, skyclass.json), then classifies one photo "
            "through the same handler that serves the API. All prepare and train options apply."
        ),
    )
    parser.add_argument("raw", metavar="RAW_DIR", help="folder (or .zip) of class folders")
    parser.add_argument("--out", required=True, metavar="OUT", help="output folder")
    parser.add_argument("--predict-image", metavar="IMAGE", default=None,
                        help="photo for the final prediction (default: the first test photo)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars, fewer lines")
    add_prepare_options(parser)
    add_train_options(parser, common=False)
    parser.set_defaults(handler=run_pipeline)


def _stage(name: str, quiet: bool) -> float:
    if not quiet:
        print(f"\n== {name} ==", flush=True)
    return time.perf_counter()


def _done(started: float, quiet: bool) -> None:
    if not quiet:
        print(f"({time.perf_counter() - started:.1f} s)", flush=True)


def _prediction_image(args: argparse.Namespace, dataset_zip: Path) -> tuple[str, bytes]:
    """The user's photo, else the raw source of the first test image, else its zip copy."""
    from skyclass.dataset import PreparedDataset

    if args.predict_image:
        path = Path(args.predict_image)
        return path.name, path.read_bytes()
    dataset = PreparedDataset(dataset_zip)
    entry = (dataset.split("test") or dataset.split("train"))[0]
    raw_source = Path(args.raw) / entry.source
    if Path(args.raw).is_dir() and raw_source.is_file():
        return str(raw_source), raw_source.read_bytes()
    return entry.path, dataset.read(entry.path)


def predict_through_handler(bundle: Path, name: str, data: bytes) -> dict:
    """POST the photo as multipart/form-data in an API Gateway v2 event to the Lambda handler."""
    from skyclass.predict import encode_multipart
    from skyclass.serving.classifier import Classifier
    from skyclass.serving.lambda_handler import App
    from skyclass.serving.local_server import build_v2_event

    part_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    body, content_type = encode_multipart("file", Path(name).name, data, part_type)
    event = build_v2_event("POST", "/predict?top_k=3", {"content-type": content_type}, body)
    response = App(lambda: Classifier.from_bundle(bundle))(event)
    return {"status": response["statusCode"], **json.loads(response["body"])}


def review_hint(raw: str, dataset_zip: Path, out: Path) -> str:
    """The label-cleaning loop, with this run's paths."""
    review_dir = out / "review"
    return (f"clean the labels: skyclass review {dataset_zip} --out {review_dir} --serve, then "
            f"skyclass prepare {raw} --decisions {review_dir / 'decisions.csv'} --out "
            f"{out / 'dataset-reviewed.zip'} and train on it")


def run_pipeline(args: argparse.Namespace) -> int:
    from skyclass.evaluate import EvaluateConfig, evaluate, summary_table
    from skyclass.export import ExportConfig, export_bundle
    from skyclass.prepare import prepare, summary_text
    from skyclass.train import train

    out = Path(args.out)
    dataset_zip, run_dir, bundle = out / "dataset.zip", out / "run", out / "bundle"
    total = time.perf_counter()

    started = _stage("prepare", args.quiet)
    report = prepare(prepare_config_from_args(args, str(dataset_zip)))
    if not args.quiet:
        print(summary_text(report))
    _done(started, args.quiet)

    started = _stage("train", args.quiet)
    summary = train(train_config_from_args(args, str(dataset_zip), str(run_dir)))
    if not args.quiet:
        print(f"best test accuracy {summary['best_test_acc']:.4f} "
              f"(epoch {summary['best_epoch']}/{summary['epochs']})")
    _done(started, args.quiet)

    started = _stage("evaluate", args.quiet)
    metrics = evaluate(EvaluateConfig(target=str(run_dir), quiet=args.quiet))
    if not args.quiet:
        print(summary_table(metrics))
        print(f"report: {Path(metrics['report_dir']) / 'report.html'}")
    _done(started, args.quiet)

    started = _stage("export", args.quiet)
    export_bundle(ExportConfig(run=run_dir, out=bundle, force=True, quiet=args.quiet))
    if not args.quiet:
        print(f"bundle: {bundle}")
    _done(started, args.quiet)

    started = _stage("predict (local Lambda handler)", args.quiet)
    name, data = _prediction_image(args, dataset_zip)
    answer = predict_through_handler(bundle, name, data)
    if answer["status"] != 200:
        print(f"prediction failed: {json.dumps(answer)}")
        return 1
    print(f"{name}: " + ", ".join(
        f"{p['label']} {p['probability']:.1%}" for p in answer["predictions"]))
    _done(started, args.quiet)
    if not args.quiet:
        print(f"\ndone in {time.perf_counter() - total:.0f} s; serve it with: "
              f"skyclass serve {bundle}")
        print(review_hint(args.raw, dataset_zip, out))
    return 0
