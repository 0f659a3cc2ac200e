"""GPU check of batched DTW: plain torch anti-diagonal loop vs the fused Triton kernel.

Workload: 512 pairs, each two 1-D float32 series of 512 frames (512 x 512 cells per pair,
134 M cells in all), full band, squared-Euclidean cost computed from the series inside the
kernel (no [B, N, M] cost tensor). One extra row runs the kernel on 8-dim frames.

Correctness: every variant's distances are compared with exact float64 numba DTW on the CPU for
a subset of pairs (``CHECK_PAIRS``), fp32 relative tolerance ``RTOL``, and (D=1) with the torch
loop for all pairs. Timing: CUDA events, median of ``reps`` runs after warm-up (the first call,
which includes Triton compilation, is reported separately as ``first_call_s``). Each variant is
wrapped so one failure prints an error row and the others still run; the table prints last.

Only torch, triton, numpy and engine modules are imported (no ray/lancedb/av).

Usage (from the repo root)::

    python benchmarks/gpu_dtw.py
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.align.dtw import DTWConfig, dtw_distance  # noqa: E402
from engine.align.kernels.dtw_torch import batched_dtw  # noqa: E402

PAIRS, N, M = 512, 512, 512
CHECK_PAIRS = 16
RTOL = 1e-4


def _cuda_median_ms(fn: Callable[[], torch.Tensor], reps: int) -> float:
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def _numba_ref(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    an = a[:CHECK_PAIRS].double().cpu().numpy()
    bn = b[:CHECK_PAIRS].double().cpu().numpy()
    return np.array([dtw_distance(an[p], bn[p], DTWConfig()) for p in range(CHECK_PAIRS)])


def _variant(name: str, dim: int, fn: Callable[[], torch.Tensor], ref: np.ndarray, reps: int,
             torch_out: torch.Tensor | None) -> tuple[dict, torch.Tensor | None]:
    row: dict = {"variant": name, "dim": dim, "pairs": PAIRS, "n": N, "m": M}
    try:
        t0 = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        row["first_call_s"] = time.perf_counter() - t0
        fn()  # second warm-up
        torch.cuda.synchronize()
        ms = _cuda_median_ms(fn, reps)
        row["median_ms"] = ms
        row["gcells_per_s"] = PAIRS * N * M / (ms * 1e-3) / 1e9
        got = out[:CHECK_PAIRS].double().cpu().numpy()
        rel = float(np.max(np.abs(got - ref) / np.abs(ref)))
        row["max_rel_err_vs_numba"] = rel
        ok = rel <= RTOL and bool(torch.isfinite(out).all())
        if torch_out is not None:
            rel_t = float(((out.double() - torch_out.double()).abs() / torch_out.double().abs()).max())
            row["max_rel_err_vs_torch_all"] = rel_t
            ok = ok and rel_t <= RTOL
        row["ok"] = ok
        return row, out
    except Exception as exc:  # one failing variant must not hide the others
        row["error"] = f"{type(exc).__name__}: {exc}"
        row["traceback_tail"] = traceback.format_exc()[-1500:]
        row["ok"] = False
        return row, None


def run() -> list[dict]:
    """Run all variants; return one dict per variant (errors included as rows)."""
    if not torch.cuda.is_available():
        return [{"variant": "all", "error": "CUDA is not available", "ok": False}]
    torch.manual_seed(0)
    dev = torch.device("cuda")
    a1 = torch.randn(PAIRS, N, device=dev)
    b1 = torch.randn(PAIRS, M, device=dev)
    a8 = torch.randn(PAIRS, N, 8, device=dev)
    b8 = torch.randn(PAIRS, M, 8, device=dev)
    ref1 = _numba_ref(a1, b1)
    ref8 = _numba_ref(a8, b8)
    rows: list[dict] = []

    row, torch_out = _variant("torch anti-diagonal loop", 1, lambda: batched_dtw(a1, b1, backend="torch"), ref1, 3, None)
    rows.append(row)

    try:
        from engine.align.kernels.dtw_triton import dtw_triton
    except Exception as exc:
        rows.append({"variant": "triton (import)", "error": f"{type(exc).__name__}: {exc}", "ok": False})
        return rows

    lo, hi = -(N - 1), M - 1
    a13, b13 = a1.unsqueeze(-1).contiguous(), b1.unsqueeze(-1).contiguous()
    rows.append(_variant("triton fused via batched_dtw (auto)", 1, lambda: batched_dtw(a1, b1), ref1, 20, torch_out)[0])
    for nw in (1, 2, 4, 8):
        rows.append(
            _variant(f"triton fused num_warps={nw}", 1, lambda nw=nw: dtw_triton(a13, b13, lo, hi, num_warps=nw).sqrt(),
                     ref1, 20, torch_out)[0]
        )
    rows.append(
        _variant("triton fused scratch .cg", 1, lambda: dtw_triton(a13, b13, lo, hi, scratch_cg=True).sqrt(),
                 ref1, 20, torch_out)[0]
    )
    rows.append(_variant("triton fused D=8", 8, lambda: dtw_triton(a8, b8, lo, hi).sqrt(), ref8, 20, None)[0])
    return rows


def main() -> None:
    t0 = time.perf_counter()
    rows = run()
    total = time.perf_counter() - t0
    for r in rows:
        if "traceback_tail" in r:
            print(f"--- {r['variant']} failed:\n{r['traceback_tail']}")
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA"
    print(json.dumps({"device": dev, "torch": torch.__version__, "rows": [
        {k: v for k, v in r.items() if k != "traceback_tail"} for r in rows]}, indent=1))
    print(f"\nbatched DTW, {PAIRS} pairs of {N}x{M}, cost in-kernel from the series; {dev}; total {total:.1f} s")
    print(f"{'variant':38s} {'D':>2s} {'first s':>8s} {'median ms':>10s} {'Gcells/s':>9s} {'relerr numba':>12s} {'ok':>5s}")
    for r in rows:
        if "error" in r:
            print(f"{r['variant']:38s} {r.get('dim', 0):2d} ERROR {r['error'][:120]}")
            continue
        print(f"{r['variant']:38s} {r['dim']:2d} {r['first_call_s']:8.2f} {r['median_ms']:10.3f} "
              f"{r['gcells_per_s']:9.2f} {r['max_rel_err_vs_numba']:12.2e} {str(r['ok']):>5s}")


if __name__ == "__main__":
    main()
