"""Batched exact DTW distance in torch: many equal-length pairs at once, anti-diagonal wavefront.

Same recurrence, local costs, band and distance convention as :mod:`engine.align.dtw` (read its
docstring). Cells on anti-diagonal ``k = i + j`` depend only on diagonals ``k-1`` and ``k-2``,
so one diagonal of all pairs is one vector operation. Diagonals are stored indexed by the row
``i``: ``(i, j-1)`` on diagonal ``k-1`` is the same lane, ``(i-1, j)`` and ``(i-1, j-1)`` are the
lane one to the left on diagonals ``k-1`` and ``k-2``.

The local cost is computed per diagonal from the two sequences (no ``[B, N, M]`` cost tensor).
Only distances are returned (no path): batched use is for scoring many candidate pairs.

:func:`batched_dtw` picks the fused Triton kernel (:mod:`engine.align.kernels.dtw_triton`) for CUDA
tensors when Triton imports, else this torch loop. Triton is imported lazily.
"""

from __future__ import annotations

from typing import Literal

import torch

from engine.align.dtw import DTWConfig, resolve_band
from engine.errors import InvalidInputError

Backend = Literal["auto", "torch", "triton"]


def _check_pairs(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``[B, N]``/``[B, N, D]`` and ``[B, M]``/``[B, M, D]``; return ``[B, N, D]`` views."""
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, torch.Tensor):
            raise InvalidInputError(name, f"expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim not in (2, 3):
            raise InvalidInputError(name, f"expected [B, N] or [B, N, D], got shape {tuple(x.shape)}")
        if x.numel() == 0:
            raise InvalidInputError(name, f"empty batch or sequence (shape {tuple(x.shape)})")
        if not x.is_floating_point():
            raise InvalidInputError(name, f"dtype {x.dtype} is not floating point")
        if not bool(torch.isfinite(x).all()):
            raise InvalidInputError(name, "contains NaN or inf")
    a3 = a if a.ndim == 3 else a.unsqueeze(-1)
    b3 = b if b.ndim == 3 else b.unsqueeze(-1)
    if a3.shape[0] != b3.shape[0]:
        raise InvalidInputError("b", f"batch size {b3.shape[0]} != batch size of a {a3.shape[0]}")
    if a3.shape[2] != b3.shape[2]:
        raise InvalidInputError("b", f"feature dim {b3.shape[2]} != dim of a {a3.shape[2]}")
    if a3.device != b3.device or a3.dtype != b3.dtype:
        raise InvalidInputError("b", f"device/dtype {b3.device}/{b3.dtype} != a's {a3.device}/{a3.dtype}")
    return a3, b3


def _unit(x: torch.Tensor) -> torch.Tensor:
    n = x.norm(dim=-1, keepdim=True)
    return torch.where(n > 0, x / torch.where(n > 0, n, torch.ones_like(n)), torch.zeros_like(x))


def dtw_torch(a: torch.Tensor, b: torch.Tensor, lo: int, hi: int, cosine: bool = False) -> torch.Tensor:
    """Accumulated cost ``D[N-1, M-1]`` per pair by the anti-diagonal torch loop.

    Args:
        a: ``[B, N, D]`` (already unit-normalised when ``cosine``).
        b: ``[B, M, D]``.
        lo, hi: Band ``lo <= j - i <= hi`` (already validated/clipped).
        cosine: Local cost ``1 - <a_i, b_j>`` instead of squared Euclidean.

    Returns:
        ``[B]`` accumulated costs, dtype of the inputs.
    """
    B, N, _ = a.shape
    M = b.shape[1]
    dev, dt = a.device, a.dtype
    inf = torch.tensor(float("inf"), device=dev, dtype=dt)
    i = torch.arange(N, device=dev)
    prev1 = torch.full((B, N), float("inf"), device=dev, dtype=dt)
    # shift(prev2) at k=0: lane 0 sees D[-1, -1] = 0 on its diagonal predecessor.
    sh2 = torch.full((B, N), float("inf"), device=dev, dtype=dt)
    sh2[:, 0] = 0
    pad = torch.full((B, 1), float("inf"), device=dev, dtype=dt)
    for k in range(N + M - 1):
        j = k - i
        valid = (j >= 0) & (j < M) & (j - i >= lo) & (j - i <= hi)
        bj = b[:, j.clamp(0, M - 1)]  # [B, N, D]
        if cosine:
            c = 1.0 - (a * bj).sum(-1)
        else:
            c = ((a - bj) ** 2).sum(-1)
        sh1 = torch.cat([pad, prev1[:, :-1]], dim=1)  # D(i-1, j) = lane i-1 of diagonal k-1
        best = torch.minimum(torch.minimum(sh2, sh1), prev1)
        cur = torch.where(valid, c + best, inf)
        sh2, prev1 = sh1, cur
    return prev1[:, N - 1].clone()


def batched_dtw(
    a: torch.Tensor, b: torch.Tensor, config: DTWConfig | None = None, backend: Backend = "auto"
) -> torch.Tensor:
    """DTW distance of ``B`` pairs ``(a[p], b[p])`` at once.

    Args:
        a: ``[B, N]`` series or ``[B, N, D]`` frames (float; CPU or CUDA).
        b: ``[B, M]`` or ``[B, M, D]``, same device/dtype/``D``.
        config: Metric and band as in :func:`engine.align.dtw.dtw` (``window_frames`` or
            ``band_offsets``); distances follow the same convention.
        backend: ``"torch"`` (any device), ``"triton"`` (CUDA, or CPU under
            ``TRITON_INTERPRET=1``; computes in float32), or ``"auto"`` (Triton for CUDA tensors
            when Triton imports, else torch).

    Returns:
        ``[B]`` distances on the input device (float32 for Triton, input dtype for torch).

    Raises:
        InvalidInputError: Bad shapes/values, unknown backend or metric, band without a path.
    """
    config = config or DTWConfig()
    if config.metric not in ("euclidean", "sqeuclidean", "cosine"):
        raise InvalidInputError("metric", f"unknown metric {config.metric!r}")
    if backend not in ("auto", "torch", "triton"):
        raise InvalidInputError("backend", f"unknown backend {backend!r}")
    a3, b3 = _check_pairs(a, b)
    N, M = a3.shape[1], b3.shape[1]
    lo, hi = resolve_band(N, M, config)
    cosine = config.metric == "cosine"
    if cosine:
        a3, b3 = _unit(a3), _unit(b3)
    use_triton = backend == "triton"
    if backend == "auto" and a3.is_cuda:
        try:
            import triton  # noqa: F401  - only probing availability

            use_triton = True
        except ImportError:
            use_triton = False
    if use_triton:
        from engine.align.kernels.dtw_triton import dtw_triton

        acc = dtw_triton(a3, b3, lo, hi, cosine=cosine)
    else:
        acc = dtw_torch(a3, b3, lo, hi, cosine=cosine)
    return acc.sqrt() if config.metric == "euclidean" else acc
