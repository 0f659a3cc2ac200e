"""Exact dynamic time warping (full and Sakoe–Chiba banded), compiled with numba.

Conventions (chosen to match ``dtaidistance`` exactly, and ``librosa.sequence.dtw`` on the same
local-cost matrix):

* Local cost ``c(i, j)`` between frame ``i`` of ``a`` and frame ``j`` of ``b``:

  - ``metric="euclidean"`` and ``"sqeuclidean"``: squared Euclidean ``sum_k (a[i,k] - b[j,k])**2``;
  - ``metric="cosine"``: ``1 - <a_i, b_j> / (|a_i| |b_j|)``; an all-zero frame has cost 1 to
    everything (orthogonal), so a silent/static stretch is neutral instead of NaN.

* Accumulated cost ``D[i, j] = c(i, j) + min(D[i-1, j-1], D[i-1, j], D[i, j-1])`` with
  ``D[-1, -1] = 0`` and every other out-of-matrix or out-of-band cell ``+inf``.
* ``distance = sqrt(D[N-1, M-1])`` for ``"euclidean"`` (what ``dtaidistance.dtw.distance``
  returns), ``D[N-1, M-1]`` for ``"sqeuclidean"`` and ``"cosine"``.
* Path tie-breaking: when predecessors tie, the diagonal ``(i-1, j-1)`` wins, then ``(i-1, j)``,
  then ``(i, j-1)`` — the order of ``dtaidistance.dtw.best_path`` (argmin over
  ``[diag, up, left]``). ``librosa`` prefers ``(i, j-1)`` over ``(i-1, j)``, so on inputs with
  ties the two references can return different (equal-cost) paths; see the tests.
* Band: cell ``(i, j)`` is inside iff ``lo <= j - i <= hi``. ``window_frames=r`` is the
  Sakoe–Chiba band ``|i - j| <= r``; it needs ``r >= |N - M|`` or no path reaches the corner.
  ``dtaidistance``'s ``window=w`` is a band skewed by ``|N - M|``; convert it with
  :func:`dtaidistance_band_offsets`.

Memory: the path variant keeps two rolling rows of float64 accumulated cost plus one int8
direction per in-band cell (not a float64 matrix), then backtracks from the directions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np

from engine.errors import InvalidInputError, check_fields

Metric = Literal["euclidean", "sqeuclidean", "cosine"]

_METRIC_CODE = {"euclidean": 0, "sqeuclidean": 0, "cosine": 1}
_COST_MATRIX_CODE = 2

# Direction codes stored per cell (int8): which predecessor the cell's minimum came from.
DIR_DIAG, DIR_UP, DIR_LEFT = 0, 1, 2


@dataclass(frozen=True)
class DTWConfig:
    """Parameters of exact DTW.

    Attributes:
        metric: Local cost, see the module docstring.
        window_frames: Sakoe–Chiba radius in frames: only cells with ``|i - j| <= window_frames``
            are allowed. ``None`` = full matrix.
        band_offsets: Explicit ``(lo, hi)`` with ``lo <= j - i <= hi``; overrides
            ``window_frames`` (use :func:`dtaidistance_band_offsets` to reproduce
            ``dtaidistance``'s ``window``).
    """

    metric: Metric = "euclidean"
    window_frames: int | None = None
    band_offsets: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        check_fields(self, non_negative=("window_frames",))
        if self.metric not in _METRIC_CODE:
            raise InvalidInputError("metric", f"unknown metric {self.metric!r}; use one of {sorted(_METRIC_CODE)}")
        if self.band_offsets is not None and self.band_offsets[0] > self.band_offsets[1]:
            raise InvalidInputError("band_offsets", f"need lo <= hi, got {self.band_offsets}")


@dataclass(frozen=True)
class DTWResult:
    """Result of exact DTW.

    Attributes:
        distance: ``sqrt(accumulated_cost)`` for ``"euclidean"``, else ``accumulated_cost``.
        accumulated_cost: ``D[N-1, M-1]``, in local-cost units.
        path: int64 ``[L, 2]`` array of ``(i, j)`` from ``(0, 0)`` to ``(N-1, M-1)``, each step
            one of ``(1, 1)``, ``(1, 0)``, ``(0, 1)``; ``None`` when not requested.
    """

    distance: float
    accumulated_cost: float
    path: np.ndarray | None


def dtaidistance_band_offsets(n: int, m: int, window: int) -> tuple[int, int]:
    """Band ``(lo, hi)`` equal to ``dtaidistance``'s ``window=window`` for lengths ``n``, ``m``.

    ``dtaidistance`` allows row ``i`` the columns
    ``max(0, i - max(0, n - m) - window + 1) <= j < i + max(0, m - n) + window``.
    """
    if window <= 0:
        return (-(n - 1), m - 1)
    return (-(max(0, n - m) + window - 1), max(0, m - n) + window - 1)


# ----------------------------------------------------------------------------------------------
# validation


def as_frames(x: object, name: str) -> np.ndarray:
    """Validate a 1-D series or ``[N, D]`` feature sequence; return C-contiguous float64 ``[N, D]``.

    Raises:
        InvalidInputError: Not numeric, not 1-D/2-D, empty, or holding NaN/inf.
    """
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists etc.
        raise InvalidInputError(name, f"not an array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise InvalidInputError(name, f"dtype {arr.dtype} is not numeric")
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim != 2:
        raise InvalidInputError(name, f"expected a 1-D series or [N, D] frames, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(name, f"empty sequence (shape {arr.shape})")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise InvalidInputError(name, "contains NaN or inf")
    return arr


def resolve_band(n: int, m: int, config: DTWConfig) -> tuple[int, int]:
    """Band ``(lo, hi)`` for lengths ``n``, ``m`` clipped to the matrix; raise if it has no path."""
    if config.band_offsets is not None:
        lo, hi = (int(v) for v in config.band_offsets)
        what = f"band_offsets={config.band_offsets}"
    elif config.window_frames is not None:
        r = int(config.window_frames)
        if r < 0:
            raise InvalidInputError("window_frames", f"must be >= 0, got {r}")
        lo, hi = -r, r
        what = f"window_frames={r}"
    else:
        return (-(n - 1), m - 1)
    # Both corners (0,0) (j-i=0) and (N-1,M-1) (j-i=M-N) must be inside; then a path exists.
    if not (lo <= 0 <= hi and lo <= m - n <= hi):
        name = "band_offsets" if config.band_offsets is not None else "window_frames"
        raise InvalidInputError(
            name, f"{what} leaves no warping path for lengths N={n}, M={m} (needs |N-M|={abs(n - m)} inside the band)"
        )
    return (max(lo, -(n - 1)), min(hi, m - 1))


def _prepare(a: object, b: object, config: DTWConfig) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    if config.metric not in _METRIC_CODE:
        raise InvalidInputError("metric", f"unknown metric {config.metric!r}; use one of {sorted(_METRIC_CODE)}")
    fa, fb = as_frames(a, "a"), as_frames(b, "b")
    if fa.shape[1] != fb.shape[1]:
        raise InvalidInputError("b", f"feature dim {fb.shape[1]} != dim of a {fa.shape[1]}")
    code = _METRIC_CODE[config.metric]
    if code == 1:
        fa, fb = unit_rows(fa), unit_rows(fb)
    lo, hi = resolve_band(fa.shape[0], fb.shape[0], config)
    return fa, fb, code, lo, hi


def unit_rows(x: np.ndarray) -> np.ndarray:
    # Normalising once turns cosine cost into 1 - dot; zero rows stay zero -> cost 1.
    norm = np.sqrt((x * x).sum(axis=1, keepdims=True))
    return np.ascontiguousarray(np.divide(x, norm, out=np.zeros_like(x), where=norm > 0))


# ----------------------------------------------------------------------------------------------
# numba kernels


@numba.njit(inline="always", nogil=True)
def _cell_cost(code, A, B, i, j):
    if code == _COST_MATRIX_CODE:
        return A[i, j]
    dim = A.shape[1]
    if code == 0:
        if dim == 1:
            d = A[i, 0] - B[j, 0]
            return d * d
        s = 0.0
        for k in range(dim):
            d = A[i, k] - B[j, k]
            s += d * d
        return s
    s = 0.0
    for k in range(dim):
        s += A[i, k] * B[j, k]
    return 1.0 - s


@numba.njit(cache=True, nogil=True)
def _accumulate(code, A, B, n, m, lo, hi, dirs):
    """Fill ``dirs`` (``[n, W]`` int8, row ``i`` starting at column ``max(0, i+lo)``) if it has
    rows, and return ``D[n-1, m-1]``. Two rolling rows padded by one column (index ``j+1``)."""
    want_dirs = dirs.shape[0] > 0
    prev = np.full(m + 1, np.inf)
    cur = np.full(m + 1, np.inf)
    prev[0] = 0.0  # D[-1, -1]
    for i in range(n):
        js = max(0, i + lo)
        je = min(m - 1, i + hi)
        cur[js] = np.inf  # column js-1: outside band / matrix
        left = np.inf  # carried in a register: it is the loop-carried dependency
        for j in range(js, je + 1):
            c = _cell_cost(code, A, B, i, j)
            best = prev[j]
            k = 0
            u = prev[j + 1]
            if u < best:
                best = u
                k = 1
            if left < best:
                best = left
                k = 2
            left = c + best
            cur[j + 1] = left
            if want_dirs:
                dirs[i, j - js] = k
        if je + 2 <= m:
            cur[je + 2] = np.inf  # column je+1, read as "up" by the next row if the band moves
        prev, cur = cur, prev
    return prev[m]


@numba.njit(cache=True, nogil=True)
def _backtrack(dirs, n, m, lo):
    path = np.empty((n + m - 1, 2), np.int64)
    i = n - 1
    j = m - 1
    L = 0
    while True:
        path[L, 0] = i
        path[L, 1] = j
        L += 1
        if i == 0 and j == 0:
            break
        k = dirs[i, j - max(0, i + lo)]
        if k == 0:
            i -= 1
            j -= 1
        elif k == 1:
            i -= 1
        else:
            j -= 1
    return path[:L][::-1].copy()


def _run(code: int, A: np.ndarray, B: np.ndarray, n: int, m: int, lo: int, hi: int, with_path: bool):
    width = min(m, hi - lo + 1)
    dirs = np.empty((n, width) if with_path else (0, 1), np.int8)
    acc = float(_accumulate(code, A, B, n, m, lo, hi, dirs))
    path = _backtrack(dirs, n, m, lo) if with_path else None
    return acc, path


# ----------------------------------------------------------------------------------------------
# public API


def dtw(a: object, b: object, config: DTWConfig | None = None, *, with_path: bool = True) -> DTWResult:
    """Exact DTW between two sequences.

    Args:
        a: 1-D series ``[N]`` or feature sequence ``[N, D]``.
        b: 1-D series ``[M]`` or feature sequence ``[M, D]`` (same ``D``).
        config: Metric and band; default full-matrix Euclidean (``dtaidistance`` convention).
        with_path: Also return the optimal path (costs one int8 per in-band cell).

    Returns:
        :class:`DTWResult`.

    Raises:
        InvalidInputError: Empty/NaN/non-numeric input, feature-dim mismatch, unknown metric,
            or a band that leaves no path.
    """
    config = config or DTWConfig()
    A, B, code, lo, hi = _prepare(a, b, config)
    acc, path = _run(code, A, B, A.shape[0], B.shape[0], lo, hi, with_path)
    return DTWResult(_distance(config.metric, acc), acc, path)


def dtw_distance(a: object, b: object, config: DTWConfig | None = None) -> float:
    """DTW distance only (no direction matrix); see :func:`dtw`."""
    return dtw(a, b, config, with_path=False).distance


def dtw_from_cost(cost: object, config: DTWConfig | None = None, *, with_path: bool = True) -> DTWResult:
    """Exact DTW on a precomputed local-cost matrix ``cost[N, M]``.

    ``config.metric`` is ignored except that ``"euclidean"`` reports ``sqrt`` of the
    accumulated cost; pass ``DTWConfig(metric="sqeuclidean")`` to get it unchanged.

    Raises:
        InvalidInputError: Not a finite non-empty 2-D array, or a band that leaves no path.
    """
    config = config or DTWConfig(metric="sqeuclidean")
    C = as_frames(cost, "cost")
    if np.asarray(cost).ndim != 2:
        raise InvalidInputError("cost", f"expected a [N, M] matrix, got shape {np.asarray(cost).shape}")
    n, m = C.shape
    lo, hi = resolve_band(n, m, config)
    acc, path = _run(_COST_MATRIX_CODE, C, C, n, m, lo, hi, with_path)
    return DTWResult(_distance(config.metric, acc), acc, path)


def local_cost_matrix(a: object, b: object, metric: Metric = "euclidean") -> np.ndarray:
    """Dense local-cost matrix ``[N, M]`` with this module's convention (for checks and plots)."""
    A, B, code, _, _ = _prepare(a, b, DTWConfig(metric=metric))
    if code == 1:
        return 1.0 - A @ B.T
    return ((A[:, None, :] - B[None, :, :]) ** 2).sum(-1)


def path_cost(cost: np.ndarray, path: np.ndarray) -> float:
    """Sum of ``cost`` over the cells of ``path`` (to compare equal-cost paths under ties)."""
    path = np.asarray(path)
    return float(np.asarray(cost)[path[:, 0], path[:, 1]].sum())


def _distance(metric: str, acc: float) -> float:
    return float(np.sqrt(acc)) if metric == "euclidean" else acc


def warm_up() -> None:
    """Compile the numba kernels (first call otherwise pays ~seconds of JIT)."""
    x = np.zeros(3)
    dtw(x, x)
    dtw(x, x, with_path=False)
    dtw(np.zeros((3, 2)), np.ones((3, 2)), DTWConfig(metric="cosine"))
    dtw_from_cost(np.ones((3, 3)))
