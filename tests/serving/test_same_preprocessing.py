"""Training's eval tensor and serving's tensor are the same array for the same image file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from skyclass.checkpoint import load_trained_model
from skyclass.dataset_zip import PreparedDataset
from skyclass.torch_data import EvalTransform


def test_training_eval_tensor_equals_serving_tensor(
    tiny_run, classifier, eva4_zip, eva4_images, tmp_path: Path
) -> None:
    dataset = PreparedDataset(eva4_zip)
    train_side = EvalTransform(dataset.spec)
    assert classifier.spec == dataset.spec  # the bundle carries the dataset's spec
    files = []
    for entry in dataset.split("test")[:4]:  # images as stored in the zip, written to files
        path = tmp_path / Path(entry.path).name
        path.write_bytes(dataset.read(entry.path))
        files.append(path)
    files += [paths[0] for paths in eva4_images.values()]  # raw, non-square originals
    for path in files:
        expected = np.asarray(train_side(path.read_bytes()))
        served = classifier.preprocess(path)
        assert served.dtype == np.float32 and served.shape == expected.shape
        assert np.array_equal(served, expected), path

    # ... and the served probabilities are the trained PyTorch model's on that tensor.
    trained = load_trained_model(tiny_run)
    batch = np.stack([train_side(p.read_bytes()) for p in files]).astype(np.float32)
    with torch.inference_mode():
        reference = torch.softmax(trained.model(torch.from_numpy(batch)), dim=1).numpy()
    served = np.stack([classifier.predict_proba(classifier.preprocess(p))[0] for p in files])
    assert np.abs(served - reference).max() < 1e-5
