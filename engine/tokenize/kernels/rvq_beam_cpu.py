"""Beam-search RVQ encode on CPU with look-up tables ("beam LUT"), compiled with numba.

For a vector ``x`` and a beam entry with codes ``c_0..c_{q-1}`` and residual energy ``d``, the
residual energy after appending codeword ``k`` of stage ``q`` is::

    d + ||C_q[k]||^2 - 2 x.C_q[k] + sum_{j<q} 2 C_j[c_j].C_q[k]

So one GEMM per chunk of rows (``x`` against all ``Q*K`` codewords) plus precomputed codeword
norms and cross tables ``T_jq = 2 C_j C_q^T`` ([K, K] per pair ``j < q``) give every
candidate's error with ``q`` table-row additions instead of a ``D``-long dot product with a
residual, and no residual is ever materialized (faiss calls this "beam LUT" encoding). Greedy
encoding is the same search with a beam of 1.

Rounding: a LUT encoder works with ``x`` itself, not the (small) residual, so float32
rounding scales with ``||x||``. Two things keep it at the residual's scale instead: the
search runs on ``x - shift`` (``shift`` = mean of stage 0's codewords, stage 0 shifted alike;
same errors, same codes), and scores are residual energies summed from the largest term down
(see :func:`_candidate_scores`). On data offset far from the origin (offset 100-1000 x the
noise) this search matched a float64 search on every row, where the float32 residual-form
encoders did not (tests/engine/tokenize/test_rvq.py checks it).

The GEMM is torch (oneDNN when available, else MKL/BLAS); the per-row search is the numba
kernel :func:`beam_lut_rows`; everything is float32.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from llvmlite import ir
from numba.core import cgutils, types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

#: Largest cross-table set (bytes) the LUT encoder builds; larger models (e.g. Q=8, K=1024:
#: 28 tables of 4 MiB = 112 MiB) fall back to the residual-form encoders of engine.tokenize.rvq. The
#: tables are read row-wise at random, so far beyond the last-level cache every candidate row
#: would stall on memory anyway.
MAX_TABLE_BYTES = 32 * 2**20

#: Rows per GEMM chunk: the [rows, Q*K] float32 score block (2 MiB at 512 x 1024) stays in
#: cache between the GEMM that writes it and the kernel that reads it.
CHUNK_ROWS = 512

# Chunks are padded to at least this many rows: a GEMM of 1-3 rows runs a matrix-vector path
# that rounds differently, and a vector's code should not depend on the batch it came in.
_MIN_GEMM_ROWS = 8


def table_bytes(num_quantizers: int, codebook_size: int) -> int:
    """Bytes of the cross tables for ``num_quantizers`` stages of ``codebook_size`` codewords."""
    pairs = num_quantizers * (num_quantizers - 1) // 2
    return 4 * pairs * codebook_size * codebook_size


class BeamTables:
    """Per-model tables of the LUT encoder (built once per codebook set; read-only after).

    The search runs on ``x - shift`` with stage 0's codewords shifted alike (same errors, same
    codes): ``shift`` is the mean of stage 0's codewords, about the data mean, so the GEMM's
    rounding scales with the spread of the data rather than with its offset from the origin.

    Attributes:
        shift: float32 [D] subtracted from the inputs and from stage 0's codewords.
        weight: float32 [Q*K, D] all (shifted) codewords times -2 (exact), the GEMM's weight.
        norms: float32 [Q*K] their squared norms, the GEMM's bias.
        cross: float32 [P, K, K], ``cross[pair[j, q]] = 2 C_j C_q^T`` for ``j < q``.
        pair: int64 [Q, Q] index of the table of each pair ``j < q`` (-1 elsewhere).
    """

    def __init__(self, codebooks: torch.Tensor) -> None:
        q_count, k, d = codebooks.shape
        cb = codebooks.detach().to("cpu", torch.float32).clone().contiguous()
        self.num_quantizers, self.codebook_size = q_count, k
        self.shift = cb[0].mean(dim=0)
        cb[0] -= self.shift
        flat = cb.reshape(q_count * k, d)
        self.weight = (-2.0 * flat).contiguous()
        self.norms = (flat * flat).sum(dim=1).contiguous()
        pairs = q_count * (q_count - 1) // 2
        cross = torch.empty(max(pairs, 1), k, k, dtype=torch.float32)
        pair = np.full((q_count, q_count), -1, dtype=np.int64)
        p = 0
        for q in range(q_count):
            for j in range(q):
                torch.mm(cb[j], cb[q].t(), out=cross[p])
                cross[p] *= 2.0
                pair[j, q] = p
                p += 1
        self.cross = cross.numpy()
        self.pair = pair


def base_scores(x: torch.Tensor, tables: BeamTables) -> torch.Tensor:
    """``||C_q[k]||^2 - 2 x.C_q[k]`` for every row of the shifted input ``x`` and every
    (shifted) codeword: float32 [N, Q*K], one GEMM.

    Uses oneDNN's float32 linear when torch has it, else ``torch.addmm`` (MKL). Both are
    float32 GEMMs with the bias added once; on the AMD AVX-512 benchmark machine MKL ran its
    AVX2 kernels while oneDNN used AVX-512: 2.1x faster single-threaded on the benchmark's
    shapes, with bit-identical results there.
    """
    global _ONEDNN
    rows = x.shape[0]
    if rows < _MIN_GEMM_ROWS:
        x = torch.cat([x, x.new_zeros(_MIN_GEMM_ROWS - rows, x.shape[1])])
    out = None
    if _ONEDNN is not False:
        try:
            out = torch.ops.mkldnn._linear_pointwise(x, tables.weight, tables.norms, "none", [], "")
            _ONEDNN = True
        except (AttributeError, RuntimeError, NotImplementedError):
            _ONEDNN = False  # torch without oneDNN (or without this op): MKL/BLAS below
    if out is None:
        out = torch.addmm(tables.norms.unsqueeze(0), x, tables.weight.t())
    return out[:rows]


_ONEDNN: bool | None = None  # whether oneDNN's linear is usable (None: not tried yet)


def encode_beam_lut(x: torch.Tensor, tables: BeamTables, beam: int,
                    chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
    """Beam-search codes of ``x`` (float32 [N, D], CPU) with beam width ``beam`` (>= 1).

    Returns:
        int64 [N, Q] codes of the best code tuple found. Deterministic; among equal scores the
        lower (beam rank, codeword) index wins. ``beam = 1`` is greedy encoding.
    """
    x = x.detach()  # codes are not differentiable; .numpy() below needs grad-free tensors
    n = x.shape[0]
    q_count, k = tables.num_quantizers, tables.codebook_size
    out = np.empty((n, q_count), dtype=np.int64)
    step = max(1, chunk_rows)
    for start in range(0, n, step):
        xs = x[start:start + step] - tables.shift
        base = base_scores(xs, tables).contiguous()
        sq_norms = (xs * xs).sum(dim=1)
        beam_lut_rows(base.numpy().reshape(xs.shape[0], q_count, k), sq_norms.numpy(), tables.cross,
                      tables.pair, beam, out[start:start + xs.shape[0]])
    return torch.from_numpy(out)


# --------------------------------------------------------------------------------------------
# 16-float vector primitives. numba vectorizes plain loops (the score sums below) but not float
# min reductions or a 16-wide "any score under the threshold?" test (its SLP vectorizer is off),
# and written as Python loops those cost a compare-and-branch per score, whose mispredictions
# dominated the kernel (~2.5x slower selection). These two emit the vector IR directly (LLVM
# lowers a 16-float vector to one AVX-512 register, or two AVX2 / four SSE ones). ``arr`` is
# C-contiguous float32 and every block read lies inside it (callers use them only on lengths
# that are a multiple of 16).

_VEC = ir.VectorType(ir.FloatType(), 16)


def _vec_at(context, builder, arr_type, arr_v, off_v):
    data = context.make_array(arr_type)(context, builder, arr_v).data
    return builder.bitcast(builder.gep(data, [off_v]), _VEC.as_pointer())


def _is_f32_c(arr) -> bool:
    return isinstance(arr, types.Array) and arr.dtype == types.float32 and arr.layout == "C"


@intrinsic
def _le_mask16(typingctx, arr, off, thr):  # pragma: no cover - compiled
    """Bit ``u`` set iff ``arr.flat[off + u] <= thr``, ``u < 16`` (one vector compare)."""
    if not _is_f32_c(arr):
        return None

    def codegen(context, builder, signature, args):
        vec = builder.load(_vec_at(context, builder, signature.args[0], args[0], args[1]), align=4)
        splat = builder.shuffle_vector(
            builder.insert_element(ir.Constant(_VEC, ir.Undefined), args[2], ir.Constant(ir.IntType(32), 0)),
            ir.Constant(_VEC, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), 16), [0] * 16))
        bits = builder.bitcast(builder.fcmp_ordered("<=", vec, splat), ir.IntType(16))
        return builder.zext(bits, ir.IntType(64))

    return types.uint64(arr, types.intp, types.float32), codegen


@intrinsic
def _min_bound16(typingctx, arr, off, blocks, groups):  # pragma: no cover - compiled
    """``max_g min(group g)``: the 16-float blocks ``t`` of ``arr.flat[off:off + 16 blocks]``
    are dealt to ``groups`` groups (``t % groups``), each group's minimum taken, and the
    largest of these returned. The group minima are ``groups`` distinct entries, so the result
    bounds the ``groups``-th smallest entry from above (``1 <= groups <= blocks``)."""
    if not _is_f32_c(arr):
        return None

    def codegen(context, builder, signature, args):
        arr_t = signature.args[0]
        arr_v, off_v, blocks_v, groups_v = args
        i64 = off_v.type
        c = lambda v: ir.Constant(i64, v)
        f32 = ir.FloatType()
        hmin = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f32, [_VEC]),
                                              "llvm.vector.reduce.fmin.v16f32")
        inf = ir.Constant(_VEC, [float("inf")] * 16)
        bound = cgutils.alloca_once_value(builder, ir.Constant(f32, float("-inf")))
        # Four accumulators per group: a single one would chain every vector min on the last.
        accs = [cgutils.alloca_once(builder, _VEC) for _ in range(4)]
        stride = builder.mul(groups_v, c(16))

        def fold(acc, at):
            vec = builder.load(_vec_at(context, builder, arr_t, arr_v, at), align=4)
            cur = builder.load(acc)
            builder.store(builder.select(builder.fcmp_ordered("<", vec, cur), vec, cur), acc)

        with cgutils.for_range(builder, groups_v) as g:
            for acc in accs:
                builder.store(inf, acc)
            start = builder.add(off_v, builder.mul(g.index, c(16)))
            count = builder.udiv(builder.add(builder.sub(blocks_v, g.index), builder.sub(groups_v, c(1))), groups_v)
            with cgutils.for_range(builder, builder.udiv(count, c(4))) as t:
                at = builder.add(start, builder.mul(builder.mul(t.index, c(4)), stride))
                for acc in accs:
                    fold(acc, at)
                    at = builder.add(at, stride)
            done = builder.mul(builder.udiv(count, c(4)), c(4))
            with cgutils.for_range(builder, builder.sub(count, done)) as t:
                fold(accs[0], builder.add(start, builder.mul(builder.add(done, t.index), stride)))
            a01 = builder.load(accs[0])
            for acc in accs[1:]:
                other = builder.load(acc)
                a01 = builder.select(builder.fcmp_ordered("<", other, a01), other, a01)
            gmin = builder.call(hmin, [a01])
            cur = builder.load(bound)
            builder.store(builder.select(builder.fcmp_ordered(">", gmin, cur), gmin, cur), bound)
        return builder.load(bound)

    return types.float32(arr, types.intp, types.intp, types.intp), codegen


# --------------------------------------------------------------------------------------------
# Selection and the row kernel


@numba.njit(nogil=True, boundscheck=False)
def _insert(vals, idx, width, v, t):  # pragma: no cover - compiled
    # Sorted insertion into the running top-`width` list; strict comparisons keep the earlier
    # (lower flat index) entry first among equal scores.
    p = width - 1
    while p > 0 and v < vals[p - 1]:
        vals[p] = vals[p - 1]
        idx[p] = idx[p - 1]
        p -= 1
    vals[p] = v
    idx[p] = t


@numba.njit(nogil=True, boundscheck=False)
def _select(flat, off, n, width, vals, idx):  # pragma: no cover - compiled
    """Top-``width`` (smallest) of ``flat[off:off + n]`` into ascending ``vals`` and indices
    ``idx`` (relative to ``off``); among equal scores the lower index wins."""
    for w in range(width):
        # Placeholders: if every score were +inf (float32 overflow), the result would still be
        # valid indices (the lowest ones), never -1.
        vals[w] = np.float32(np.inf)
        idx[w] = w
    if n % 16 != 0:  # plain scan (codebook sizes that are not a multiple of 16)
        for u in range(n):
            v = flat[off + u]
            if v < vals[width - 1]:  # strict: an equal later score never displaces an earlier one
                _insert(vals, idx, width, v, u)
        return
    # Only scores <= a bound on the width-th smallest can be selected (usually about `width`
    # of them); each 16-score block is tested with one vector compare. Data-dependent branches
    # per score would mispredict often, and they dominated the kernel.
    blocks = n // 16
    thr = _min_bound16(flat, off, blocks, width) if width <= blocks else np.float32(np.inf)
    for t in range(0, n, 16):
        mask = _le_mask16(flat, off + t, thr)
        while mask:
            u = t + trailing_zeros(mask)
            mask &= mask - numba.uint64(1)
            v = flat[off + u]
            if v < vals[width - 1]:
                _insert(vals, idx, width, v, u)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def beam_lut_rows(base, sq_norms, cross, pair, beam, out):  # pragma: no cover - compiled
    """Beam search over the rows of one chunk.

    Args:
        base: float32 [m, Q, K] (C-contiguous), ``||C_q[k]||^2 - 2 x.C_q[k]``.
        sq_norms: float32 [m], ``||x||^2``: scores are kept as residual energies
            ``||x - x_hat||^2`` (small) rather than ``||x - x_hat||^2 - ||x||^2`` (about
            ``-||x||^2``), so their rounding does not grow with the norm of ``x``.
        cross: float32 [P, K, K] cross tables; ``pair``: int64 [Q, Q] their indices.
        beam: beam width B >= 1 (1 = greedy).
        out: int64 [m, Q] codes of the best beam entry.
    """
    # The loops over codewords index with a range() variable innermost and never slice:
    # numba wraps negative indices, and only for range() variables can LLVM drop that and
    # emit contiguous vector loads (computed flat offsets gave gathers; slices pay an atomic
    # reference count per view).
    m, q_count, k = base.shape
    scores = np.empty((beam, k), dtype=np.float32)
    flat = scores.reshape(-1)
    vals = np.empty(beam, dtype=np.float32)
    idx = np.empty(beam, dtype=np.int64)
    cur_d = np.empty(beam, dtype=np.float32)
    cur_c = np.empty((beam, q_count), dtype=np.int64)
    nxt_c = np.empty((beam, q_count), dtype=np.int64)
    base_flat = base.reshape(-1)
    for i in range(m):
        # The last stage needs only the best entry, not the whole beam.
        width = min(beam, k) if q_count > 1 else 1
        _select(base_flat, i * q_count * k, k, width, vals, idx)
        for w in range(width):
            cur_d[w] = sq_norms[i] + vals[w]
            cur_c[w, 0] = idx[w]
        for q in range(1, q_count):
            for b in range(width):
                _candidate_scores(scores, b, cur_d[b], base, i, q, cross, pair, cur_c)
            new_width = min(beam, width * k) if q < q_count - 1 else 1
            _select(flat, 0, width * k, new_width, vals, idx)
            for w in range(new_width):
                parent = idx[w] // k
                for j in range(q):
                    nxt_c[w, j] = cur_c[parent, j]
                nxt_c[w, q] = idx[w] - parent * k
                cur_d[w] = vals[w]
            for w in range(new_width):
                for j in range(q + 1):
                    cur_c[w, j] = nxt_c[w, j]
            width = new_width
        for j in range(q_count):
            out[i, j] = cur_c[0, j]


@numba.njit(nogil=True, boundscheck=False)
def _candidate_scores(scores, b, d, base, i, q, cross, pair, cur_c):  # pragma: no cover - compiled
    """``scores[b, u] = base[i, q, u] + sum_{j<q} cross[pair[j, q], cur_c[b, j], u] + d``.

    Summed in that order on purpose: ``base + cross[0]`` is ``||c||^2 - 2 (x - C_0[c_0]).c``,
    and each further table term turns it into the dot product with a smaller residual, so
    the partial sums shrink and rounding stays relative to the residual, not to ``x``. Up to
    three table rows are summed in one pass (one load per term, one store).
    """
    k = scores.shape[1]
    c0 = cur_c[b, 0]
    p0 = pair[0, q]
    if q == 1:
        for u in range(k):
            scores[b, u] = base[i, q, u] + cross[p0, c0, u] + d
        return
    c1 = cur_c[b, 1]
    p1 = pair[1, q]
    if q == 2:
        for u in range(k):
            scores[b, u] = base[i, q, u] + cross[p0, c0, u] + cross[p1, c1, u] + d
        return
    c2 = cur_c[b, 2]
    p2 = pair[2, q]
    if q == 3:
        for u in range(k):
            scores[b, u] = base[i, q, u] + cross[p0, c0, u] + cross[p1, c1, u] + cross[p2, c2, u] + d
        return
    for u in range(k):
        scores[b, u] = base[i, q, u] + cross[p0, c0, u] + cross[p1, c1, u] + cross[p2, c2, u]
    for j in range(3, q):
        pj = pair[j, q]
        cj = cur_c[b, j]
        for u in range(k):
            scores[b, u] += cross[pj, cj, u]
    for u in range(k):
        scores[b, u] += d
