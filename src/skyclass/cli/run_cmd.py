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

from skyclass.cli.options import add_command
from skyclass.cli.prepare_cmd import add_prepare_options, prepare_config_from_args
from skyclass.cli.train_cmd import add_train_options, result_line, train_config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(
        sub,
        "run",
        run_pipeline,
        help="prepare → train → evaluate → export → one test prediction, in one go",
        description=(
            "Run the whole pipeline on RAW_DIR (class folders of photos, or a zip of them). "
            "Writes OUT/dataset.zip, OUT/run/ (checkpoints, history.jsonl, report/) and "
            "OUT/bundle/ (model.onnx, model.pt, skyclass.json), then classifies one photo "
            "through the same handler that serves the API. All prepare and train options apply."
        ),
        examples=(
            "skyclass run my_photos/ --out runs/mine --epochs 5",
            "skyclass run ../shared/datasets/bird_drone --out demo --epochs 3   # = make demo",
            "skyclass run my_photos.zip --out runs/z --recipe reference --name flyers",
        ),
    )
    parser.add_argument("raw", metavar="RAW_DIR", help="folder (or .zip) of class folders")
    parser.add_argument("--out", required=True, metavar="OUT", help="output folder")
    parser.add_argument(
        "--predict-image",
        metavar="IMAGE",
        default=None,
        help="photo for the final prediction (default: the first test photo)",
    )
    parser.add_argument(
        "--name",
        default=None,
        help="model name in the report, the API answers, the upload page and "
        "the default S3 prefix (default: the name of RAW_DIR)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars, fewer lines")
    add_prepare_options(parser)
    add_train_options(parser, common=False)


def _stage(name: str, quiet: bool) -> float:
    if not quiet:
        print(f"\n== {name} ==", flush=True)
    return time.perf_counter()


def _done(started: float, quiet: bool) -> None:
    if not quiet:
        print(f"({time.perf_counter() - started:.1f} s)", flush=True)


def model_name(args: argparse.Namespace) -> str:
    """--name, else the photo folder's name ('bird_drone', not 'run'); a zip without .zip."""
    if args.name:
        return args.name
    raw = Path(args.raw).resolve()
    return raw.stem if raw.suffix.lower() == ".zip" else raw.name


def _prediction_image(args: argparse.Namespace, dataset_zip: Path) -> tuple[str, bytes, str | None]:
    """The user's photo, else the raw source of the first test image, else its zip copy;
    with the true class where it is known (a test image), None for the user's photo."""
    from skyclass.dataset_zip import PreparedDataset

    if args.predict_image:
        path = Path(args.predict_image)
        return path.name, path.read_bytes(), None
    dataset = PreparedDataset(dataset_zip)
    entry = (dataset.split("test") or dataset.split("train"))[0]
    raw_source = Path(args.raw) / entry.source
    if Path(args.raw).is_dir() and raw_source.is_file():
        return str(raw_source), raw_source.read_bytes(), entry.label
    return entry.path, dataset.read(entry.path), entry.label


def prediction_line(name: str, answer: dict, true_class: str | None) -> str:
    """`photo: true bird, predicted bird 97.1% (right)`, or the top-3 for the user's photo."""
    top = ", ".join(f"{p['label']} {p['probability']:.1%}" for p in answer["predictions"])
    if true_class is None:
        return f"{name}: {top}"
    verdict = "right" if answer["predictions"][0]["label"] == true_class else "MISS"
    return f"{name}: true class {true_class}; predicted {top} ({verdict})"


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


def check_outputs(args: argparse.Namespace, out: Path) -> bool:
    """Check every path the pipeline will write, before any is written; True: reuse dataset.zip.

    Without --resume nothing of an earlier run may be in OUT (re-running `prepare` would
    replace the dataset.zip that run was trained on, and it could never be resumed again).
    With --resume the existing dataset.zip is reused as it is and the run continues.
    """
    from skyclass.errors import SkyclassError

    dataset_zip, run_dir, bundle = out / "dataset.zip", out / "run", out / "bundle"
    if out.exists() and not out.is_dir():
        raise SkyclassError(
            f"--out {out} is a file; give a folder (it will hold dataset.zip, run/ and bundle/)"
        )
    if args.predict_image and not Path(args.predict_image).is_file():
        raise SkyclassError(f"--predict-image {args.predict_image} is not a file")
    if dataset_zip.is_dir():
        raise SkyclassError(f"{dataset_zip} is a folder; it must be the prepared dataset file")
    earlier = [
        str(p)
        for p in (dataset_zip, run_dir, bundle)
        if p.exists() and not (p.is_dir() and not any(p.iterdir()))
    ]
    if earlier and not args.resume:
        raise SkyclassError(
            f"--out {out} already holds an earlier run ({', '.join(earlier)}); "
            "pass --resume to continue it with its dataset.zip, or choose "
            "another --out. Nothing was written."
        )
    return bool(args.resume) and dataset_zip.is_file()


def review_hint(raw: str, dataset_zip: Path, out: Path) -> str:
    """The label-cleaning loop, with this run's paths."""
    review_dir = out / "review"
    return (
        f"clean the labels: skyclass review {dataset_zip} --out {review_dir} --serve, then "
        f"skyclass prepare {raw} --decisions {review_dir / 'decisions.csv'} --out "
        f"{out / 'dataset-reviewed.zip'} and train on it"
    )


def run_pipeline(args: argparse.Namespace) -> int:
    from skyclass.evaluate import EvaluateConfig, evaluate, summary_table
    from skyclass.export import ExportConfig, export_bundle
    from skyclass.inputs import FOLDER, PHOTO_FOLDER, PHOTO_ZIP, require
    from skyclass.prepare import prepare, summary_text
    from skyclass.train import train

    require(
        args.raw,
        (PHOTO_FOLDER, PHOTO_ZIP, FOLDER),
        "run",
        "a folder (or zip) of class folders of photos",
    )
    out = Path(args.out)
    dataset_zip, run_dir, bundle = out / "dataset.zip", out / "run", out / "bundle"
    total = time.perf_counter()
    reuse_dataset = check_outputs(args, out)

    started = _stage("prepare", args.quiet)
    if reuse_dataset:  # the run being resumed was trained on exactly this file
        print(f"reusing {dataset_zip} (--resume)")
    else:
        report = prepare(prepare_config_from_args(args, str(dataset_zip)))
        if not args.quiet:
            print(summary_text(report))
    _done(started, args.quiet)

    started = _stage("train", args.quiet)
    summary = train(train_config_from_args(args, str(dataset_zip), str(run_dir)))
    if not args.quiet:
        print(result_line(summary))
    _done(started, args.quiet)

    started = _stage("evaluate", args.quiet)
    name = model_name(args)
    metrics = evaluate(EvaluateConfig(target=str(run_dir), quiet=args.quiet, title=name))
    report_html = Path(metrics["report_dir"]) / "report.html"
    if not args.quiet:
        print(summary_table(metrics))
        print(f"report: {report_html}")
    _done(started, args.quiet)

    started = _stage("export", args.quiet)
    export_bundle(ExportConfig(run=run_dir, out=bundle, force=True, quiet=args.quiet, name=name))
    if not args.quiet:
        print(f"bundle: {bundle}")
    _done(started, args.quiet)

    started = _stage("predict (local Lambda handler)", args.quiet)
    photo, data, true_class = _prediction_image(args, dataset_zip)
    answer = predict_through_handler(bundle, photo, data)
    if answer["status"] != 200:
        print(f"prediction failed: {json.dumps(answer)}")
        return 1
    print(prediction_line(photo, answer, true_class))
    _done(started, args.quiet)
    if not args.quiet:
        print(
            f"\ndone in {time.perf_counter() - total:.0f} s; serve it with: skyclass serve {bundle}"
        )
        print(review_hint(args.raw, dataset_zip, out))
    print(
        f"test accuracy {metrics['accuracy']:.2%} ({metrics['num_images']} images); "
        f"report: {report_html}"
    )
    return 0
