"""Peers of the retrieval benchmark (issue #14), all from the same frozen encoders.

* **ConSE** (zero-shot, no training): an image's text-space embedding is
  ``Σ_{top-10 ImageNet classes} p(class) · MiniLM(class name)`` from EfficientNet-Lite0's own
  classifier over the same pooled features the adapter sees.
* **Bridge over today's columns** (no training, uses the training pairs): a query is matched
  in its own modality's column (``text_emb``, ``image_emb``, ``audio_enc_emb``) to its 10
  nearest training pairs; candidates are scored by their own column's mean cosine to those
  pairs' other side. It is what the store could do before any adapter existed.
* **Random**: the analytic chance of each metric, and one seeded random ranking.
"""

from __future__ import annotations

import numpy as np

from engine.train.evaluate import cosine_scores


def conse_embeddings(features: np.ndarray, class_embeddings: np.ndarray, classifier, top: int = 10) -> np.ndarray:
    """ConSE text-space embeddings of images from their pooled EfficientNet features.

    Args:
        features: ``[N, 1280]`` pooled features.
        class_embeddings: ``[1000, 384]`` MiniLM embeddings of the ImageNet class names.
        classifier: The network's final linear layer (``net._fc``).
        top: Classes mixed per image.
    """
    import torch

    with torch.no_grad():
        logits = classifier(torch.from_numpy(np.asarray(features, np.float32))).double().numpy()
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    idx = np.argsort(-p, axis=1)[:, :top]
    out = np.stack([(p[i, idx[i], None] * class_embeddings[idx[i]]).sum(0) for i in range(len(p))])
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def bridge_scores(query_side: np.ndarray, train_query_side: np.ndarray, train_target_side: np.ndarray,
                  candidates: np.ndarray, k: int = 10) -> np.ndarray:
    """``[Q, C]`` scores of the bridge peer (see the module doc)."""
    near = np.argsort(-cosine_scores(query_side, train_query_side), axis=1)[:, :k]
    sim = cosine_scores(train_target_side, candidates)  # [train, C]
    return sim[near].mean(axis=1)


def random_scores(n_queries: int, n_candidates: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n_queries, n_candidates))
