"""CPU benchmark of exact DTW (engine.align.dtw) against dtaidistance and librosa, plus OLTW latency.

All DTW rows use the same inputs in the same process, on one thread (``NUMBA_NUM_THREADS=1``,
``OMP_NUM_THREADS=1`` are set before the libraries load), with numba compiled and warm.
Throughput is ``N * M / median wall time`` in cells/s. Peers that are not installed are
reported as skipped, never estimated.

Usage::

    python benchmarks/dtw.py [--sizes 1000 3000] [--reps 5] [--out benchmarks/results/dtw.json]
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.provenance import write_results  # noqa: E402
from engine.align.dtw import dtw, warm_up  # noqa: E402
from engine.align.oltw import OLTWConfig, OnlineDTW  # noqa: E402


def _median_s(fn: Callable[[], object], reps: int) -> float:
    fn()  # warm (allocator, caches, JIT)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _dtw_rows(n: int, dim: int, reps: int) -> list[dict]:
    rng = np.random.default_rng(n + dim)
    a = rng.normal(size=(n, dim)) if dim > 1 else rng.normal(size=n)
    b = rng.normal(size=(n, dim)) if dim > 1 else rng.normal(size=n)
    cells = n * n
    variants: list[tuple[str, bool, Callable[[], object] | None, str]] = []
    variants.append(("omnialign dtw (numba)", True, lambda: dtw(a, b), ""))
    variants.append(("omnialign dtw (numba)", False, lambda: dtw(a, b, with_path=False), ""))
    ref_dist = dtw(a, b, with_path=False).distance
    try:
        if dim == 1:
            from dtaidistance import dtw as dd

            variants.append(("dtaidistance warping_paths_fast (matrix)", True, lambda: dd.warping_paths_fast(a, b), ""))
            variants.append(("dtaidistance warping_path (C)", True, lambda: dd.warping_path(a, b, use_c=True), ""))
            variants.append(("dtaidistance distance_fast", False, lambda: dd.distance_fast(a, b), ""))
            check = dd.distance_fast(a, b)
        else:
            from dtaidistance import dtw_ndim as dn

            variants.append(("dtaidistance ndim warping_paths_fast (matrix)", True, lambda: dn.warping_paths_fast(a, b), ""))
            variants.append(("dtaidistance ndim distance_fast", False, lambda: dn.distance_fast(a, b), ""))
            check = dn.distance_fast(a, b)
        assert abs(check - ref_dist) <= 1e-9 * ref_dist, (check, ref_dist)
    except ImportError as exc:
        variants.append(("dtaidistance", True, None, f"skipped: {exc}"))
    try:
        import librosa

        X = np.atleast_2d(a.T) if dim > 1 else a[None, :]
        Y = np.atleast_2d(b.T) if dim > 1 else b[None, :]
        variants.append(("librosa.sequence.dtw (sqeuclidean)", True, lambda: librosa.sequence.dtw(X, Y, metric="sqeuclidean"), ""))
        D, _ = librosa.sequence.dtw(X, Y, metric="sqeuclidean")
        assert abs(np.sqrt(D[-1, -1]) - ref_dist) <= 1e-9 * ref_dist
    except ImportError as exc:
        variants.append(("librosa.sequence.dtw", True, None, f"skipped: {exc}"))
    rows = []
    for name, with_path, fn, note in variants:
        row = {"kind": "dtw", "impl": name, "with_path": with_path, "n": n, "m": n, "dim": dim, "cells": cells}
        if fn is None:
            row["note"] = note
        else:
            t = _median_s(fn, reps)
            row.update(median_s=t, mcells_per_s=cells / t / 1e6)
        rows.append(row)
    return rows


def _oltw_rows(window: int, dim: int, frames: int) -> list[dict]:
    """Latency of one update = pushing one frame of each stream (the head advances ~one step)."""
    rng = np.random.default_rng(window)
    a = rng.normal(size=(frames, dim))
    b = a + 0.1 * rng.normal(size=a.shape)
    o = OnlineDTW(OLTWConfig(window_frames=window))
    lat = []
    for k in range(frames):
        t0 = time.perf_counter()
        o.push_a(a[k : k + 1])
        o.push_b(b[k : k + 1])
        lat.append(time.perf_counter() - t0)
    lat_ms = np.asarray(lat[window:]) * 1e3  # after the head has a full window behind it
    return [
        {
            "kind": "oltw",
            "impl": "omnialign OnlineDTW",
            "window_frames": window,
            "dim": dim,
            "frames": frames,
            "p50_ms": float(np.percentile(lat_ms, 50)),
            "p99_ms": float(np.percentile(lat_ms, 99)),
            "max_ms": float(lat_ms.max()),
        }
    ]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000])
    ap.add_argument("--dims", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--oltw-frames", type=int, default=5000)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "dtw.json"))
    args = ap.parse_args(argv)

    warm_up()
    OnlineDTW(OLTWConfig(window_frames=4)).step(np.zeros((8, 2)), np.zeros((8, 2)))
    rows: list[dict] = []
    for dim in args.dims:
        for n in args.sizes:
            rows += _dtw_rows(n, dim, args.reps)
    for window in (64, 256):
        rows += _oltw_rows(window, 16, args.oltw_frames)

    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "numba_num_threads": os.environ.get("NUMBA_NUM_THREADS"),
        "reps": args.reps,
        "timing": "median wall time after one warm-up call",
    }
    out = write_results(args.out, {"meta": meta, "rows": rows})

    print(f"{'impl':48s} {'path':>5s} {'dim':>4s} {'N=M':>6s} {'median s':>10s} {'Mcells/s':>10s}")
    for r in rows:
        if r["kind"] != "dtw":
            continue
        if "median_s" in r:
            print(f"{r['impl']:48s} {str(r['with_path']):>5s} {r['dim']:4d} {r['n']:6d} {r['median_s']:10.4f} {r['mcells_per_s']:10.1f}")
        else:
            print(f"{r['impl']:48s} {'':>5s} {r['dim']:4d} {r['n']:6d} {r['note']}")
    for r in rows:
        if r["kind"] == "oltw":
            print(
                f"OLTW window={r['window_frames']} dim={r['dim']}: per-frame update p50 {r['p50_ms']:.4f} ms, "
                f"p99 {r['p99_ms']:.4f} ms, max {r['max_ms']:.3f} ms ({r['frames']} frames)"
            )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
