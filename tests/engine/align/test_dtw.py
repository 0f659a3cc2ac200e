"""Exact DTW (engine.align.dtw) against dtaidistance, librosa and a plain-Python reference."""

from __future__ import annotations

import numpy as np
import pytest

from engine.align.dtw import (
    DTWConfig,
    dtaidistance_band_offsets,
    dtw,
    dtw_distance,
    dtw_from_cost,
    local_cost_matrix,
    path_cost,
)
from engine.errors import InvalidInputError

dtai = pytest.importorskip("dtaidistance.dtw", reason="dtaidistance (dev extra) is the reference")
dtai_ndim = pytest.importorskip("dtaidistance.dtw_ndim")


def _ref_dtw(cost: np.ndarray, lo: int, hi: int) -> tuple[float, list[tuple[int, int]]]:
    """Plain-Python DTW with the documented recurrence, band and tie order (diag, up, left)."""
    n, m = cost.shape
    D = np.full((n + 1, m + 1), np.inf)
    D[0, 0] = 0.0
    for i in range(n):
        for j in range(m):
            if lo <= j - i <= hi:
                D[i + 1, j + 1] = cost[i, j] + min(D[i, j], D[i, j + 1], D[i + 1, j])
    i, j, path = n, m, [(n - 1, m - 1)]
    while (i, j) != (1, 1):
        k = int(np.argmin([D[i - 1, j - 1], D[i - 1, j], D[i, j - 1]]))
        i, j = (i - 1, j - 1) if k == 0 else (i - 1, j) if k == 1 else (i, j - 1)
        path.append((i - 1, j - 1))
    return float(D[n, m]), path[::-1]


def _as_list(path: np.ndarray) -> list[tuple[int, int]]:
    return [(int(i), int(j)) for i, j in path]


def _check_path_shape(path: np.ndarray, n: int, m: int) -> None:
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (n - 1, m - 1)
    steps = np.diff(path, axis=0)
    assert ((steps == [1, 1]).all(1) | (steps == [1, 0]).all(1) | (steps == [0, 1]).all(1)).all()


@pytest.mark.parametrize("seed", range(6))
def test_full_matches_dtaidistance_random(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(10):
        n, m = rng.integers(2, 80, 2)
        a, b = rng.normal(size=n), rng.normal(size=m)
        res = dtw(a, b)
        assert res.distance == pytest.approx(dtai.distance_fast(a, b), rel=1e-12, abs=0)
        assert res.distance == pytest.approx(dtai.distance(a, b), rel=1e-12, abs=0)
        _, paths = dtai.warping_paths_fast(a, b)
        assert _as_list(res.path) == dtai.best_path(paths)
        assert _as_list(res.path) == dtai.warping_path(a, b, use_c=True)  # no ties on random floats
        _check_path_shape(res.path, n, m)
        assert dtw_distance(a, b) == res.distance


@pytest.mark.parametrize("seed", range(4))
def test_banded_matches_dtaidistance_window(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    for _ in range(10):
        n, m = rng.integers(2, 70, 2)
        w = int(rng.integers(1, 12))
        a, b = rng.normal(size=n), rng.normal(size=m)
        cfg = DTWConfig(band_offsets=dtaidistance_band_offsets(n, m, w))
        res = dtw(a, b, cfg)
        assert res.distance == pytest.approx(dtai.distance_fast(a, b, window=w), rel=1e-12, abs=0)
        d_py, paths = dtai.warping_paths(a, b, window=w)
        assert res.distance == pytest.approx(d_py, rel=1e-12, abs=0)
        assert _as_list(res.path) == dtai.best_path(paths)
        _check_path_shape(res.path, n, m)
        # the band really is enforced
        lo, hi = cfg.band_offsets
        assert ((res.path[:, 1] - res.path[:, 0] >= lo) & (res.path[:, 1] - res.path[:, 0] <= hi)).all()


def test_ties_follow_dtaidistance_best_path_order() -> None:
    """Small-integer series make many equal-cost predecessors.

    Exact path equality holds against ``dtaidistance.dtw.best_path`` (same tie order: diagonal,
    then (i-1, j), then (i, j-1)). dtaidistance's C ``warping_path`` breaks ties differently, so
    against it only the path *cost* is compared.
    """
    rng = np.random.default_rng(7)
    n_diff_c = 0
    for _ in range(60):
        n, m = rng.integers(2, 30, 2)
        a, b = rng.integers(0, 3, n).astype(float), rng.integers(0, 3, m).astype(float)
        res = dtw(a, b)
        _, paths = dtai.warping_paths(a, b)
        assert _as_list(res.path) == dtai.best_path(paths)
        p_c = np.array(dtai.warping_path(a, b, use_c=True))
        cost = local_cost_matrix(a, b)
        assert path_cost(cost, p_c) == path_cost(cost, res.path) == res.accumulated_cost
        n_diff_c += _as_list(res.path) != _as_list(p_c)
    assert n_diff_c > 0  # the tie case is really exercised


def test_ndim_matches_dtaidistance() -> None:
    rng = np.random.default_rng(3)
    for _ in range(15):
        n, m, d = *rng.integers(2, 50, 2), int(rng.integers(2, 6))
        a, b = rng.normal(size=(n, d)), rng.normal(size=(m, d))
        res = dtw(a, b)
        assert res.distance == pytest.approx(dtai_ndim.distance(a, b), rel=1e-12)
        _, paths = dtai_ndim.warping_paths(a, b)
        assert _as_list(res.path) == dtai.best_path(paths)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_matches_plain_python_reference_sakoe_chiba(metric: str) -> None:
    rng = np.random.default_rng(11)
    for _ in range(12):
        n = int(rng.integers(2, 25))
        m = n + int(rng.integers(-4, 5))
        m = max(m, 1)
        r = abs(n - m) + int(rng.integers(0, 4))
        a, b = rng.normal(size=(n, 3)), rng.normal(size=(m, 3))
        cfg = DTWConfig(metric=metric, window_frames=r)
        res = dtw(a, b, cfg)
        acc, path = _ref_dtw(local_cost_matrix(a, b, metric), -r, r)
        assert res.accumulated_cost == pytest.approx(acc, rel=1e-12)
        assert _as_list(res.path) == path
        assert np.abs(res.path[:, 0] - res.path[:, 1]).max() <= r


def test_librosa_same_cost_same_result() -> None:
    librosa = pytest.importorskip("librosa", reason="librosa is an optional second reference")
    rng = np.random.default_rng(5)
    for _ in range(8):
        n, m = rng.integers(2, 60, 2)
        a, b = rng.normal(size=(n, 4)), rng.normal(size=(m, 4))
        cost = local_cost_matrix(a, b)
        D, wp = librosa.sequence.dtw(C=cost)
        res = dtw(a, b, DTWConfig(metric="sqeuclidean"))
        assert res.accumulated_cost == pytest.approx(D[-1, -1], rel=1e-12)
        assert _as_list(res.path) == _as_list(wp[::-1])  # random floats: no ties
        # cosine against librosa's own cdist-based cost
        Dc, wpc = librosa.sequence.dtw(X=a.T, Y=b.T, metric="cosine")
        rc = dtw(a, b, DTWConfig(metric="cosine"))
        assert rc.distance == pytest.approx(Dc[-1, -1], rel=1e-9)
        assert _as_list(rc.path) == _as_list(wpc[::-1])


def test_dtw_from_cost_equals_dtw() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(31, 2)), rng.normal(size=(40, 2))
    cfg = DTWConfig(metric="sqeuclidean", window_frames=12)
    r1 = dtw(a, b, cfg)
    r2 = dtw_from_cost(local_cost_matrix(a, b), cfg)
    assert r1.accumulated_cost == r2.accumulated_cost
    assert np.array_equal(r1.path, r2.path)


def test_zero_frames_have_cosine_cost_one() -> None:
    a = np.zeros((4, 3))
    b = np.ones((5, 3))
    res = dtw(a, b, DTWConfig(metric="cosine"))
    assert res.accumulated_cost == pytest.approx(len(res.path) * 1.0)


def test_length_one_sequences() -> None:
    res = dtw([2.0], [1.0, 2.0, 4.0])
    assert res.accumulated_cost == pytest.approx(1 + 0 + 4)
    assert _as_list(res.path) == [(0, 0), (0, 1), (0, 2)]


@pytest.mark.parametrize(
    ("a", "b", "cfg", "name"),
    [
        ([], [1.0], None, "a"),
        ([1.0], np.zeros((0, 1)), None, "b"),
        ([1.0, np.nan], [1.0], None, "a"),
        ([1.0], [np.inf], None, "b"),
        (np.zeros((3, 2)), np.zeros((3, 3)), None, "b"),
        (np.zeros((2, 2, 2)), np.zeros(3), None, "a"),
        (["x", "y"], [1.0], None, "a"),
        (np.zeros(10), np.zeros(4), {"window_frames": 5}, "window_frames"),
        (np.zeros(4), np.zeros(4), {"window_frames": -1}, "window_frames"),
        (np.zeros(4), np.zeros(6), {"band_offsets": (0, 1)}, "band_offsets"),
        (np.zeros(4), np.zeros(4), {"metric": "manhattan"}, "metric"),  # type: ignore[arg-type]
    ],
)
def test_bad_inputs_raise_typed_errors(a, b, cfg, name) -> None:
    # Configs are given as keyword dicts: DTWConfig validates in __post_init__, so a bad one
    # must be built inside the raises block (building it at collection time broke collection).
    with pytest.raises(InvalidInputError) as exc:
        dtw(a, b, None if cfg is None else DTWConfig(**cfg))
    assert exc.value.input == name
    assert isinstance(exc.value, ValueError)


def test_window_equal_to_length_gap_is_allowed() -> None:
    res = dtw(np.arange(10.0), np.arange(4.0), DTWConfig(window_frames=6))
    assert np.abs(res.path[:, 0] - res.path[:, 1]).max() <= 6
