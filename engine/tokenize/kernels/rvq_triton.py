"""Fused RVQ encode kernels (Triton): all stages, candidate search + fp32 re-check + residual.

One program owns ``BLOCK_M`` rows for the whole encode; the fp32 residual stays in registers
across stages, so HBM traffic is one read of ``x`` and one write of the codes (plus the final
residual when asked); codebooks are re-read from L2 by every program. Two kernels:

``v1`` (first version, kept for comparison)
    bf16 ``tl.dot`` per ``BLOCK_K`` codeword tile, ``+ ||c||^2``, a running top-2 built from two
    ``tl.min(..., return_indices=True)`` per tile plus a 2-way merge, then both candidates
    re-scored in fp32. Epilogue ~18 ALU ops per distance element: ALU-bound (see
    benchmarks/NOTES-rvq-gpu.md).

``v2`` (packed keys)
    * operands ``bf16`` or ``fp16``. fp16 has 3 more mantissa bits (8x smaller rounding error, same
      tensor-core rate); its range is handled by exact power-of-two scaling: per stage for the
      codebook (host), per row for the residual (in the kernel), undone by one FMA per element.
    * ``dist = acc * mult + ||c||^2 + (||r||^2 + E)`` where ``E`` bounds the operand-rounding error
      (Cauchy-Schwarz), so ``dist >= 0`` and its fp32 bits order like the value. The low
      ``log2(BLOCK_K)`` bits are replaced by the column: ``key = (bits & ~(BLOCK_K-1)) | col`` (one
      LOP3). One int32 ``tl.min`` gives the tile's best (value, index), lowest index on ties.
    * the tile's 2nd (3rd) best is the unsigned min of ``key - (t + 1)`` (keys <= t wrap to huge):
      2 ops per element instead of mask+select+argmin.
    * per-tile top ``TILE_TOP`` are inserted into a running sorted list of ``TOPM`` candidates
      (per-row ops only; earlier tile wins ties).
    * re-check: candidate 1 is always re-scored in fp32 (its codeword is needed for the residual
      anyway); candidate k >= 2 is loaded and re-scored only if its approximate distance is within
      the rigorous window ``W = 2E + quantisation`` of candidate 1 -- outside it, it provably cannot
      win, so the gather (512 B of L2 per row) is skipped.
    * exactness: equal to an fp32 search unless the fp32 winner is outside the approximate
      top-``TOPM``. Not provable at this cost (most rows have many codewords within ``W``), but
      measured on the benchmark data (CPU simulation, 2M row-stages): fp32 winner outside top-2:
      bf16 24, fp16 2; outside top-3: 0 and 0. Optional ``stats`` counters report how often the
      window forced extra gathers and how many rows had all ``TOPM`` candidates inside ``W``.

Written against the Triton 3.x language subset that 3.6 and 3.9 share, and runs under
``TRITON_INTERPRET=1`` for CPU tests (there the bf16/fp16 dot is emulated with fp32 products of
the rounded operands -- exact, since bf16 x bf16 and fp16 x fp16 products fit in fp32 -- because
the interpreter's own bf16 ``tl.dot`` returns garbage in Triton 3.9).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from engine.errors import InvalidInputError


@dataclass(frozen=True)
class KernelConfig:
    """Launch configuration / variant of :func:`rvq_encode_fused`.

    Attributes:
        block_m: Rows per program (residual rows kept in registers).
        block_k: Codewords per tile of the distance GEMM.
        num_warps: Warps per program.
        num_stages: Software-pipelining depth of the codebook tile loads.
        kernel: ``"v1"`` (top-2 via two argmins per tile) or ``"v2"`` (packed int32 keys).
        operand: ``"bf16"`` or ``"fp16"`` tensor-core operands (v2 only; v1 is bf16).
        tile_top: Candidates taken from each tile, 1..3 (v2 only).
        topm: Running candidates per row re-checked in fp32, 1..3 (v2 only; v1 is 2).
    """

    # Defaults: v1 [m64 k128 w4 s3], the fastest configuration measured on the H200 (13.0 ms on
    # 1M x 128, Q=8, K=1024; bf16 ties only). Switch to the best exact v2 variant of
    # benchmarks/gpu_rvq.py once one is measured faster (these lines only).
    block_m: int = 64
    block_k: int = 128
    num_warps: int = 4
    num_stages: int = 3
    kernel: str = "v1"
    operand: str = "bf16"
    tile_top: int = 2
    topm: int = 2

    def __post_init__(self) -> None:
        if self.kernel not in ("v1", "v2"):
            raise InvalidInputError("kernel", f"must be 'v1' or 'v2', got {self.kernel!r}")
        if self.operand not in ("bf16", "fp16"):
            raise InvalidInputError("operand", f"must be 'bf16' or 'fp16', got {self.operand!r}")
        for name in ("tile_top", "topm"):
            if not 1 <= getattr(self, name) <= 3:
                raise InvalidInputError(name, f"must be 1..3, got {getattr(self, name)}")
        for name in ("block_m", "block_k", "num_warps", "num_stages"):
            if getattr(self, name) < 1:
                raise InvalidInputError(name, f"must be >= 1, got {getattr(self, name)}")

    def label(self) -> str:
        shape = f"m{self.block_m} k{self.block_k} w{self.num_warps} s{self.num_stages}"
        if self.kernel == "v1":
            return f"v1 bf16 top2 [{shape}]"
        return f"v2 {self.operand} t{self.tile_top}/top{self.topm} [{shape}]"


#: The launch configuration engine/tokenize/rvq.py's CUDA path uses: the dataclass defaults.
DEFAULT_CONFIG = KernelConfig()

@triton.jit
def _rvq_encode_kernel_v1(
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



@triton.jit
def _insert(v, j, b1, i1, b2, i2, b3, i3, TOPM: tl.constexpr):
    """Inserts (v, j) into the sorted running list (b1 <= b2 <= b3); strict < keeps earlier
    entries first on equal values, i.e. the lowest codeword index (torch.argmin's rule)."""
    lt1 = v < b1
    if TOPM >= 3:
        lt3 = v < b3
        b3 = tl.where(v < b2, b2, tl.where(lt3, v, b3))
        i3 = tl.where(v < b2, i2, tl.where(lt3, j, i3))
    if TOPM >= 2:
        lt2 = v < b2
        b2 = tl.where(lt1, b1, tl.where(lt2, v, b2))
        i2 = tl.where(lt1, i1, tl.where(lt2, j, i2))
    b1 = tl.where(lt1, v, b1)
    i1 = tl.where(lt1, j, i1)
    return b1, i1, b2, i2, b3, i3


@triton.jit
def _next_key(key, t):
    """Smallest key > t per row (keys are distinct non-negative int32): key - (t + 1) wraps to
    >= 2^31 as uint32 for every key <= t, so one subtract + one unsigned min."""
    u = (key - (t + 1)[:, None]).to(tl.uint32, bitcast=True)
    return tl.min(u, axis=1).to(tl.int32, bitcast=True) + t + 1


@triton.jit
def _recheck(r, cand, need, base, D, tile, code, best):
    """fp32 direct-form re-score of one candidate per row (loaded only where ``need``). Only the
    per-row score is kept (no [BLOCK_M, D] temporaries stay live: they made ptxas spill)."""
    c = tl.load(base + cand[:, None].to(tl.int64) * D, mask=tile & need[:, None], other=0.0)
    e = r - c
    s = tl.where(need, tl.sum(e * e, axis=1), float("inf"))
    take = (s < best) | ((s == best) & (cand < code))
    return tl.where(take, cand, code), tl.where(take, s, best)


@triton.jit
def _rvq_encode_kernel_v2(
    x_ptr,        # fp32 [N, D] input rows
    cbt_ptr,      # bf16/fp16 [Q, D, K]: -2 * c (bf16) or -2 * s_q * c (fp16, s_q a power of two)
    cb_ptr,       # fp32 [Q, K, D] codebooks (re-check and residual update)
    cn_ptr,       # fp32 [Q, K] ||c||^2 from the fp32 codebooks
    cmax_ptr,     # fp32 [Q] max_k ||c_k||
    inv_sc_ptr,   # fp32 [Q] 1 / s_q (fp16) or 1 (bf16)
    codes_ptr,    # int32 [N, Q] output
    res_ptr,      # fp32 [N, D] output: final residual (written only if WRITE_RESIDUAL)
    stats_ptr,    # int32 [3]: extra re-check rows, uncertified rows, re-check flips (if WITH_STATS)
    N, err_coef, quant_coef,
    D: tl.constexpr, D_PAD: tl.constexpr, K: tl.constexpr, Q: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, TILE_TOP: tl.constexpr, TOPM: tl.constexpr,
    FP16: tl.constexpr, EVEN: tl.constexpr, WRITE_RESIDUAL: tl.constexpr,
    WITH_STATS: tl.constexpr, EMULATE_DOT: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < N
    row_off = rows.to(tl.int64) * D
    offs_d = tl.arange(0, D_PAD)
    d_ok = offs_d < D
    tile = row_ok[:, None] & d_ok[None, :]
    r = tl.load(x_ptr + row_off[:, None] + offs_d[None, :], mask=tile, other=0.0)
    offs_k = tl.arange(0, BLOCK_K)
    HI: tl.constexpr = -BLOCK_K          # ~(BLOCK_K - 1): clears the column bits
    LO: tl.constexpr = BLOCK_K - 1
    INF_KEY: tl.constexpr = 0x7F800000   # bits of +inf: worse than any finite key
    for q in range(Q):
        rn = tl.sum(r * r, axis=1)
        rnorm = tl.sqrt(rn)
        cmax = tl.load(cmax_ptr + q)
        err = err_coef * rnorm * cmax                    # |approx - exact| <= err (per distance)
        window = 2.0 * err + quant_coef * (rnorm + cmax) * (rnorm + cmax)
        rb = rn + err                                    # makes every approximate distance >= 0
        if FP16:
            m = tl.max(tl.abs(r), axis=1)
            e = ((m.to(tl.int32, bitcast=True) >> 23) & 255) - 127
            s_exp = tl.minimum(tl.maximum(13 - e, -100), 100)   # max |r * s| in [2^13, 2^14)
            sr = ((s_exp + 127) << 23).to(tl.float32, bitcast=True)
            mult = ((127 - s_exp) << 23).to(tl.float32, bitcast=True) * tl.load(inv_sc_ptr + q)
            a = (r * sr[:, None]).to(tl.float16)
        else:
            a = r.to(tl.bfloat16)
        b1 = tl.full([BLOCK_M], INF_KEY, tl.int32)
        b2 = tl.full([BLOCK_M], INF_KEY, tl.int32)
        b3 = tl.full([BLOCK_M], INF_KEY, tl.int32)
        i1 = tl.zeros([BLOCK_M], dtype=tl.int32)
        i2 = tl.zeros([BLOCK_M], dtype=tl.int32)
        i3 = tl.zeros([BLOCK_M], dtype=tl.int32)
        for k0 in range(0, K, BLOCK_K):
            cols = k0 + offs_k
            if EVEN:
                b = tl.load(cbt_ptr + q * D * K + offs_d[:, None] * K + cols[None, :])
                cn = tl.load(cn_ptr + q * K + cols)
            else:
                k_ok = cols < K
                b = tl.load(cbt_ptr + q * D * K + offs_d[:, None] * K + cols[None, :],
                            mask=d_ok[:, None] & k_ok[None, :], other=0.0)
                cn = tl.load(cn_ptr + q * K + cols, mask=k_ok, other=float("inf"))
            if EMULATE_DOT:
                acc = tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
            else:
                acc = tl.dot(a, b)
            if FP16:
                dist = acc * mult[:, None] + cn[None, :] + rb[:, None]
            else:
                dist = acc + cn[None, :] + rb[:, None]
            key = (dist.to(tl.int32, bitcast=True) & HI) | offs_k[None, :]
            t = tl.min(key, axis=1)
            b1, i1, b2, i2, b3, i3 = _insert(t & HI, (t & LO) + k0, b1, i1, b2, i2, b3, i3, TOPM)
            if TILE_TOP >= 2:
                t = _next_key(key, t)
                b1, i1, b2, i2, b3, i3 = _insert(t & HI, (t & LO) + k0, b1, i1, b2, i2, b3, i3, TOPM)
            if TILE_TOP >= 3:
                t = _next_key(key, t)
                b1, i1, b2, i2, b3, i3 = _insert(t & HI, (t & LO) + k0, b1, i1, b2, i2, b3, i3, TOPM)
        # fp32 re-check. Candidate 1 always (its codeword is needed for the residual anyway).
        lim = b1.to(tl.float32, bitcast=True) + window
        base = cb_ptr + q * K * D + offs_d[None, :]
        c1 = tl.load(base + i1[:, None].to(tl.int64) * D, mask=tile, other=0.0)
        e1 = r - c1
        best = tl.sum(e1 * e1, axis=1)
        code = i1
        if TOPM >= 2:
            need2 = (b2.to(tl.float32, bitcast=True) <= lim) & row_ok
            code, best = _recheck(r, i2, need2, base, D, tile, code, best)
        if TOPM >= 3:
            need3 = (b3.to(tl.float32, bitcast=True) <= lim) & row_ok
            code, best = _recheck(r, i3, need3, base, D, tile, code, best)
        if TOPM >= 2:
            # residual from the chosen codeword (re-gathered: an L1 hit; the same IEEE op as the
            # reference's r -= c, so stage inputs stay bit-identical)
            e1 = r - tl.load(base + code[:, None].to(tl.int64) * D, mask=tile, other=0.0)
        if WITH_STATS:
            if TOPM >= 2:
                tl.atomic_add(stats_ptr, tl.sum(need2.to(tl.int32), axis=0))
                last = b2
                if TOPM >= 3:
                    last = b3
                unc = (last.to(tl.float32, bitcast=True) <= lim) & row_ok
                tl.atomic_add(stats_ptr + 1, tl.sum(unc.to(tl.int32), axis=0))
                flip = (code != i1) & row_ok
                tl.atomic_add(stats_ptr + 2, tl.sum(flip.to(tl.int32), axis=0))
        r = e1
        tl.store(codes_ptr + rows.to(tl.int64) * Q + q, code, mask=row_ok)
    if WRITE_RESIDUAL:
        tl.store(res_ptr + row_off[:, None] + offs_d[None, :], r, mask=tile)


@dataclass(frozen=True)
class PreparedCodebooks:
    """Device-side codebook layouts the kernels read (build once, reuse across calls)."""

    cbt_bf16_neg2: torch.Tensor  # [Q, D, K] bf16, -2 * c (multiplying by -2 is exact in bf16)
    cb_fp32: torch.Tensor        # [Q, K, D] fp32
    sq_norms: torch.Tensor       # [Q, K] fp32
    cbt_fp16_neg2s: torch.Tensor  # [Q, D, K] fp16, -2 * s_q * c, s_q = 2^j with max |.| in [2^13, 2^14)
    inv_scale: torch.Tensor      # [Q] fp32, 1 / s_q
    max_norm: torch.Tensor       # [Q] fp32, max_k ||c_k||


def prepare_codebooks(codebooks: torch.Tensor) -> PreparedCodebooks:
    """Builds the kernels' codebook layouts from fp32 codebooks [Q, K, D] (on the target device)."""
    cb = codebooks.to(torch.float32).contiguous()
    neg2 = -2.0 * cb
    cbt = neg2.to(torch.bfloat16).transpose(1, 2).contiguous()
    amax = neg2.abs().amax(dim=(1, 2)).clamp_min(torch.finfo(torch.float32).tiny)
    exp = (13.0 - torch.floor(torch.log2(amax))).clamp(-100.0, 100.0)   # powers of two: exact
    scaled = neg2 * torch.exp2(exp)[:, None, None]
    cbt16 = scaled.to(torch.float16).transpose(1, 2).contiguous()
    sq = (cb * cb).sum(dim=2).contiguous()
    return PreparedCodebooks(cbt, cb, sq, cbt16, torch.exp2(-exp).to(torch.float32).contiguous(),
                             sq.max(dim=1).values.sqrt().contiguous())


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


#: Unit roundoff of the tensor-core operands.
_UNIT_ROUNDOFF = {"bf16": 2.0 ** -8, "fp16": 2.0 ** -11}


def rvq_encode_fused(x: torch.Tensor, codebooks: torch.Tensor | PreparedCodebooks,
                     config: KernelConfig = DEFAULT_CONFIG, return_residual: bool = False,
                     stats: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Greedy RVQ encode of ``x`` with a fused kernel.

    Args:
        x: fp32 [N, D] on a CUDA device (or CPU under ``TRITON_INTERPRET=1``), validated by
            the caller (finite, non-empty).
        codebooks: fp32 [Q, K, D] on the same device, or :func:`prepare_codebooks` output.
        config: Variant and launch configuration.
        return_residual: Also return the final fp32 residual ``x - decode(codes)``.
        stats: Optional int32 [3] tensor (v2, topm >= 2) the kernel adds row-stage counts to:
            extra fp32 re-checks, rows with all ``topm`` candidates inside the error window
            ("uncertified"), rows where the re-check changed the code.

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
    if config.kernel == "v1":
        _rvq_encode_kernel_v1[grid](
            x, prep.cbt_bf16_neg2, prep.cb_fp32, prep.sq_norms, codes, residual, n,
            D=d, D_PAD=d_pad, K=k, Q=q_count, BLOCK_M=config.block_m, BLOCK_K=block_k,
            WRITE_RESIDUAL=return_residual, EMULATE_BF16_DOT=_interpreting(),
            num_warps=config.num_warps, num_stages=config.num_stages,
        )
        return codes, (residual if return_residual else None)
    if config.kernel != "v2" or config.operand not in _UNIT_ROUNDOFF:
        raise ValueError(f"unknown kernel variant {config}")
    if not (1 <= config.tile_top <= 3 and 1 <= config.topm <= 3):
        raise ValueError(f"tile_top and topm must be in 1..3, got {config}")
    u = _UNIT_ROUNDOFF[config.operand]
    # |approx - exact| <= 2 (||dr|| ||c|| + ||r|| ||dc|| + ||dr|| ||dc||) <= (4u + 2u^2) ||r|| C;
    # 2^-14 ||r|| C covers fp32 accumulation (D 2^-24 |r||c|), fp16 subnormals and the epilogue.
    err_coef = 4 * u + 2 * u * u + 2.0 ** -14
    # key truncation (2^-(23 - log2 BLOCK_K) relative) of two keys <= 2 (||r|| + C)^2, doubled
    quant_coef = 2.0 ** -(21 - (block_k.bit_length() - 1))
    with_stats = stats is not None and config.topm >= 2
    cbt = prep.cbt_fp16_neg2s if config.operand == "fp16" else prep.cbt_bf16_neg2
    _rvq_encode_kernel_v2[grid](
        x, cbt, prep.cb_fp32, prep.sq_norms, prep.max_norm, prep.inv_scale, codes, residual,
        stats if with_stats else codes, n, err_coef, quant_coef,
        D=d, D_PAD=d_pad, K=k, Q=q_count, BLOCK_M=config.block_m, BLOCK_K=block_k,
        TILE_TOP=config.tile_top, TOPM=config.topm, FP16=config.operand == "fp16",
        EVEN=(k % block_k == 0) and d == d_pad, WRITE_RESIDUAL=return_residual,
        WITH_STATS=with_stats, EMULATE_DOT=_interpreting(),
        num_warps=config.num_warps, num_stages=config.num_stages,
    )
    return codes, (residual if return_residual else None)
