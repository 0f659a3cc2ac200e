"""Synthetic pairs with a known answer for the training tests: features are a fixed random
linear map of the anchors plus noise, so a head can learn the inverse and a test can fail."""

from __future__ import annotations

import numpy as np

from engine.train.pairs import PairSet


def synthetic_pairs(n: int = 240, in_dim: int = 64, noise: float = 0.3, eval_share: float = 0.25,
                    seed: int = 0) -> PairSet:
    rng = np.random.default_rng(seed)
    # Both sides are views of a 16-d latent (as texts and pictures of the same things are):
    # the anchors a random embedding of it, the features another one, plus noise.
    latent = rng.normal(size=(n, 16)).astype(np.float32)
    anchors = latent @ rng.normal(size=(16, 384)).astype(np.float32)
    anchors /= np.linalg.norm(anchors, axis=1, keepdims=True)
    feats = latent @ rng.normal(size=(16, in_dim)).astype(np.float32) / 4.0
    feats += noise * rng.normal(size=(n, in_dim)).astype(np.float32)
    n_eval = int(n * eval_share)
    return PairSet(modality="image", encoder="synthetic@0", ids=[f"p{i:04d}" for i in range(n)],
                   texts=[f"text {i}" for i in range(n)], splits=["eval"] * n_eval + ["train"] * (n - n_eval),
                   features=feats.astype(np.float32), anchors=anchors)
