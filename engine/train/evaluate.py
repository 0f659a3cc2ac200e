"""Retrieval metrics: recall at k, median rank, chance level, a bootstrap interval."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from engine.errors import InvalidInputError


def first_relevant_ranks(scores: np.ndarray, relevant: Sequence[set[int]]) -> np.ndarray:
    """1-based rank of each query's best-ranked relevant candidate.

    Args:
        scores: ``[Q, C]`` similarity of every query to every candidate (higher is better).
        relevant: Per query, the candidate indices that count as right (non-empty).

    Raises:
        InvalidInputError: Shapes disagree or a query has no relevant candidate.
    """
    s = np.asarray(scores, np.float64)
    if s.ndim != 2 or len(relevant) != s.shape[0]:
        raise InvalidInputError("scores", f"need [Q, C] with Q = {len(relevant)}, got {s.shape}")
    ranks = np.empty(len(relevant), np.int64)
    for q, rel in enumerate(relevant):
        if not rel:
            raise InvalidInputError("relevant", f"query {q} has no relevant candidate")
        best = max(s[q, i] for i in rel)
        # Ties count against the query: a constant scorer must not look good.
        ranks[q] = int((s[q] > best).sum() + (s[q] == best).sum() - (s[q, list(rel)] == best).sum()) + 1
    return ranks


def recall_metrics(ranks: np.ndarray, n_candidates: int, relevant: Sequence[set[int]],
                   ks: Sequence[int] = (1, 5, 10), n_boot: int = 1000, seed: int = 0) -> dict:
    """R@k, median rank, their chance levels and a 95 % bootstrap interval of R@1.

    Chance of R@k for one query with ``r`` relevant of ``C`` candidates is
    ``1 - C(C-r, k) / C(C, k)`` (a random ranking); the reported chance is its mean.
    """
    r = np.asarray(ranks)
    out = {"queries": int(len(r)), "candidates": int(n_candidates)}
    for k in ks:
        out[f"R@{k}"] = round(float((r <= k).mean()), 4)
        out[f"chance_R@{k}"] = round(float(np.mean([_chance(n_candidates, len(rel), k) for rel in relevant])), 4)
    out["median_rank"] = float(np.median(r))
    rng = np.random.default_rng(seed)
    boots = [(r[rng.integers(0, len(r), len(r))] <= 1).mean() for _ in range(n_boot)]
    out["R@1_ci95"] = [round(float(np.percentile(boots, 2.5)), 4), round(float(np.percentile(boots, 97.5)), 4)]
    return out


def _chance(c: int, rel: int, k: int) -> float:
    if k >= c:
        return 1.0
    p_miss = 1.0
    for i in range(k):  # C(c-rel, k) / C(c, k) as a product
        p_miss *= max(c - rel - i, 0) / (c - i)
    return 1.0 - p_miss


def cosine_scores(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """``[Q, C]`` cosine similarities."""
    q = np.asarray(queries, np.float32)
    c = np.asarray(candidates, np.float32)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    return q @ c.T
