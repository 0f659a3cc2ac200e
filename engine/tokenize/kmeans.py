"""k-means building blocks for the RVQ fit: nearest-codeword search, k-means++ seeding, Lloyd.

* Nearest-codeword search uses the GEMM form ``||x||^2 - 2 x.c + ||c||^2``; ``||x||^2`` is the
  same for every codeword of a row, so only ``||c||^2 - 2 x.c`` is formed. Rows are processed in
  chunks so the ``[rows, codebook_size]`` distance block stays under a fixed memory bound.
* :func:`kmeanspp` seeds codewords by D^2 sampling; :func:`lloyd` runs Lloyd iterations with
  dead codewords re-seeded from the worst-quantized vectors.

Everything is plain float32 torch; the search also runs on CUDA tensors. Used by
:class:`engine.tokenize.rvq.ResidualVQ` (fit and CPU encode).
"""

from __future__ import annotations

import numpy as np
import torch

# Upper bound on the float32 distance block one search chunk materializes (bytes). 64 MiB keeps
# CPU caches and worker memory flat for any N while still giving the GEMM large tiles.
DIST_BLOCK_BYTES = 64 * 2**20
# CPU search chunk (rows): a [K=256, 4096] float32 block is 4 MiB, which stays in L2/L3 between
# the GEMM that writes it and the argmin that reads it (measured ~1.8x faster than 64k rows).
CPU_CHUNK_ROWS = 4096


def chunk_rows(codebook_size: int) -> int:
    """Rows per chunk that keep a ``[rows, codebook_size]`` float32 block under the bound."""
    return max(1, DIST_BLOCK_BYTES // (4 * codebook_size))


# --------------------------------------------------------------------------------------------
# Nearest-codeword search (CPU / generic torch path)


def nearest_codewords(x: torch.Tensor, codebook: torch.Tensor,
                      codebook_sq_norms: torch.Tensor | None = None) -> torch.Tensor:
    """Index of the nearest codeword of each row, by the GEMM form, in bounded memory.

    Args:
        x: float32 [N, D] (CPU or CUDA).
        codebook: float32 [K, D] on the same device.
        codebook_sq_norms: Optional precomputed ``||c||^2`` [K].

    Returns:
        int64 [N] indices. Ties go to the lowest index (torch.argmin's rule) on both paths.
    """
    if codebook_sq_norms is None:
        codebook_sq_norms = (codebook * codebook).sum(dim=1)
    n, k = x.shape[0], codebook.shape[0]
    idx = torch.empty(n, dtype=torch.int64, device=x.device)
    step = chunk_rows(k) if x.is_cuda else CPU_CHUNK_ROWS
    if x.is_cuda:
        ct = codebook.t()
        for start in range(0, n, step):
            # addmm fuses the bias add into the GEMM: dist = ||c||^2 - 2 x.c
            dist = torch.addmm(codebook_sq_norms.unsqueeze(0), x[start:start + step], ct, beta=1.0, alpha=-2.0)
            idx[start:start + step] = dist.argmin(dim=1)
        return idx
    # CPU: distances are formed transposed, [K, rows], so the argmin runs down columns, which
    # vectorizes (elementwise compare/select over contiguous rows); torch's row-wise argmin is
    # ~5x slower and would dominate the encode time. The chunk keeps the block cache-resident.
    norms = codebook_sq_norms.unsqueeze(1)
    buf = torch.empty(k, min(step, n), dtype=torch.float32)
    idx_np = idx.numpy()
    for start in range(0, n, step):
        xs = x[start:start + step]
        dist = buf[:, : xs.shape[0]]
        torch.addmm(norms, codebook, xs.t(), beta=1.0, alpha=-2.0, out=dist)
        _argmin_columns(dist.numpy(), idx_np[start:start + xs.shape[0]])
    return idx


def _argmin_columns(dist: np.ndarray, out: np.ndarray) -> None:
    global _ARGMIN_COLUMNS
    if _ARGMIN_COLUMNS is None:
        _ARGMIN_COLUMNS = _compile_argmin_columns()
    _ARGMIN_COLUMNS(dist, out)


_ARGMIN_COLUMNS = None


def _compile_argmin_columns():
    """numba kernel: out[i] = argmin_k dist[k, i], first index on ties (lazy: compile on use)."""
    import numba

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def argmin_columns(dist, out):  # pragma: no cover - compiled
        k, n = dist.shape
        best = dist[0].copy()
        for i in range(n):
            out[i] = 0
        for j in range(1, k):
            row = dist[j]
            for i in range(n):
                v = row[i]
                if v < best[i]:  # strict: the lowest index wins ties
                    best[i] = v
                    out[i] = j

    return argmin_columns


def _sq_dist_to_assigned(x: torch.Tensor, codebook: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return ((x - codebook[idx]) ** 2).sum(dim=1)


# --------------------------------------------------------------------------------------------
# k-means pieces


def kmeanspp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (D^2 sampling). ``x`` must have at least one row."""
    n = x.shape[0]
    centers = torch.empty(k, x.shape[1], dtype=x.dtype)
    first = int(torch.randint(n, (1,), generator=gen))
    centers[0] = x[first]
    d2 = ((x - centers[0]) ** 2).sum(dim=1)
    for i in range(1, k):
        total = float(d2.sum())
        if total <= 0.0:
            # All remaining mass sits on chosen points (fewer distinct vectors than k):
            # pick uniformly; duplicates become dead codes and are handled by re-seeding.
            j = int(torch.randint(n, (1,), generator=gen))
        else:
            j = int(torch.multinomial(d2 / total, 1, generator=gen))
        centers[i] = x[j]
        d2 = torch.minimum(d2, ((x - centers[i]) ** 2).sum(dim=1))
    return centers


def lloyd(x: torch.Tensor, centers: torch.Tensor, iters: int) -> tuple[torch.Tensor, int]:
    """Lloyd iterations with dead-code re-seeding. Returns (centers, dead codes re-seeded)."""
    k = centers.shape[0]
    reseeded = 0
    prev: torch.Tensor | None = None
    for _ in range(iters):
        idx = nearest_codewords(x, centers)
        counts = torch.bincount(idx, minlength=k)
        sums = torch.zeros_like(centers).index_add_(0, idx, x)
        alive = counts > 0
        new = centers.clone()
        new[alive] = sums[alive] / counts[alive].unsqueeze(1).to(x.dtype)
        dead = (~alive).nonzero().flatten()
        if dead.numel():
            # Re-seed each dead codeword on one of the currently worst-quantized vectors:
            # that is where an extra codeword buys the largest error drop. Deterministic.
            err = _sq_dist_to_assigned(x, new, idx)
            take = min(dead.numel(), x.shape[0])
            worst = torch.topk(err, take).indices
            new[dead[:take]] = x[worst]
            reseeded += int(dead.numel())
        centers = new
        if prev is not None and dead.numel() == 0 and torch.equal(idx, prev):
            break
        prev = idx
    return centers, reseeded
