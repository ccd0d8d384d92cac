"""Lambda zip size per architecture, and what each way of shrinking it saves (issue 17).

    .venv/bin/python bench/lambda_size.py [--arch x86_64 arm64] [--ort-wheels DIR]
        [--bundle BUNDLE_DIR ...] [--out bench/results/lambda_size.json]

1. build: `skyclass deploy --package-only --no-upload` per --arch from its wheelhouse
   (deploy/.wheelhouse, deploy/.wheelhouse-arm64: `make node`), in a private copy of deploy/,
   as the package tests do; its real zipped / unzipped sizes against issue 17's goal.
2. candidates, estimated from that zip by swapping members and deflating the new bytes at
   level 9, as serverless-python-requirements (JSZip, level 9) writes the zip (the estimator's
   error is recorded: every member of the real zip deflated again vs what the zip holds):
   - "unstripped": every *.so slim's `strip` changed, put back as its wheel ships it;
   - "onnxruntime X": the Python binding of each onnxruntime wheel for that architecture in
     --ort-wheels (fetch them with `pip download onnxruntime==X --no-deps --only-binary=:all:
     --platform manylinux_2_28_x86_64 --python-version 3.12 --implementation cp -d DIR`);
   - what cannot go: the libraries in *.libs/ that the zip's native files link (DT_NEEDED,
     read with readelf), and the numpy / PIL / onnxruntime Python files the handler's process
     did not import (sys.modules after a prediction; reported, not removed: see the note).
3. run (x86_64, where this machine can): the unzipped package alone under CPython 3.12
   (-I -S): imports, each format decode_limits.BASE_FORMATS accepts written and decoded by the
   zip's Pillow, numpy's OpenBLAS (matmul, solve); with --bundle, the handler answers and the
   zip's Classifier gives the same probabilities on real photos as this venv's (whose
   onnxruntime may be another version: both versions are recorded).
Results: bench/results/lambda_size.json.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.deploy.helpers import WHEELHOUSES, copy_service, find_python312, write_bundle  # noqa: E402

from skyclass.decode_limits import BASE_FORMATS  # noqa: E402
from skyclass.deploy import ARCHITECTURES, GOAL_UNZIPPED_BYTES, GOAL_ZIPPED_BYTES  # noqa: E402

VENV_BIN = Path(sys.executable).parent
DATASETS = REPO.parent / "shared" / "datasets"
BINDING = re.compile(r"^onnxruntime/capi/onnxruntime_pybind11_state\..*\.so$")


def mib(n: int) -> float:
    return round(n / 2**20, 2)


@functools.cache  # the same libraries come back in many candidates
def deflated(data: bytes) -> int:
    """Bytes `data` takes in the zip: raw deflate at level 9, as JSZip (pako) writes it."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return len(packer.compress(data) + packer.flush())


def build(arch: str, work: Path, wheelhouse: Path) -> Path:
    """The Lambda zip `skyclass deploy --package-only` builds for one architecture."""
    service = copy_service(work / "deploy")
    bundle = write_bundle(work / "bundle", b"fp32-onnx" * 500, int8_bytes=b"int8-onnx" * 200)
    cmd = [
        *(str(VENV_BIN / "python"), "-m", "skyclass", "deploy", str(bundle)),
        *("--bucket", "unused", "--package-only", "--no-upload", "--json"),
        *("--arch", arch, "--wheelhouse", str(wheelhouse), "--service-dir", str(service)),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{arch} package failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
    return service / ".serverless" / "skyclass.zip"


def sizes(zip_path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(zip_path) as zf:
        unzipped = sum(i.file_size for i in zf.infolist())
    zipped = zip_path.stat().st_size
    return {
        "zipped_bytes": zipped,
        "unzipped_bytes": unzipped,
        "zipped_mib": mib(zipped),
        "unzipped_mib": mib(unzipped),
        "goal_met": zipped <= GOAL_ZIPPED_BYTES and unzipped <= GOAL_UNZIPPED_BYTES,
    }


def biggest(zip_path: Path, top: int = 10) -> dict[str, dict[str, float]]:
    with zipfile.ZipFile(zip_path) as zf:
        infos = sorted(zf.infolist(), key=lambda i: -i.file_size)[:top]
    return {
        i.filename: {"unzipped_mib": mib(i.file_size), "zipped_mib": mib(i.compress_size)}
        for i in infos
    }


def estimator_error(zip_path: Path) -> dict[str, float]:
    """How far level-9 zlib lands from the zip's own compressed sizes, over all its members."""
    with zipfile.ZipFile(zip_path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        ours = sum(deflated(zf.read(i)) for i in infos)
    theirs = sum(i.compress_size for i in infos)
    return {"zip_members_mib": mib(theirs), "zlib9_mib": mib(ours), "diff_mib": mib(ours - theirs)}


def swapped(zip_path: Path, replacements: dict[str, bytes]) -> dict[str, Any]:
    """The package's estimated sizes with some members' bytes replaced."""
    real = sizes(zip_path)
    zipped, unzipped = real["zipped_bytes"], real["unzipped_bytes"]
    with zipfile.ZipFile(zip_path) as zf:
        for name, data in replacements.items():
            info = zf.getinfo(name)
            zipped += deflated(data) - info.compress_size
            unzipped += len(data) - info.file_size
    return {
        "zipped_mib": mib(zipped),
        "unzipped_mib": mib(unzipped),
        "goal_met": zipped <= GOAL_ZIPPED_BYTES and unzipped <= GOAL_UNZIPPED_BYTES,
        "delta_zipped_mib": mib(zipped - real["zipped_bytes"]),
        "delta_unzipped_mib": mib(unzipped - real["unzipped_bytes"]),
    }


def wheel_originals(zip_path: Path, wheelhouse: Path) -> dict[str, bytes]:
    """The zip's *.so members whose bytes differ from the wheel they came from (stripped)."""
    changed: dict[str, bytes] = {}
    with zipfile.ZipFile(zip_path) as zf:
        native = {i.filename: zf.read(i) for i in zf.infolist() if i.filename.endswith(".so")}
    for wheel in sorted(wheelhouse.glob("*.whl")):
        with zipfile.ZipFile(wheel) as wf:
            for name in set(wf.namelist()) & native.keys():
                original = wf.read(name)
                if original != native[name]:
                    changed[name] = original
    return changed


def strip_estimate(zip_path: Path, tool: str) -> dict[str, Any]:
    """What `tool` (e.g. llvm-strip, which reads aarch64) would save on the zip's *.so files,
    the files serverless-python-requirements' strip touches; not applied."""
    replacements: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="lambda-size-") as tmp, zipfile.ZipFile(zip_path) as zf:
        for name in (n for n in zf.namelist() if n.endswith(".so")):
            copy = Path(tmp) / "lib.so"
            copy.write_bytes(zf.read(name))
            done = subprocess.run([tool, str(copy)], capture_output=True, check=False)
            if done.returncode == 0 and copy.stat().st_size < zf.getinfo(name).file_size:
                replacements[name] = copy.read_bytes()
    return {"tool": tool, "files": len(replacements), "package": swapped(zip_path, replacements)}


def by_kind(zip_path: Path) -> dict[str, dict[str, float]]:
    """Unzipped and zipped MiB of native libraries, Python files and the rest; duplicates."""
    kinds: dict[str, list[int]] = {}
    seen: dict[str, str] = {}
    duplicates: list[str] = []
    with zipfile.ZipFile(zip_path) as zf:
        for info in (i for i in zf.infolist() if not i.is_dir()):
            name = info.filename
            kind = "native" if re.search(r"\.so(\.|$)", name) else Path(name).suffix or "none"
            kind = kind if kind in ("native", ".py") else "other"
            row = kinds.setdefault(kind, [0, 0, 0])
            row[0] += 1
            row[1] += info.file_size
            row[2] += info.compress_size
            digest = hashlib.sha256(zf.read(info)).hexdigest()
            if digest in seen and info.file_size > 1024:
                duplicates.append(f"{name} = {seen[digest]}")
            seen.setdefault(digest, name)
    result: dict[str, Any] = {
        kind: {"files": n, "unzipped_mib": mib(u), "zipped_mib": mib(z)}
        for kind, (n, u, z) in sorted(kinds.items())
    }
    result["duplicates_over_1_kib"] = duplicates
    return result


def wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def ort_candidates(
    zip_path: Path, wheels: list[Path], unstripped: dict[str, bytes]
) -> dict[str, Any]:
    """Each onnxruntime wheel's binding in place of the zip's (the rest of onnxruntime/ is
    Python, 0.5 MiB, left as built), with the other libraries as built and as the wheels
    ship them (no strip)."""
    with zipfile.ZipFile(zip_path) as zf:
        (binding,) = [n for n in zf.namelist() if BINDING.match(n)]
    rows: dict[str, Any] = {}
    for wheel in sorted(wheels, key=lambda w: [int(p) for p in wheel_version(w).split(".")]):
        with zipfile.ZipFile(wheel) as wf:
            data = wf.read(binding)
        rows[wheel_version(wheel)] = {
            "binding_unzipped_mib": mib(len(data)),
            "binding_zipped_mib": mib(deflated(data)),
            "package": swapped(zip_path, {binding: data}),
            "package_unstripped": swapped(zip_path, {**unstripped, binding: data}),
        }
    return rows


def needed(root: Path) -> dict[str, list[str]]:
    """DT_NEEDED of every ELF file under root (readelf reads every architecture)."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.so*")):
        if not path.is_file() or path.read_bytes()[:4] != b"\x7fELF":
            continue
        out = subprocess.run(
            ["readelf", "-d", str(path)], capture_output=True, text=True, check=True
        ).stdout
        found[str(path.relative_to(root))] = re.findall(
            r"\(NEEDED\)\s+Shared library: \[(.+)\]", out
        )
    return found


def bundled_libraries(root: Path) -> dict[str, Any]:
    """Every library a wheel bundles (numpy.libs/, pillow.libs/): who links it, its size."""
    links = needed(root)
    rows = {}
    for lib in sorted(root.glob("*.libs/*")):
        users = sorted(name for name, libs in links.items() if lib.name in libs)
        rows[str(lib.relative_to(root))] = {
            "unzipped_mib": mib(lib.stat().st_size),
            "needed_by": users,
        }
    return rows


RUN_ZIP = r"""
import base64, io, json, sys, time
root, formats, images, bundle = sys.argv[1], sys.argv[2].split(","), sys.argv[3:-1], sys.argv[-1]
sys.path.insert(0, root)
import numpy as np, onnxruntime
from PIL import Image
out = {"onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "decoded": {}}
# numpy.random is not in the zip (slimPatterns): a fixed pattern instead.
pattern = (np.arange(48 * 64 * 3) * 2654435761 % 251).astype(np.uint8).reshape(48, 64, 3)
noise = Image.fromarray(pattern)
for fmt in formats:
    buf = io.BytesIO(); noise.save(buf, fmt)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        im.load(); out["decoded"][fmt] = list(im.size)
a = np.cos(np.arange(300 * 300.0).reshape(300, 300)) + 10 * np.eye(300)
out["blas_ok"] = bool(np.allclose(a @ np.linalg.solve(a, a[:, 0]), a[:, 0]))
if bundle != "-":
    from skyclass.serving.lambda_handler import handler
    from skyclass.serving.classifier import Classifier
    import os
    os.environ["MODEL_URI"] = bundle
    body = base64.b64encode(open(images[0], "rb").read()).decode()
    event = {"httpMethod": "POST", "path": "/predict", "resource": "/predict",
             "headers": {"Content-Type": "image/jpeg"}, "requestContext": {"requestId": "b"},
             "body": body, "isBase64Encoded": True}
    out["handler_status"] = handler(event, None)["statusCode"]
    clf = Classifier.from_bundle(bundle, threads=1)
    out["probabilities"] = [clf.predict_proba(clf.preprocess(open(p, "rb").read()))[0].tolist()
                            for p in images]
out["loaded"] = sorted({m.__file__[len(root) + 1:] for m in list(sys.modules.values())
                        if (getattr(m, "__file__", None) or "").startswith(root)})
out["torch"] = "torch" in sys.modules
print(json.dumps(out))
"""


def photos(per_set: int = 20) -> list[Path]:
    """Real photos of both data sets, spread over their classes."""
    picked: list[Path] = []
    for name in ("bird_drone", "ddd_visible"):
        files = sorted(p for p in (DATASETS / name).rglob("*.jpg"))
        picked += files[:: max(1, len(files) // per_set)][:per_set]
    return picked


def run_zip(zip_path: Path, bundle: Path | None, images: list[Path]) -> dict[str, Any]:
    """The unzipped package alone under CPython 3.12, as Lambda runs it."""
    python = find_python312()
    if python is None:
        return {"skipped": "no CPython 3.12 interpreter"}
    with tempfile.TemporaryDirectory(prefix="lambda-size-") as tmp:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp)
        args = [tmp, ",".join(BASE_FORMATS), *map(str, images), str(bundle) if bundle else "-"]
        done = subprocess.run(
            [python, "-I", "-S", "-c", RUN_ZIP, *args],
            env={"PATH": "/usr/bin:/bin", "SKYCLASS_CACHE_DIR": str(Path(tmp) / "cache")},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            return {"python": python, "failed": done.stderr[-3000:]}
        result: dict[str, Any] = {"python": python, **json.loads(done.stdout.splitlines()[-1])}
        result["not_imported"] = not_imported(zip_path, set(result.pop("loaded")))
    if bundle is not None:
        result["same_as_this_venv"] = compare_with_venv(bundle, images, result.pop("probabilities"))
    return result


def not_imported(zip_path: Path, loaded: set[str]) -> dict[str, dict[str, float]]:
    """Python files of the big packages the handler's process never imported."""
    rows: dict[str, dict[str, float]] = {}
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            top = info.filename.split("/")[0]
            python_file = info.filename.endswith(".py") and info.filename not in loaded
            if top in ("numpy", "PIL", "onnxruntime") and python_file:
                row = rows.setdefault(top, {"files": 0, "unzipped_mib": 0.0, "zipped_mib": 0.0})
                row["files"] += 1
                row["unzipped_mib"] += info.file_size / 2**20
                row["zipped_mib"] += info.compress_size / 2**20
    return {k: {n: round(v, 2) for n, v in row.items()} for k, row in rows.items()}


def compare_with_venv(
    bundle: Path, images: list[Path], theirs: list[list[float]]
) -> dict[str, Any]:
    import numpy as np
    import onnxruntime

    from skyclass.serving.classifier import Classifier

    clf = Classifier.from_bundle(bundle, threads=1)
    ours = np.array([clf.predict_proba(clf.preprocess(p.read_bytes()))[0] for p in images])
    zipped = np.array(theirs)
    return {
        "venv_onnxruntime": onnxruntime.__version__,
        "images": len(images),
        "max_abs_probability_diff": float(np.abs(ours - zipped).max()),
        "top1_agreement": float((ours.argmax(1) == zipped.argmax(1)).mean()),
    }


def measure(arch: str, work: Path, ort_wheels: list[Path], bundles: list[Path]) -> dict[str, Any]:
    zip_path = build(arch, work, WHEELHOUSES[arch])
    machine = ARCHITECTURES[arch]
    result: dict[str, Any] = {
        "built": sizes(zip_path),
        "biggest_files": biggest(zip_path),
        "estimator_error": estimator_error(zip_path),
    }
    stripped = wheel_originals(zip_path, WHEELHOUSES[arch])
    result["stripped_files"] = sorted(stripped)
    result["by_kind"] = by_kind(zip_path)
    result["candidates"] = {
        "unstripped (as the wheels ship them)": swapped(zip_path, stripped),
        "onnxruntime binding per version": ort_candidates(
            zip_path, [w for w in ort_wheels if w.name.endswith(f"{machine}.whl")], stripped
        ),
    }
    if not stripped and shutil.which("llvm-strip"):
        result["candidates"]["llvm-strip (estimate, not applied)"] = strip_estimate(
            zip_path, "llvm-strip"
        )
    with tempfile.TemporaryDirectory(prefix="lambda-size-") as tmp:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp)
        result["bundled_libraries"] = bundled_libraries(Path(tmp))
    if arch == "x86_64" and platform.machine() == "x86_64":
        images = photos()
        result["zip_runs"] = {
            str(b): run_zip(zip_path, b, images)
            for b in bundles or [None]  # type: ignore[list-item]
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=list(ARCHITECTURES), choices=ARCHITECTURES)
    parser.add_argument(
        "--ort-wheels", type=Path, help="folder (searched recursively) of onnxruntime wheels"
    )
    parser.add_argument("--bundle", type=Path, nargs="*", default=[], help="exported bundles")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/lambda_size.json")
    args = parser.parse_args()
    ort_wheels = sorted(args.ort_wheels.rglob("onnxruntime-*cp312*.whl")) if args.ort_wheels else []
    result: dict[str, Any] = {
        "goal_mib": {"zipped": mib(GOAL_ZIPPED_BYTES), "unzipped": mib(GOAL_UNZIPPED_BYTES)},
        "architectures": {},
    }
    with tempfile.TemporaryDirectory(prefix="lambda-size-") as tmp:
        for arch in args.arch:
            result["architectures"][arch] = measure(arch, Path(tmp) / arch, ort_wheels, args.bundle)
            print(arch, json.dumps(result["architectures"][arch]["built"]), flush=True)
    result["machine"] = {"platform": platform.platform(), "strip": shutil.which("strip")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
