"""Online DTW (engine.align.oltw): monotonic, bounded, and close to the offline path on warped copies."""

from __future__ import annotations

import numpy as np
import pytest

from engine.align.dtw import dtw
from engine.errors import InvalidInputError
from engine.align.oltw import OLTWConfig, OnlineDTW, online_dtw_path

# Documented accuracy bound on the warped-copy family below (smooth random 4-D features,
# tempo 1 +/- 0.35, noise 0.05): for every row i, |mean j of the online path - mean j of the
# offline exact path| averaged over rows <= 1 frame, and at most 8 frames for any row.
MEAN_BOUND_FRAMES = 1.0
MAX_BOUND_FRAMES = 8.0


def _warped_pair(seed: int, n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + 50, 4))
    kernel = np.ones(8) / 8
    a = np.stack([np.convolve(x[:, c], kernel, "valid")[:n] for c in range(4)], 1)
    rate = 1 + 0.35 * np.sin(np.linspace(0, 2 * np.pi * rng.uniform(0.5, 2), 3 * n) + rng.uniform(0, 6))
    pos = np.cumsum(rate)
    pos = pos[pos < n - 1]
    b = np.stack([np.interp(pos, np.arange(n), a[:, c]) for c in range(4)], 1)
    return a, b + 0.05 * rng.normal(size=b.shape)


def _mean_col_per_row(path: np.ndarray, n: int) -> np.ndarray:
    s = np.zeros(n)
    c = np.zeros(n)
    np.add.at(s, path[:, 0], path[:, 1])
    np.add.at(c, path[:, 0], 1)
    return s / c


def _assert_valid_path(path: np.ndarray, n: int, m: int) -> None:
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (n - 1, m - 1)
    steps = np.diff(path, axis=0)
    assert ((steps == [1, 1]).all(1) | (steps == [1, 0]).all(1) | (steps == [0, 1]).all(1)).all()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("window", [32, 128])
def test_online_path_close_to_offline_on_warped_copies(seed: int, window: int) -> None:
    a, b = _warped_pair(seed)
    online = online_dtw_path(a, b, OLTWConfig(window_frames=window))
    _assert_valid_path(online, len(a), len(b))
    offline = dtw(a, b).path
    diff = np.abs(_mean_col_per_row(online, len(a)) - _mean_col_per_row(offline, len(a)))
    assert diff.mean() <= MEAN_BOUND_FRAMES
    assert diff.max() <= MAX_BOUND_FRAMES


def test_chunking_and_push_order_do_not_change_the_path() -> None:
    a, b = _warped_pair(11, n=300)
    cfg = OLTWConfig(window_frames=64)
    p1 = online_dtw_path(a, b, cfg, chunk_frames=1)
    p7 = online_dtw_path(a, b, cfg, chunk_frames=7)
    o = OnlineDTW(cfg)
    parts = [o.push_b(b[:40]), o.push_a(a[:100]), o.push_b(b[40:]), o.push_a(a[100:]), o.finish()]
    p_mixed = np.concatenate(parts)
    assert np.array_equal(p1, p7) and np.array_equal(p1, p_mixed)


def test_identical_streams_give_the_diagonal() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=(200, 3))
    path = online_dtw_path(a, a, OLTWConfig(window_frames=16))
    assert np.array_equal(path, np.stack([np.arange(200)] * 2, 1))


def test_points_are_emitted_without_look_ahead() -> None:
    """A point is emitted as soon as both frames it needs exist (bounded latency)."""
    rng = np.random.default_rng(4)
    a = rng.normal(size=(100, 2))
    o = OnlineDTW(OLTWConfig(window_frames=16))
    for k in range(100):
        o.push_a(a[k : k + 1])
        o.push_b(a[k : k + 1])
        assert o.head == (k, k)


def test_memory_is_bounded_on_long_streams() -> None:
    rng = np.random.default_rng(6)
    o = OnlineDTW(OLTWConfig(window_frames=32, max_lead_frames=64))
    sizes = None
    n_points = 0
    for _ in range(200):
        x = rng.normal(size=(50, 2))
        o.push_a(x)
        n_points += len(o.push_b(x + 0.1 * rng.normal(size=x.shape)))
        now = [x.nbytes for x in (o._acc, o._fa, o._fb, o._row_id)]
        assert sizes is None or now == sizes
        sizes = now
    assert n_points >= 10_000 - 64  # all pushed frames were consumed, nothing piles up


def test_stalled_stream_raises_instead_of_growing() -> None:
    o = OnlineDTW(OLTWConfig(window_frames=16, max_lead_frames=100))
    o.push_b(np.zeros((1, 1)))
    with pytest.raises(InvalidInputError) as exc:
        for _ in range(20):
            o.push_a(np.zeros((10, 1)))
    assert exc.value.input == "frames_a"


@pytest.mark.parametrize(
    ("cfg", "name"),
    [
        ({"window_frames": 1}, "window_frames"),
        ({"max_run_frames": 0}, "max_run_frames"),
        ({"max_lead_frames": 0}, "max_lead_frames"),
        ({"metric": "l1"}, "metric"),  # type: ignore[arg-type]
    ],
)
def test_bad_config(cfg: dict, name: str) -> None:
    # OLTWConfig validates in __post_init__: the bad config is built inside the raises block.
    with pytest.raises(InvalidInputError) as exc:
        OnlineDTW(OLTWConfig(**cfg))
    assert exc.value.input == name


def test_bad_frames() -> None:
    o = OnlineDTW(OLTWConfig(window_frames=8))
    with pytest.raises(InvalidInputError):
        o.push_a(np.array([[1.0, np.nan]]))
    o.push_a(np.zeros((2, 2)))
    with pytest.raises(InvalidInputError):
        o.push_b(np.zeros((2, 3)))
    with pytest.raises(InvalidInputError):
        o.push_b(np.zeros((2, 2, 2)))
    o.finish()
    with pytest.raises(InvalidInputError):
        o.push_a(np.zeros((1, 2)))
    with pytest.raises(InvalidInputError):
        online_dtw_path(np.zeros((0, 2)), np.zeros((3, 2)))
