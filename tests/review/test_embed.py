"""The fast embedding (BatchNorm folded, channels-last) gives the trained network's vectors."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from skyclass.dataset_zip import PreparedDataset
from skyclass.images import decode_image, to_model_input
from skyclass.review.embed import EMBED_BATCH, Pooled, embed, imagenet_backbone, inference_module


def test_fast_embedding_equals_the_network_for_full_and_short_batches(flipped_zip):
    ds = PreparedDataset(flipped_zip)
    paths = [e.path for e in ds.entries[: EMBED_BATCH + 3]]  # a full batch and a short one
    features = imagenet_backbone()
    vectors, failed = embed(ds, paths, features, ds.spec, quiet=True)
    assert failed == []
    batch = np.stack([to_model_input(decode_image(ds.read(p)), ds.spec) for p in paths])
    with torch.inference_mode():
        reference = Pooled(features).eval()(torch.from_numpy(batch)).numpy()
    assert vectors.shape == reference.shape == (len(paths), 1280)
    assert np.isfinite(vectors).all()
    assert np.abs(vectors - reference).max() < 1e-3 * np.abs(reference).max()
    # Really folded: no BatchNorm left to run, and the caller's backbone is untouched.
    assert not any(isinstance(m, nn.BatchNorm2d) for m in inference_module(features).modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in features.modules()) == 52
