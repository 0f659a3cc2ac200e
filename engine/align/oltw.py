"""Online time warping (Dixon's OLTW) between two incrementally arriving frame streams.

Stream ``a`` indexes rows ``i``, stream ``b`` columns ``j``. Frames are pushed as they arrive;
after each push the aligner advances as far as the frames allow and returns the newly decided
path points. The path is Dixon's *forward* path (the sequence of alignment heads), so every
emitted point is final: it is never revised, each step is ``(1, 0)``, ``(0, 1)`` or ``(1, 1)``,
and it starts at ``(0, 0)``.

Algorithm (S. Dixon, "Live tracking of musical performances using on-line time warping",
DAFx 2005), per step at head ``(t, j)``:

* (Dixon also forces diagonal steps through the first window; that pins the start of the path
  to the diagonal for ``window_frames`` frames, so here the cost rule below applies from the start);
* if the last ``max_run_frames`` steps all advanced the same single stream, advance the other;
* otherwise find the cell with the lowest *normalised* accumulated cost on the last row ``t``
  (columns ``j-w+1..j``) and last column ``j`` (rows ``t-w+1..t``): if it is in an earlier
  row, add a column; if in an earlier column, add a row; if it is the head, add both.

Accumulated cost uses the symmetric step weights ``D = min(D_diag + 2c, D_up + c, D_left + c)``
with ``D(0,0) = 2c(0,0)``, so every path to ``(i, j)`` carries total weight ``i + j + 2`` and
``D / (i + j + 2)`` compares cells at different ``(i, j)`` fairly (the offline module uses the
unweighted recurrence to match ``dtaidistance``; this one follows Dixon).

Bounds: work per step is ``O(window_frames * D)``; memory is ``O(W^2 + (W + max_lead_frames) * D)``
with ``W`` the next power of two above ``window_frames + 1`` — nothing grows with stream length.
Latency: a point is emitted as soon as the frames it needs are pushed (zero look-ahead).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from engine.align.dtw import Metric, unit_rows
from engine.errors import InvalidInputError, check_fields

_ROW, _COL, _BOTH, _NONE = 0, 1, 2, 3
# indices into the int64 state vector
_T, _J, _RUN, _PREV, _NA, _NB, _ENDA, _ENDB = range(8)


@dataclass(frozen=True)
class OLTWConfig:
    """Parameters of :class:`OnlineDTW`.

    Attributes:
        window_frames: Search width ``c`` in frames: rows/columns computed per step and the
            farthest the head may lag the best cell. Larger tolerates larger local tempo change.
        max_run_frames: Max consecutive steps that advance only one stream (bounds the slope).
        metric: ``"euclidean"``/``"sqeuclidean"`` (squared Euclidean local cost) or ``"cosine"``.
        max_lead_frames: Max frames one stream may be pushed ahead of the path head; more is a
            caller error (the other stream is stalled), which keeps memory bounded.
    """

    window_frames: int = 256
    max_run_frames: int = 3
    metric: Metric = "euclidean"
    max_lead_frames: int = 4096

    def __post_init__(self) -> None:
        check_fields(self, positive=("window_frames", "max_run_frames", "max_lead_frames"))


@numba.njit(inline="always", nogil=True)
def _cost(code, fa, fb, ra, rb):
    s = 0.0
    if code == 0:
        for k in range(fa.shape[1]):
            d = fa[ra, k] - fb[rb, k]
            s += d * d
        return s
    for k in range(fa.shape[1]):
        s += fa[ra, k] * fb[rb, k]
    return 1.0 - s


@numba.njit(inline="always", nogil=True)
def _get(acc, row_id, row_lo, row_hi, k, l, mask):
    if k < 0 or l < 0:
        return np.inf
    s = k & mask
    if row_id[s] != k or l < row_lo[s] or l > row_hi[s] or l <= row_hi[s] - (mask + 1):
        return np.inf
    return acc[s, l & mask]


@numba.njit(cache=True, nogil=True)
def _advance(st, acc, row_id, row_lo, row_hi, fa, fb, fmask, code, w, max_run, out):
    """Advance the head while frames allow; write emitted points to ``out``; return how many."""
    mask = acc.shape[0] - 1
    n_out = 0
    while True:
        t = st[_T]
        j = st[_J]
        na = st[_NA]
        nb = st[_NB]
        if t < 0:  # first cell
            if na < 1 or nb < 1:
                return n_out
            s = 0
            row_id[s] = 0
            row_lo[s] = 0
            row_hi[s] = 0
            acc[0, 0] = 2.0 * _cost(code, fa, fb, 0, 0)
            st[_T] = 0
            st[_J] = 0
            out[n_out, 0] = 0
            out[n_out, 1] = 0
            n_out += 1
            continue
        a_done = st[_ENDA] == 1 and t == na - 1
        b_done = st[_ENDB] == 1 and j == nb - 1
        if a_done and b_done:
            return n_out
        # --- decide the increment (Dixon's GetInc), then honour stream ends
        if st[_RUN] >= max_run and st[_PREV] != _NONE:
            inc = _COL if st[_PREV] == _ROW else _ROW
        else:
            best = np.inf
            bx = t
            by = j
            s = t & mask
            for l in range(max(row_lo[s], j - w + 1), j + 1):
                v = acc[s, l & mask] / (t + l + 2)
                if v < best:
                    best = v
                    bx = t
                    by = l
            for k in range(max(0, t - w + 1), t):
                v = _get(acc, row_id, row_lo, row_hi, k, j, mask) / (k + j + 2)
                if v < best:
                    best = v
                    bx = k
                    by = j
            if bx < t:
                inc = _COL
            elif by < j:
                inc = _ROW
            else:
                inc = _BOTH
        if a_done:
            inc = _COL
        elif b_done:
            inc = _ROW
        if inc != _COL and t + 1 >= na:
            return n_out  # wait for a frame of stream a
        if inc != _ROW and j + 1 >= nb:
            return n_out  # wait for a frame of stream b
        # --- new row t+1 over columns j-w+1..j
        if inc != _COL:
            t += 1
            s = t & mask
            j0 = max(0, j - w + 1)
            row_id[s] = t
            row_lo[s] = j0
            row_hi[s] = j
            ra = t & fmask
            left = np.inf
            for l in range(j0, j + 1):
                c = _cost(code, fa, fb, ra, l & fmask)
                v = _get(acc, row_id, row_lo, row_hi, t - 1, l - 1, mask) + 2.0 * c
                u = _get(acc, row_id, row_lo, row_hi, t - 1, l, mask) + c
                if u < v:
                    v = u
                if left + c < v:
                    v = left + c
                acc[s, l & mask] = v
                left = v
        # --- new column j+1 over rows t-w+1..t
        if inc != _ROW:
            j += 1
            rb = j & fmask
            up = np.inf
            for k in range(max(0, t - w + 1), t + 1):
                s = k & mask
                c = _cost(code, fa, fb, k & fmask, rb)
                v = _get(acc, row_id, row_lo, row_hi, k - 1, j - 1, mask) + 2.0 * c
                lv = _get(acc, row_id, row_lo, row_hi, k, j - 1, mask) + c
                if lv < v:
                    v = lv
                if up + c < v:
                    v = up + c
                acc[s, j & mask] = v
                row_hi[s] = j  # rows stay contiguous: a row is extended only while in the window
                up = v
        st[_T] = t
        st[_J] = j
        if inc == st[_PREV]:
            st[_RUN] += 1
        else:
            st[_RUN] = 1
        if inc != _BOTH:
            st[_PREV] = inc
        else:
            st[_PREV] = _NONE
            st[_RUN] = 0
        out[n_out, 0] = t
        out[n_out, 1] = j
        n_out += 1


def _next_pow2(x: int) -> int:
    return 1 << (int(x) - 1).bit_length()


class OnlineDTW:
    """Incremental OLTW aligner of two frame streams with bounded memory and latency.

    Example::

        oltw = OnlineDTW(OLTWConfig(window_frames=128))
        for fa, fb in chunks:
            pts = np.concatenate([oltw.push_a(fa), oltw.push_b(fb)])
        pts_tail = oltw.finish()

    Every method returning points returns int64 ``[K, 2]`` arrays of ``(i, j)``; concatenated
    over calls they form one monotonic path from ``(0, 0)`` (to ``(N-1, M-1)`` after
    :meth:`finish`).
    """

    def __init__(self, config: OLTWConfig | None = None) -> None:
        self.config = config or OLTWConfig()
        c = self.config
        if c.window_frames < 2:
            raise InvalidInputError("window_frames", f"must be >= 2, got {c.window_frames}")
        if c.max_run_frames < 1:
            raise InvalidInputError("max_run_frames", f"must be >= 1, got {c.max_run_frames}")
        if c.max_lead_frames < 1:
            raise InvalidInputError("max_lead_frames", f"must be >= 1, got {c.max_lead_frames}")
        if c.metric not in ("euclidean", "sqeuclidean", "cosine"):
            raise InvalidInputError("metric", f"unknown metric {c.metric!r}")
        self._code = 1 if c.metric == "cosine" else 0
        W = _next_pow2(c.window_frames + 2)
        self._acc = np.full((W, W), np.inf)
        self._row_id = np.full(W, -1, np.int64)
        self._row_lo = np.zeros(W, np.int64)
        self._row_hi = np.full(W, -1, np.int64)
        self._fcap = _next_pow2(c.window_frames + 2 + c.max_lead_frames)
        self._fa: np.ndarray | None = None  # frame rings, allocated on the first push (dim known)
        self._fb: np.ndarray | None = None
        self._st = np.array([-1, -1, 0, _NONE, 0, 0, 0, 0], np.int64)
        self._out = np.empty((64, 2), np.int64)

    @property
    def head(self) -> tuple[int, int]:
        """Last emitted path point ``(i, j)``, ``(-1, -1)`` before the first."""
        return int(self._st[_T]), int(self._st[_J])

    @property
    def frames_pushed(self) -> tuple[int, int]:
        """Frames pushed so far on streams ``a`` and ``b``."""
        return int(self._st[_NA]), int(self._st[_NB])

    def push_a(self, frames: object) -> np.ndarray:
        """Append frames (``[K]`` or ``[K, D]``) of stream ``a``; return new path points."""
        self._push(frames, "a")
        return self._run()

    def push_b(self, frames: object) -> np.ndarray:
        """Append frames (``[K]`` or ``[K, D]``) of stream ``b``; return new path points."""
        self._push(frames, "b")
        return self._run()

    def step(self, frames_a: object, frames_b: object) -> np.ndarray:
        """Push frames of both streams (either may be empty) and return new path points."""
        for frames, name in ((frames_a, "a"), (frames_b, "b")):
            if np.asarray(frames).size:
                self._push(frames, name)
        return self._run()

    def finish(self) -> np.ndarray:
        """Mark both streams ended and drive the path to ``(N-1, M-1)``; return the last points."""
        self._st[_ENDA] = 1
        self._st[_ENDB] = 1
        return self._run()

    # ------------------------------------------------------------------------------------------

    def _push(self, frames: object, name: str) -> None:
        arr = np.asarray(frames, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise InvalidInputError(f"frames_{name}", f"expected [K] or [K, D], got shape {arr.shape}")
        if arr.shape[0] == 0:
            return
        if not np.isfinite(arr).all():
            raise InvalidInputError(f"frames_{name}", "contains NaN or inf")
        if self._st[_ENDA if name == "a" else _ENDB]:
            raise InvalidInputError(f"frames_{name}", "stream already finished")
        if self._fa is None:
            self._fa = np.zeros((self._fcap, arr.shape[1]))
            self._fb = np.zeros((self._fcap, arr.shape[1]))
        ring = self._fa if name == "a" else self._fb
        if arr.shape[1] != ring.shape[1]:
            raise InvalidInputError(f"frames_{name}", f"feature dim {arr.shape[1]} != {ring.shape[1]}")
        if self._code == 1:
            arr = unit_rows(arr)
        n_idx = _NA if name == "a" else _NB
        head = self._st[_T] if name == "a" else self._st[_J]
        n = int(self._st[n_idx])
        k = arr.shape[0]
        # Frames beyond the head wait in the ring, which also keeps the last window of consumed
        # frames; refusing more than max_lead_frames is what keeps memory bounded.
        lead = n + k - 1 - int(head)
        if lead > self.config.max_lead_frames:
            raise InvalidInputError(
                f"frames_{name}",
                f"stream {name} would lead the alignment head by {lead} frames "
                f"(> max_lead_frames={self.config.max_lead_frames}); push the other stream",
            )
        idx = np.arange(n, n + k) & (self._fcap - 1)
        ring[idx] = arr
        self._st[n_idx] = n + k

    def _run(self) -> np.ndarray:
        if self._fa is None:
            return np.empty((0, 2), np.int64)
        na, nb = self._st[_NA], self._st[_NB]
        t, j = self._st[_T], self._st[_J]
        need = int((na - t) + (nb - j) + 2)  # each step advances t or j by >= 1
        if self._out.shape[0] < need:
            self._out = np.empty((_next_pow2(need), 2), np.int64)
        k = _advance(
            self._st, self._acc, self._row_id, self._row_lo, self._row_hi, self._fa, self._fb,
            self._fcap - 1, self._code, self.config.window_frames, self.config.max_run_frames, self._out,
        )
        return self._out[:k].copy()


def online_dtw_path(a: object, b: object, config: OLTWConfig | None = None, chunk_frames: int = 1) -> np.ndarray:
    """Run :class:`OnlineDTW` over two whole sequences, pushing ``chunk_frames`` at a time.

    Returns the full int64 ``[L, 2]`` path from ``(0, 0)`` to ``(N-1, M-1)`` (for tests/offline use).
    """
    oltw = OnlineDTW(config)
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape[0] == 0 or b.shape[0] == 0:
        raise InvalidInputError("a" if a.shape[0] == 0 else "b", "empty sequence")
    pts = []
    for s in range(0, max(len(a), len(b)), chunk_frames):
        pts.append(oltw.step(a[s : s + chunk_frames], b[s : s + chunk_frames]))
    pts.append(oltw.finish())
    return np.concatenate(pts)
