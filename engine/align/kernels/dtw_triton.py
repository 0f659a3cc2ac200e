"""Fused Triton kernel for batched exact DTW distance (one program per pair).

Recurrence, band and costs as in :mod:`engine.align.dtw`; computes in float32. Importing this module
imports Triton, so only :func:`engine.align.kernels.dtw_torch.batched_dtw` (for CUDA tensors) and the
interpreter test import it.

Layout: program ``p`` owns pair ``p``; lane ``i`` (``BLOCK >= N`` lanes) owns row ``i``.
The row's frame ``a[p, i]`` stays in registers for the whole run. For each anti-diagonal
``k = i + j`` the lane

* loads ``b[p, k - i]`` (a contiguous, reversed slice of ``b`` — coalesced and L1-resident) and
  computes the local cost in registers (no ``[N, M]`` cost tensor is ever written);
* needs ``D(i, j-1)`` (own lane, diagonal ``k-1``: register), ``D(i-1, j)`` (lane ``i-1``,
  diagonal ``k-1``) and ``D(i-1, j-1)`` (lane ``i-1``, diagonal ``k-2``). Triton cannot shift a
  register vector across lanes, so diagonal ``k-1`` is stored to a per-program scratch row and
  reloaded at offset ``-1`` after a CTA barrier. The shifted diagonal ``k-2`` is the shifted
  ``k-1`` of the previous step, kept in registers, so there is one store/barrier/load per
  diagonal. The scratch row is double-buffered: with one barrier per step, a slow lane may still
  be reading buffer ``k-1`` while fast lanes write buffer ``k``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _dtw_fwd_kernel(
    a_ptr, b_ptr, out_ptr, scratch_ptr,
    N, M, lo, hi,
    stride_ap, stride_bp,
    D: tl.constexpr, D_PAD: tl.constexpr, BLOCK: tl.constexpr, COSINE: tl.constexpr,
    SCRATCH_CG: tl.constexpr,
):
    pid = tl.program_id(0)
    i = tl.arange(0, BLOCK)
    row_ok = i < N
    a_base = a_ptr + pid.to(tl.int64) * stride_ap
    b_base = b_ptr + pid.to(tl.int64) * stride_bp
    if D == 1:
        a_i = tl.load(a_base + i, mask=row_ok, other=0.0).to(tl.float32)
    else:
        dd = tl.arange(0, D_PAD)
        dmask = dd < D
        a_i = tl.load(a_base + i[:, None] * D + dd[None, :], mask=row_ok[:, None] & dmask[None, :], other=0.0).to(tl.float32)
    INF = float("inf")
    prev1 = tl.full([BLOCK], INF, tl.float32)
    # shift(diagonal k-2) at k=0: lane 0's diagonal predecessor is D[-1, -1] = 0.
    sh2 = tl.where(i == 0, 0.0, INF)
    scratch = scratch_ptr + pid.to(tl.int64) * (2 * BLOCK)
    for k in range(0, N + M - 1):
        j = k - i
        valid = row_ok & (j >= 0) & (j < M) & (j - i >= lo) & (j - i <= hi)
        jc = tl.minimum(tl.maximum(j, 0), M - 1)
        if D == 1:
            b_j = tl.load(b_base + jc, mask=valid, other=0.0).to(tl.float32)
            if COSINE:
                c = 1.0 - a_i * b_j
            else:
                diff = a_i - b_j
                c = diff * diff
        else:
            b_j = tl.load(b_base + jc[:, None] * D + dd[None, :], mask=valid[:, None] & dmask[None, :], other=0.0).to(tl.float32)
            if COSINE:
                c = 1.0 - tl.sum(a_i * b_j, axis=1)
            else:
                diff = a_i - b_j
                c = tl.sum(diff * diff, axis=1)
        buf = scratch + (k % 2) * BLOCK
        tl.store(buf + i, prev1)
        tl.debug_barrier()
        if SCRATCH_CG:  # bypass L1 for the reload (fallback if L1 ever served a stale line)
            sh1 = tl.load(buf + i - 1, mask=i >= 1, other=INF, cache_modifier=".cg")
        else:
            sh1 = tl.load(buf + i - 1, mask=i >= 1, other=INF)
        best = tl.minimum(tl.minimum(sh2, sh1), prev1)
        prev1 = tl.where(valid, c + best, INF)
        sh2 = sh1
    tl.store(out_ptr + pid + i * 0, prev1, mask=i == N - 1)


def _next_pow2(x: int) -> int:
    return 1 << (int(x) - 1).bit_length()


def dtw_triton(
    a: torch.Tensor,
    b: torch.Tensor,
    lo: int,
    hi: int,
    cosine: bool = False,
    num_warps: int | None = None,
    scratch_cg: bool = False,
) -> torch.Tensor:
    """Accumulated cost ``D[N-1, M-1]`` of each pair with the fused kernel.

    Args:
        a: ``[B, N, D]`` (unit-normalised when ``cosine``); any float dtype, computed in float32.
        b: ``[B, M, D]``.
        lo, hi: Band ``lo <= j - i <= hi`` (validated by the caller).
        cosine: Local cost ``1 - <a_i, b_j>``.
        num_warps: Warps per program; default scales with ``N`` (one lane per row).
        scratch_cg: Reload the scratch diagonal with ``.cg`` (L2) instead of the default path.

    Returns:
        ``[B]`` float32 accumulated costs.
    """
    a = a.contiguous()
    b = b.contiguous()
    Bn, N, D = a.shape
    M = b.shape[1]
    BLOCK = max(16, _next_pow2(N))
    if num_warps is None:
        num_warps = max(1, min(8, BLOCK // 256))
    out = torch.empty(Bn, device=a.device, dtype=torch.float32)
    scratch = torch.empty(Bn * 2 * BLOCK, device=a.device, dtype=torch.float32)
    _dtw_fwd_kernel[(Bn,)](
        a, b, out, scratch, N, M, lo, hi, N * D, M * D,
        D=D, D_PAD=max(2, _next_pow2(D)), BLOCK=BLOCK, COSINE=cosine, SCRATCH_CG=scratch_cg,
        num_warps=num_warps,
    )
    return out
