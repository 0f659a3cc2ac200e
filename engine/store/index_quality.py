"""How good a vector index is, measured on the table's own vectors: sampled queries, their
exact neighbours, the index's recall with a plan, and the probe count that reaches a target.

Exact answers come from LanceDB's flat scan over the same column (``bypass_vector_index``), so
the measurement needs nothing but the table; it costs one full scan per sampled query (~0.45 s
at 1M x 256-d), which is why :mod:`engine.store.indexes` runs it only at build time, after a
fold into the index, and as the index grows by a quarter.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from engine.store.index_policy import IndexPolicy, VectorIndexPlan, nearest_query, probe_ladder
from engine.store.schema import DISTANCE


#: Cosine-distance slack within which a returned row counts as one of the exact top k: stored
#: embeddings repeat (silent audio, black frames), and among rows at the same distance the index
#: and the exact scan may keep different ones, which are all equally right.
TIE_EPS = 1e-5


def sample_queries(table: Any, column: str, n: int, seed: int = 0, newest_from: int | None = None) -> np.ndarray:
    """``n`` stored vectors of ``column``: half drawn from all its non-null rows, half from those
    from position ``newest_from`` on among them (rows are kept in append order; default: the
    newest tenth), so what was appended since the last check is measured. Positions count
    non-null rows only, like the index's row counts; all-zero vectors are skipped."""
    ds = table.to_lance()
    ids = ds.to_table(columns=[], filter=f"{column} IS NOT NULL", with_row_id=True)["_rowid"].to_numpy()
    total = len(ids)
    if total == 0:
        return np.zeros((0, 0), np.float32)
    rng = np.random.default_rng(seed)
    start = int(total * 0.9) if newest_from is None else min(max(0, newest_from), total - 1)
    newest = rng.integers(start, total, n - n // 2)
    picks = np.unique(np.concatenate([rng.integers(0, total, n // 2), newest]))
    vecs = ds._take_rows(ids[picks].tolist(), columns=[column])[column].to_pylist()
    return np.array([v for v in vecs if v is not None and any(v)], dtype=np.float32)


@dataclass(frozen=True)
class ExactAnswer:
    """One sampled query's exact top k.

    Attributes:
        row_ids: Row ids of the exact top k.
        kth_distance: Cosine distance of the k-th of them (rows as near count as hits too).
    """

    row_ids: frozenset
    kth_distance: float


def exact_neighbours(table: Any, column: str, queries: np.ndarray, k: int = 10) -> list[ExactAnswer]:
    """Each query's exact top-k by cosine distance (flat scan of non-null rows)."""
    out = []
    for q in queries:
        res = (table.search(q, vector_column_name=column).distance_type(DISTANCE)
               .where(f"{column} IS NOT NULL", prefilter=True).bypass_vector_index()
               .with_row_id(True).select(["_distance"]).limit(k).to_arrow())
        dist = res["_distance"].to_pylist()
        out.append(ExactAnswer(frozenset(res["_rowid"].to_pylist()), float(max(dist)) if dist else 0.0))
    return out


def _cosine_distance(vectors: np.ndarray, q: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(q)
    return 1.0 - (vectors @ q) / np.maximum(norms, 1e-30)


def recall_with(table: Any, column: str, plan: VectorIndexPlan, queries: np.ndarray, exact: list[ExactAnswer],
                k: int = 10) -> float:
    """Mean share of the exact top-k that the index returns when searched with ``plan``, the way
    :mod:`engine.store.search` searches it (1.0 when there is nothing to query). A returned row
    counts when it is one of the exact top k or as near as the k-th of them (ties)."""
    found = []
    ds = table.to_lance()  # one handle for all queries: its index cache stays warm
    for q, truth in zip(queries, exact):
        res = ds.to_table(columns=[column], nearest=nearest_query(plan, column, q, k), with_row_id=True)
        ids = res["_rowid"].to_pylist()
        near = _cosine_distance(np.asarray(res[column].to_pylist(), dtype=np.float64).reshape(len(ids), -1),
                                np.asarray(q, dtype=np.float64)) <= truth.kth_distance + TIE_EPS
        hits = sum(1 for i, ok in zip(ids, near) if i in truth.row_ids or ok)
        found.append(min(hits, len(truth.row_ids)) / max(1, len(truth.row_ids)))
    return float(np.mean(found)) if found else 1.0


def measure_recall(store: Any, column: str, plan: VectorIndexPlan, sample: int, k: int = 10,
                   seed: int = 0) -> float:
    """Recall@k of ``column``'s index searched with ``plan``, on ``sample`` stored vectors."""
    queries = sample_queries(store.table, column, sample, seed)
    return recall_with(store.table, column, plan, queries, exact_neighbours(store.table, column, queries, k), k)


def tune_nprobes(store: Any, column: str, plan: VectorIndexPlan, policy: IndexPolicy, seed: int = 0,
                 sample: int | None = None, newest_from: int | None = None,
                 max_nprobes: int | None = None) -> tuple[VectorIndexPlan, float]:
    """The cheapest probe count of :func:`~engine.store.index_policy.probe_ladder` (at most
    ``max_nprobes``) whose sampled recall reaches ``policy.target_recall`` (the best one if none
    does), and that recall.

    The sample (``sample`` vectors, default ``policy.quality_sample``; see
    :func:`sample_queries` for ``newest_from``) and its exact neighbours are computed once and
    reused for every rung.
    """
    queries = sample_queries(store.table, column, sample or policy.quality_sample, seed, newest_from)
    exact = exact_neighbours(store.table, column, queries)
    best = (plan, -1.0)
    ladder = [p for p in probe_ladder(plan, policy) if max_nprobes is None or p <= max_nprobes]
    for nprobes in ladder or [plan.nprobes]:
        candidate = replace(plan, nprobes=nprobes)
        r = recall_with(store.table, column, candidate, queries, exact)
        if r > best[1]:
            best = (candidate, r)
        if r >= policy.target_recall:
            break
    return best
