"""The Lambda package holds numpy, Pillow and onnxruntime only: serving must never need torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import json, sys
import skyclass.serving.lambda_handler as lh
import skyclass.serving.local_server, skyclass.serving.bundle, skyclass.serving.events
import skyclass.predict
response = lh.handler({"version": "2.0", "rawPath": "/", "headers": {},
                       "requestContext": {"http": {"method": "GET"}, "requestId": "r1"}}, None)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in
               ("torch", "torchvision", "albumentations", "matplotlib", "onnx", "boto3")
               or m.startswith(("skyclass.train", "skyclass.torch_data", "skyclass.augment",
                                "skyclass.dataset_zip", "skyclass.export",
                                "skyclass.checkpoint", "skyclass.model", "skyclass.evaluate")))
print(json.dumps({"status": response["statusCode"], "heavy": heavy,
                  "onnxruntime": "onnxruntime" in sys.modules}))
"""


def test_handler_loads_and_answers_without_torch(bundle_dir: Path) -> None:
    env = {**os.environ, "MODEL_URI": str(bundle_dir)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == 200  # the model really was loaded (health reads it)
    assert result["onnxruntime"] is True
    assert result["heavy"] == []
    assert "torch" not in out.stdout
