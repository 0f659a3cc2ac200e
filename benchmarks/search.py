"""CPU benchmark: vector search over the segment store at scale, against HNSW peers in the same run.

Every configuration runs in its own process (its peak RSS is its own), on the same vectors:

* ``ours``: omnialign's own path. Rows are written with ``SegmentStore.write`` (1,000 streams,
  rows in time order like live ingest, in writes of 20,000: 50 files at 1M rows), the indexes are built by
  ``SegmentStore.ensure_indexes`` (the policy of ``engine/store/index_policy.py``: the written
  files compacted, cosine IVF_SQ, ``sqrt(rows)`` partitions, plus the stream/time filter
  indexes; build time includes the compaction), queries go through ``engine.store.search.search``.
  Before the index: exact flat scan. After: the policy's plan, and a sweep of probes x refine
  (the same Lance scan as ``search()``, with each plan) for the recall/latency curve. Then filters
  (one stream of 1,000; a 1-minute window; both), then 10,000 appended rows: searched at once,
  folded in by ``ensure_indexes``, searched again.
* ``faiss_hnsw``: faiss ``IndexHNSWFlat`` (M 32, its default efConstruction 40), inner product
  on L2-normalised vectors (= cosine), efSearch swept.
* ``hnswlib``: hnswlib ``Index('cosine')`` with its defaults (M 16, ef_construction 200), ef
  swept. Skipped (and said so) if hnswlib is not installed.

Dataset (seeded): vectors from a Gaussian mixture of 64 components (means N(0, I), isotropic
spread 0.6 per component), clustered like real embeddings; queries are further draws from the
same mixture (not stored rows). Appended rows come from 8 components not in the table, and
their queries from those components, so their true neighbours are the new rows.

Metrics: recall@10 against exact cosine top-10 computed in numpy (independent of LanceDB and
the peers); per-query latency, one query at a time, on a second pass over the queries (the
first warms LanceDB's lazily loaded index partitions; p50, p95); build
time; peak RSS of the process and its growth over the build. All on this machine's cores;
LanceDB and faiss use both, hnswlib is given both.

Usage:
    python benchmarks/search.py [--rows 1000000] [--dims 256,384] [--queries 100]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.provenance import write_results  # noqa: E402

K = 10
STREAMS = 1000
SEG_US = 2_000_000
APPEND_ROWS = 10_000
APPEND_QUERIES = 50
FILTER_QUERIES = 50
WINDOW_US = 60_000_000
FLAT_QUERIES = 20
# Recall/latency sweeps: LanceDB (probes x refine factor; refine 1 = no refine) and the HNSW ef.
NPROBES = (4, 8, 10, 20, 40)
REFINES = (1, 2, 4)
EFS = (16, 32, 64, 128, 256, 512)
#: Goals of the issue: recall@10 >= 0.95 at <= 10 ms p50; build <= 3x the peer's.
GOAL_RECALL, GOAL_P50_MS, GOAL_BUILD_RATIO = 0.95, 10.0, 3.0


# ----------------------------------------------------------------------------- data


def _mixture(rng: np.random.Generator, means: np.ndarray, n: int) -> np.ndarray:
    out = np.empty((n, means.shape[1]), np.float32)
    for s in range(0, n, 100_000):  # in blocks: the float64 draws of 1M x 384 would take 3 GB
        m = min(n, s + 100_000) - s
        comp = rng.integers(0, means.shape[0], m)
        out[s:s + m] = means[comp] + 0.6 * rng.standard_normal((m, means.shape[1]), dtype=np.float32)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_topk(data: np.ndarray, queries: np.ndarray, k: int = K, mask: np.ndarray | None = None) -> np.ndarray:
    """Row numbers of the exact cosine top-k of each query (``mask``: only those rows)."""
    out = []
    idx = np.arange(len(data)) if mask is None else np.nonzero(mask)[0]
    for s in range(0, len(queries), 20):
        sims = _unit(queries[s:s + 20]) @ _unit(data[idx]).T if mask is not None else None
        if sims is None:
            sims = np.concatenate([_unit(queries[s:s + 20]) @ _unit(data[b:b + 200_000]).T
                                   for b in range(0, len(data), 200_000)], axis=1)
        top = np.argsort(-sims, axis=1)[:, :k]
        out.append(idx[top])
    return np.concatenate(out)


def make_data(rows: int, dim: int, queries: int, out: Path) -> None:
    """Writes the vectors, queries and exact answers of one dimension to ``out``."""
    rng = np.random.default_rng(dim)
    means = rng.standard_normal((72, dim)).astype(np.float32)
    data = _mixture(rng, means[:64], rows)
    np.save(out / "data.npy", data)
    q = _mixture(rng, means[:64], queries)
    np.save(out / "queries.npy", q)
    np.save(out / "truth.npy", exact_topk(data, q))
    new = _mixture(rng, means[64:], APPEND_ROWS)
    np.save(out / "append.npy", new)
    qa = _mixture(rng, means[64:], APPEND_QUERIES)
    np.save(out / "append_queries.npy", qa)
    np.save(out / "append_truth.npy", exact_topk(np.concatenate([data, new]), qa))


def _read(path: Path, mmap: bool = False) -> np.ndarray:
    """A saved array (memory-mapped with ``mmap``: a child need not hold 1.5 GB it only streams)."""
    arr = np.lib.format.open_memmap(path, mode="r")
    return arr if mmap else np.array(arr)


def stream_of(i: np.ndarray | int):
    return i % STREAMS


def segment_of(i: np.ndarray | int):
    return i // STREAMS


# ----------------------------------------------------------------------------- measuring


def rss_mb() -> float:
    """Current resident set size (MB), from /proc."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def recall(found: list, truth: np.ndarray) -> float:
    return float(np.mean([len(set(map(int, f)) & set(t.tolist())) / min(K, len(t)) for f, t in zip(found, truth)]))


def timed(fn, queries: np.ndarray) -> tuple[list, dict]:
    """Answers and latency of ``fn`` over ``queries``, timed on a second pass: the first loads
    what a serving process holds warm (LanceDB's index partitions load lazily; the in-memory
    peers have nothing to load), as ann-benchmarks reports repeated runs."""
    for q in queries:
        fn(q)
    found, lat = [], []
    for q in queries:
        t0 = time.perf_counter()
        found.append(fn(q))
        lat.append(time.perf_counter() - t0)
    ms = np.asarray(lat) * 1000
    return found, {"p50_ms": round(float(np.median(ms)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def point(found: list, truth: np.ndarray, lat: dict, **params) -> dict:
    return {**params, "recall_at_10": round(recall(found, truth), 4), **lat}


# ----------------------------------------------------------------------------- ours


def run_ours(d: Path, dim: int) -> dict:
    from engine.store.index_policy import nearest_query
    from engine.store.index_quality import measure_recall
    from engine.store.indexes import index_records
    from engine.store.search import SearchQuery, search
    from engine.store.table import SegmentRow, SegmentStore, StoreConfig

    column = "audio_emb" if dim != 384 else "text_emb"
    data = _read(d / "data.npy", mmap=True)
    queries, truth = _read(d / "queries.npy"), _read(d / "truth.npy")
    n = len(data)
    res: dict = {"config": "ours", "column": column}
    with tempfile.TemporaryDirectory(dir=d) as tmp:
        cfg = StoreConfig(db_dir=tmp, **{f"{column}_dim": dim})
        store = SegmentStore(cfg)

        def write(vectors: np.ndarray, first: int) -> None:
            for s in range(0, len(vectors), 20_000):
                block = np.asarray(vectors[s:s + 20_000])
                store.write([SegmentRow(stream_id=f"cam{stream_of(i):04d}", segment_index=int(segment_of(i)),
                                        t_start_us=int(segment_of(i)) * SEG_US,
                                        t_end_us=(int(segment_of(i)) + 1) * SEG_US, **{column: v})
                             for i, v in zip(range(first + s, first + s + len(block)), block)])

        def row_no(h) -> int:
            return h.segment_index * STREAMS + int(h.stream_id[3:])

        def ours(q, **filters):
            return [row_no(h) for h in search(store, SearchQuery(vector=q, vector_column=column, k=K, **filters))]

        t0 = time.perf_counter()
        write(data, 0)
        res["write_s"] = round(time.perf_counter() - t0, 1)
        found, lat = timed(ours, queries[:FLAT_QUERIES])
        res["flat"] = point(found, truth[:FLAT_QUERIES], lat, queries=FLAT_QUERIES)
        res["files_before_build"] = len(store.dataset().get_fragments())
        rss0, t0 = rss_mb(), time.perf_counter()
        report = store.ensure_indexes()  # compaction of the written files, then the indexes
        res["build_s"] = round(time.perf_counter() - t0, 1)
        res["files_after_build"] = len(store.dataset().get_fragments())
        res["build_rss_growth_mb"] = round(rss_mb() - rss0, 0)
        res["created"] = list(report.created)
        res["plan"] = index_records(store)[column]
        res["index_bytes"] = next(int(c.size_bytes or 0) for c in store.table.list_indices() if c.columns[0] == column)
        found, lat = timed(ours, queries)
        res["chosen"] = point(found, truth, lat, nprobes=res["plan"]["nprobes"],
                              refine_factor=res["plan"]["refine_factor"])
        res["sweep"] = []
        for nprobes in NPROBES:
            for refine in REFINES:
                plan = replace(store.plans.get(store, column), nprobes=nprobes, refine_factor=refine)

                def lance(q, plan=plan):  # search()'s own scan, with this plan
                    near = nearest_query(plan, column, q, K)
                    if plan.refine_factor == 1:
                        near.pop("refine_factor")
                    t = store.dataset().to_table(columns=["stream_id", "segment_index"], nearest=near)
                    return (t["segment_index"].to_numpy() * STREAMS
                            + np.array([int(s[3:]) for s in t["stream_id"].to_pylist()], dtype=np.int64))
                found, lat = timed(lance, queries)
                res["sweep"].append(point(found, truth, lat, nprobes=nprobes, refine_factor=refine))
        res["filters"] = run_filters(data, queries, ours)
        # Appends: searchable at once (exact scan of the unindexed tail), then folded in.
        new, qa, ta = _read(d / "append.npy"), _read(d / "append_queries.npy"), _read(d / "append_truth.npy")
        t0 = time.perf_counter()
        write(new, n)
        app = {"rows": len(new), "write_s": round(time.perf_counter() - t0, 2),
               "unindexed_after_write": store.unindexed_rows()[column]}
        found, lat = timed(ours, qa)
        app["before_fold"] = point(found, ta, lat)
        t0 = time.perf_counter()
        rep = store.ensure_indexes()
        app["fold_s"] = round(time.perf_counter() - t0, 2)
        app["folded"] = rep.optimized
        app["rebuilt_after_check"] = list(rep.rebuilt)
        app["check_recall"] = rep.recall
        app["unindexed_after_fold"] = store.unindexed_rows()[column]
        found, lat = timed(ours, qa)
        app["after_fold"] = point(found, ta, lat)
        found, lat = timed(ours, queries)
        app["old_queries_after_fold"] = point(found, truth, lat)
        t0 = time.perf_counter()
        app["sampled_recall_check"] = round(measure_recall(store, column, store.plans.get(store, column), 16), 4)
        app["sampled_recall_check_s"] = round(time.perf_counter() - t0, 1)
        res["append"] = app
    res["peak_rss_mb"] = round(peak_rss_mb(), 0)
    return res


def run_filters(data: np.ndarray, queries: np.ndarray, ours) -> dict:
    """Filtered queries: each returns k hits whenever k rows match; recall against exact search
    over the matching rows."""
    n = len(data)
    rows = np.arange(n)
    segments = int(segment_of(n - 1)) + 1
    out = {}
    kinds = {
        "one_stream": lambda i: {"stream_id": f"cam{(i * 7) % STREAMS:04d}"},
        "one_minute": lambda i: {"from_us": ((i * 13) % max(1, segments - 30)) * SEG_US,
                                 "to_us": ((i * 13) % max(1, segments - 30)) * SEG_US + WINDOW_US},
        "stream_and_minute": lambda i: {"stream_id": f"cam{(i * 7) % STREAMS:04d}",
                                        "from_us": ((i * 13) % max(1, segments - 30)) * SEG_US,
                                        "to_us": ((i * 13) % max(1, segments - 30)) * SEG_US + WINDOW_US},
    }
    for name, filt in kinds.items():
        found, truth, short, matches = [], [], 0, []
        lat = []
        for i, q in enumerate(queries[:FILTER_QUERIES]):
            f = filt(i)
            mask = np.ones(n, bool)
            if "stream_id" in f:
                mask &= stream_of(rows) == int(f["stream_id"][3:])
            if "from_us" in f:
                seg = segment_of(rows)
                mask &= ((seg + 1) * SEG_US > f["from_us"]) & (seg * SEG_US < f["to_us"])
            t = exact_topk(np.asarray(data), q[None], mask=mask)[0]
            t0 = time.perf_counter()
            got = ours(q, **f)
            lat.append(time.perf_counter() - t0)
            found.append(got)
            truth.append(t)
            matches.append(int(mask.sum()))
            short += len(got) < min(K, int(mask.sum()))
        ms = np.asarray(lat[1:] or lat) * 1000
        out[name] = {"queries": len(found), "matching_rows_median": int(np.median(matches)),
                     "short_results": short, "recall_at_10": round(recall(found, truth), 4),
                     "p50_ms": round(float(np.median(ms)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}
    return out


# ----------------------------------------------------------------------------- peers


def run_faiss(d: Path, dim: int) -> dict:
    import faiss

    data = np.ascontiguousarray(_unit(_read(d / "data.npy")))
    queries, truth = _unit(_read(d / "queries.npy")), _read(d / "truth.npy")
    index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    rss0, t0 = rss_mb(), time.perf_counter()
    index.add(data)
    res = {"config": "faiss_hnsw", "params": {"M": 32, "efConstruction": index.hnsw.efConstruction},
           "threads": faiss.omp_get_max_threads(), "build_s": round(time.perf_counter() - t0, 1),
           "build_rss_growth_mb": round(rss_mb() - rss0, 0), "sweep": []}
    for ef in EFS:
        index.hnsw.efSearch = ef
        found, lat = timed(lambda q: index.search(q[None], K)[1][0], queries)
        res["sweep"].append(point(found, truth, lat, ef=ef))
    res["peak_rss_mb"] = round(peak_rss_mb(), 0)
    return res


def run_hnswlib(d: Path, dim: int) -> dict:
    try:
        import hnswlib
    except ImportError as exc:
        return {"config": "hnswlib", "skipped": f"not installed ({exc})"}
    data = _read(d / "data.npy")
    queries, truth = _read(d / "queries.npy"), _read(d / "truth.npy")
    index = hnswlib.Index(space="cosine", dim=dim)
    rss0, t0 = rss_mb(), time.perf_counter()
    index.init_index(max_elements=len(data))  # its defaults: M 16, ef_construction 200
    index.add_items(data, num_threads=os.cpu_count() or 1)
    res = {"config": "hnswlib", "params": {"M": index.M, "ef_construction": index.ef_construction},
           "build_s": round(time.perf_counter() - t0, 1), "build_rss_growth_mb": round(rss_mb() - rss0, 0),
           "sweep": []}
    index.set_num_threads(1)  # one query at a time, as the others are measured
    for ef in EFS:
        index.set_ef(ef)
        found, lat = timed(lambda q: index.knn_query(q[None], k=K)[0][0], queries)
        res["sweep"].append(point(found, truth, lat, ef=ef))
    res["peak_rss_mb"] = round(peak_rss_mb(), 0)
    return res


CONFIGS = {"ours": run_ours, "faiss_hnsw": run_faiss, "hnswlib": run_hnswlib}


# ----------------------------------------------------------------------------- summary


def best_at_goal(sweep: list[dict]) -> dict | None:
    """The fastest sweep point with recall@10 >= the goal (None if none reaches it)."""
    ok = [p for p in sweep if p["recall_at_10"] >= GOAL_RECALL]
    return min(ok, key=lambda p: p["p50_ms"]) if ok else None


def summarize(dim_results: dict) -> dict:
    ours, peer = dim_results["ours"], dim_results["faiss_hnsw"]
    peer_best = best_at_goal(peer["sweep"])
    return {
        "ours_recall_at_10": ours["chosen"]["recall_at_10"], "ours_p50_ms": ours["chosen"]["p50_ms"],
        "ours_p95_ms": ours["chosen"]["p95_ms"], "ours_build_s": ours["build_s"],
        "faiss_build_s": peer["build_s"], "build_ratio_vs_faiss": round(ours["build_s"] / peer["build_s"], 3),
        "faiss_at_goal": peer_best,
        "goal_met": bool(ours["chosen"]["recall_at_10"] >= GOAL_RECALL and ours["chosen"]["p50_ms"] <= GOAL_P50_MS
                         and ours["build_s"] <= GOAL_BUILD_RATIO * peer["build_s"]),
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = list(result["dims"])
    fig, axes = plt.subplots(1, len(dims), figsize=(6 * len(dims), 4.5), squeeze=False)
    for ax, dim in zip(axes[0], dims):
        r = result["dims"][dim]
        for refine in REFINES:
            pts = [p for p in r["ours"]["sweep"] if p["refine_factor"] == refine]
            ax.plot([p["p50_ms"] for p in pts], [p["recall_at_10"] for p in pts], "o-",
                    label=f"ours IVF_SQ, probes {NPROBES[0]}–{NPROBES[-1]}, refine {refine}x")
        ch = r["ours"]["chosen"]
        ax.plot([ch["p50_ms"]], [ch["recall_at_10"]], "k*", ms=14, label="ours, policy's plan (search())")
        for name, style in (("faiss_hnsw", "s--"), ("hnswlib", "^--")):
            peer = r.get(name) or {}
            if peer.get("sweep"):
                ax.plot([p["p50_ms"] for p in peer["sweep"]], [p["recall_at_10"] for p in peer["sweep"]], style,
                        label=f"{name}, ef {EFS[0]}–{EFS[-1]}")
        ax.axhline(GOAL_RECALL, color="grey", lw=0.8)
        ax.axvline(GOAL_P50_MS, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("p50 latency per query (ms, log)")
        ax.set_ylabel("recall@10")
        ax.set_title(f"{result['rows']:,} x {dim}-d, cosine")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dims", default="256,384")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--configs", default="ours,faiss_hnsw,hnswlib")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "search.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--dim", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # one configuration in this process: its JSON on stdout's last line
        print(json.dumps(CONFIGS[args.child](args.data, args.dim)))
        return
    t_start = time.perf_counter()
    result = {"benchmark": "vector search at scale, segment store (LanceDB) vs HNSW peers",
              "rows": args.rows, "queries": args.queries, "k": K, "distance": "cosine",
              "dataset": "64-component Gaussian mixture (means N(0,I), spread 0.6), seeded per dim; appends from "
                         "8 new components",
              "goals": {"recall_at_10": GOAL_RECALL, "p50_ms": GOAL_P50_MS, "build_vs_faiss": GOAL_BUILD_RATIO},
              "dims": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for dim in [int(x) for x in args.dims.split(",")]:
            d = Path(tmp) / f"d{dim}"
            d.mkdir()
            t0 = time.perf_counter()
            make_data(args.rows, dim, args.queries, d)
            print(f"[{dim}-d] data + exact answers in {time.perf_counter() - t0:.0f} s", flush=True)
            per = {}
            for name in args.configs.split(","):
                t0 = time.perf_counter()
                out = subprocess.run([sys.executable, __file__, "--child", name, "--data", str(d), "--dim", str(dim)],
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    per[name] = {"config": name, "error": out.stderr.strip().splitlines()[-1:]}
                else:
                    per[name] = json.loads(out.stdout.strip().splitlines()[-1])
                per[name]["process_s"] = round(time.perf_counter() - t0, 1)
                print(f"[{dim}-d] {name}: {json.dumps({k: v for k, v in per[name].items() if k != 'sweep'})}",
                      flush=True)
            if "ours" in per and "faiss_hnsw" in per and "error" not in per["ours"] and "error" not in per["faiss_hnsw"]:
                per["summary"] = summarize(per)
            result["dims"][str(dim)] = per
    result["run_s"] = round(time.perf_counter() - t_start, 1)
    if args.rows >= 1_000_000:
        write_results(args.out, result)
        plot(result, args.out.with_suffix(".png"))
        print(f"wrote {args.out}")
    print(json.dumps({k: v.get("summary") for k, v in result["dims"].items()}, indent=1))


if __name__ == "__main__":
    main()
