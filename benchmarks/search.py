"""CPU benchmark: vector search over the segment store, exact flat scan vs IVF_HNSW_SQ index.

Everything goes through omnialign's own path: rows are written with ``SegmentStore.write``,
the index is built by ``SegmentStore.ensure_indexes`` (cosine IVF_HNSW_SQ with LanceDB's
defaults), queries run through ``engine.store.search.search``.

Dataset (seeded): ``--rows`` 256-d ``audio_emb`` vectors from a Gaussian mixture of 64
components (means N(0, I), per-component isotropic spread 0.6), which is clustered like real
embeddings; queries are ``--queries`` further draws from the same mixture (not stored rows).

Metrics: recall@10 against exact cosine top-10 computed in numpy (independent of LanceDB);
per-query latency of ``search()`` (median and p95 over the queries, one query at a time, after
one warm-up query); index build time (the ``ensure_indexes()`` call).

Usage:
    python benchmarks/search.py [--rows 50000] [--queries 100] [--out PATH.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.provenance import write_results  # noqa: E402
from engine.store.search import SearchQuery, search  # noqa: E402
from engine.store.table import SegmentRow, SegmentStore, StoreConfig  # noqa: E402

DIM = 256
K = 10
WRITE_BATCH = 10_000


def mixture(n: int, rng: np.random.Generator, means: np.ndarray) -> np.ndarray:
    comp = rng.integers(0, means.shape[0], n)
    return (means[comp] + 0.6 * rng.standard_normal((n, DIM))).astype(np.float32)


def exact_topk(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    dn = data / np.linalg.norm(data, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return np.argsort(-(qn @ dn.T), axis=1)[:, :k]


def run_queries(store: SegmentStore, queries: np.ndarray) -> tuple[list[list[int]], list[float]]:
    search(store, SearchQuery(vector=queries[0], vector_column="audio_emb", k=K))  # warm-up
    found, lat = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = search(store, SearchQuery(vector=q, vector_column="audio_emb", k=K))
        lat.append(time.perf_counter() - t0)
        found.append([h.segment_index for h in hits])
    return found, lat


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / K for f, t in zip(found, truth)]))


def summary(lat: list[float]) -> dict:
    ms = np.asarray(lat) * 1000
    return {"median_ms": round(float(np.median(ms)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/search.json"))
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    means = rng.standard_normal((64, DIM)).astype(np.float32)
    data = mixture(args.rows, rng, means)
    queries = mixture(args.queries, rng, means)
    truth = exact_topk(data, queries, K)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = StoreConfig(db_dir=tmp, audio_emb_dim=DIM, vector_index_min_rows=10_000)
        store = SegmentStore(cfg)
        t0 = time.perf_counter()
        for start in range(0, args.rows, WRITE_BATCH):
            rows = [SegmentRow(stream_id="bench", segment_index=i, t_start_us=i * 2_000_000,
                               t_end_us=(i + 1) * 2_000_000, audio_emb=data[i])
                    for i in range(start, min(args.rows, start + WRITE_BATCH))]
            store.write(rows)
        write_s = time.perf_counter() - t0

        flat_found, flat_lat = run_queries(store, queries)
        t0 = time.perf_counter()
        report = store.ensure_indexes()
        build_s = time.perf_counter() - t0
        assert "audio_emb" in report.created, report
        idx_found, idx_lat = run_queries(store, queries)

    result = {
        "benchmark": "vector search, segment store (LanceDB)",
        "rows": args.rows, "dim": DIM, "queries": args.queries, "k": K, "distance": "cosine",
        "write_s": round(write_s, 2),
        "flat": {"recall_at_10": recall(flat_found, truth), **summary(flat_lat)},
        "ivf_hnsw_sq": {"recall_at_10": recall(idx_found, truth), "build_s": round(build_s, 2),
                        **summary(idx_lat)},
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or
                    platform.machine()},
    }
    print(json.dumps(result, indent=2))
    write_results(args.out, result)


if __name__ == "__main__":
    main()
