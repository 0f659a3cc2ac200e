"""Fused RVQ encode kernel (Triton): all stages, distances + top-2 + fp32 re-check + residual.

One program owns ``BLOCK_M`` rows for the whole encode. Per stage it

1. converts its fp32 residual rows (kept in registers across stages) to bf16,
2. walks the codebook in ``BLOCK_K``-codeword tiles: ``tl.dot`` (bf16 in, fp32 accumulate) gives
   ``-2 r.c``, ``+ ||c||^2`` gives the partial distance, and a running top-2 (value, index) per row
   is updated in registers -- the ``[N, K]`` distance matrix is never written to memory,
3. re-scores the two candidates in fp32 as ``||r - c||^2`` and keeps the better one (lower index
   on an exact tie), which makes the result equal to an fp32 search unless the fp32 winner was
   not among the bf16 top two (only when three codewords lie within bf16 rounding of each other),
4. subtracts the chosen fp32 codeword from the residual (same IEEE op as the torch reference).

HBM traffic is one read of ``x`` and one write of the codes (plus the final residual when asked);
codebooks are re-read from L2 by every program. Written against the Triton 3.x language subset
that 3.6 and 3.9 share (``tl.dot``, ``tl.min(..., return_indices=True)``, ``tl.where``), and runs
under ``TRITON_INTERPRET=1`` for CPU tests (there the bf16 dot is emulated with fp32 products of
the bf16-rounded operands, because the interpreter's own bf16 ``tl.dot`` returns garbage in
Triton 3.9).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl


@dataclass(frozen=True)
class KernelConfig:
    """Launch configuration of :func:`rvq_encode_fused`.

    Attributes:
        block_m: Rows per program (residual rows kept in registers).
        block_k: Codewords per tile of the distance GEMM.
        num_warps: Warps per program.
        num_stages: Software-pipelining depth of the codebook tile loads.
    """

    block_m: int = 128
    block_k: int = 128
    num_warps: int = 8
    num_stages: int = 3


#: Default launch configuration: block_m=128 halves the L2 codebook traffic of 64 (see
#: benchmarks/NOTES-rvq-gpu.md); to be confirmed by benchmarks/gpu_rvq.py on the H200.
DEFAULT_CONFIG = KernelConfig()


@triton.jit
def _rvq_encode_kernel(
    x_ptr,        # fp32 [N, D] input rows
    cbt_ptr,      # bf16 [Q, D, K] codebooks transposed and scaled by -2 (exact in bf16)
    cb_ptr,       # fp32 [Q, K, D] codebooks (re-check and residual update)
    cn_ptr,       # fp32 [Q, K] ||c||^2 from the fp32 codebooks
    codes_ptr,    # int32 [N, Q] output
    res_ptr,      # fp32 [N, D] output: final residual (written only if WRITE_RESIDUAL)
    N,
    D: tl.constexpr, D_PAD: tl.constexpr, K: tl.constexpr, Q: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, WRITE_RESIDUAL: tl.constexpr,
    EMULATE_BF16_DOT: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = (pid * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    row_ok = rows < N
    offs_d = tl.arange(0, D_PAD)
    d_ok = offs_d < D
    tile = row_ok[:, None] & d_ok[None, :]
    r = tl.load(x_ptr + rows[:, None] * D + offs_d[None, :], mask=tile, other=0.0)
    offs_k = tl.arange(0, BLOCK_K)
    for q in range(Q):
        a = r.to(tl.bfloat16)
        best1 = tl.full([BLOCK_M], float("inf"), tl.float32)
        best2 = tl.full([BLOCK_M], float("inf"), tl.float32)
        idx1 = tl.zeros([BLOCK_M], dtype=tl.int32)
        idx2 = tl.zeros([BLOCK_M], dtype=tl.int32)
        for k0 in range(0, K, BLOCK_K):
            cols = k0 + offs_k
            k_ok = cols < K
            b = tl.load(cbt_ptr + q * D * K + offs_d[:, None] * K + cols[None, :],
                        mask=d_ok[:, None] & k_ok[None, :], other=0.0)
            cn = tl.load(cn_ptr + q * K + cols, mask=k_ok, other=float("inf"))
            if EMULATE_BF16_DOT:
                # Interpreter only: its bf16 tl.dot is broken, so multiply the same bf16-rounded
                # values in fp32 (bf16 x bf16 products are exact in fp32; only the summation
                # order differs from the tensor-core dot).
                dist = tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee") + cn[None, :]
            else:
                dist = tl.dot(a, b) + cn[None, :]  # ||c||^2 - 2 r.c, fp32 accumulate
            t1, j1 = tl.min(dist, axis=1, return_indices=True)
            rest = tl.where(offs_k[None, :] == j1[:, None], float("inf"), dist)
            t2, j2 = tl.min(rest, axis=1, return_indices=True)
            j1 = j1 + k0
            j2 = j2 + k0
            # Merge the sorted pairs (best1 <= best2) and (t1 <= t2); earlier tiles win ties,
            # which keeps the lowest index first like torch.argmin.
            new_first = t1 < best1
            sec_if_new_val = tl.where(best1 <= t2, best1, t2)
            sec_if_new_idx = tl.where(best1 <= t2, idx1, j2)
            sec_if_old_val = tl.where(t1 < best2, t1, best2)
            sec_if_old_idx = tl.where(t1 < best2, j1, idx2)
            best2 = tl.where(new_first, sec_if_new_val, sec_if_old_val)
            idx2 = tl.where(new_first, sec_if_new_idx, sec_if_old_idx)
            best1 = tl.where(new_first, t1, best1)
            idx1 = tl.where(new_first, j1, idx1)
        # fp32 re-check of the two candidates (a lone candidate, K == 1, compares with itself).
        idx2 = tl.where(best2 == float("inf"), idx1, idx2)
        base = cb_ptr + q * K * D + offs_d[None, :]
        e1 = r - tl.load(base + idx1[:, None] * D, mask=tile, other=0.0)
        s1 = tl.sum(e1 * e1, axis=1)
        e2 = r - tl.load(base + idx2[:, None] * D, mask=tile, other=0.0)
        s2 = tl.sum(e2 * e2, axis=1)
        take2 = (s2 < s1) | ((s2 == s1) & (idx2 < idx1))
        code = tl.where(take2, idx2, idx1)
        r = tl.where(take2[:, None], e2, e1)
        tl.store(codes_ptr + rows * Q + q, code, mask=row_ok)
    if WRITE_RESIDUAL:
        tl.store(res_ptr + rows[:, None] * D + offs_d[None, :], r, mask=tile)


@dataclass(frozen=True)
class PreparedCodebooks:
    """Device-side codebook layouts the kernel reads (build once, reuse across calls)."""

    cbt_bf16_neg2: torch.Tensor  # [Q, D, K] bf16, -2 * c (multiplying by -2 is exact in bf16)
    cb_fp32: torch.Tensor        # [Q, K, D] fp32
    sq_norms: torch.Tensor       # [Q, K] fp32


def prepare_codebooks(codebooks: torch.Tensor) -> PreparedCodebooks:
    """Builds the kernel's codebook layouts from fp32 codebooks [Q, K, D] (on the target device)."""
    cb = codebooks.to(torch.float32).contiguous()
    cbt = (-2.0 * cb).to(torch.bfloat16).transpose(1, 2).contiguous()
    return PreparedCodebooks(cbt, cb, (cb * cb).sum(dim=2).contiguous())


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def rvq_encode_fused(x: torch.Tensor, codebooks: torch.Tensor | PreparedCodebooks,
                     config: KernelConfig = DEFAULT_CONFIG,
                     return_residual: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Greedy RVQ encode of ``x`` with the fused kernel.

    Args:
        x: fp32 [N, D] on a CUDA device (or CPU under ``TRITON_INTERPRET=1``), validated by
            the caller (finite, non-empty).
        codebooks: fp32 [Q, K, D] on the same device, or :func:`prepare_codebooks` output.
        config: Launch configuration.
        return_residual: Also return the final fp32 residual ``x - decode(codes)``.

    Returns:
        ``(codes int32 [N, Q], residual fp32 [N, D] or None)``.
    """
    prep = codebooks if isinstance(codebooks, PreparedCodebooks) else prepare_codebooks(codebooks)
    q_count, k, d = prep.cb_fp32.shape
    x = x.to(torch.float32).contiguous()
    n = x.shape[0]
    if x.shape[1] != d:
        raise ValueError(f"x has dim {x.shape[1]}, codebooks have dim {d}")
    codes = torch.empty(n, q_count, dtype=torch.int32, device=x.device)
    residual = torch.empty_like(x) if return_residual else codes  # dummy pointer when unused
    d_pad = max(16, triton.next_power_of_2(d))  # tl.dot needs a power-of-two inner dim >= 16
    block_k = min(config.block_k, max(16, triton.next_power_of_2(k)))
    grid = (triton.cdiv(n, config.block_m),)
    _rvq_encode_kernel[grid](
        x, prep.cbt_bf16_neg2, prep.cb_fp32, prep.sq_norms, codes, residual, n,
        D=d, D_PAD=d_pad, K=k, Q=q_count, BLOCK_M=config.block_m, BLOCK_K=block_k,
        WRITE_RESIDUAL=return_residual, EMULATE_BF16_DOT=_interpreting(), num_warps=config.num_warps, num_stages=config.num_stages,
    )
    return codes, (residual if return_residual else None)
