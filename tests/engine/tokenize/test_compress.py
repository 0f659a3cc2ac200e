"""Hierarchical compression: exact timestamps, budget, keyframes, audio runs."""

from __future__ import annotations

import numpy as np
import pytest

from engine.tokenize.compress import CompressionConfig, merge_audio_runs, merge_regions, select_keyframes
from engine.errors import InvalidInputError
from engine.tokenize.features import Features


def _region_features(n_frames: int, rows: int, cols: int, dim: int, seed: int = 0) -> Features:
    rng = np.random.default_rng(seed)
    per = rows * cols
    r, c = np.divmod(np.arange(per), cols)
    # irregular frame times (as from a real decoder), so any interpolation would show
    t = np.cumsum(rng.integers(30_000, 40_000, size=n_frames)).astype(np.int64)
    return Features(values=rng.normal(size=(n_frames * per, dim)).astype(np.float32), t_us=np.repeat(t, per),
                    row=np.tile(r, n_frames).astype(np.int32), col=np.tile(c, n_frames).astype(np.int32),
                    frame_index=np.repeat(np.arange(n_frames), per).astype(np.int32))


def test_merged_tokens_keep_exact_source_time_and_region_and_budget():
    feats = _region_features(6, 4, 5, 8)
    codes = np.arange(len(feats) * 2).reshape(-1, 2)
    cfg = CompressionConfig(budget_tokens_per_s=30.0)
    out = merge_regions(feats, codes, np.arange(6), duration_us=1_000_000, config=cfg)
    assert out.tokens_out <= 30 and out.tokens_in == 120
    assert out.compression_ratio == pytest.approx(120 / out.tokens_out)
    src = out.source_index
    np.testing.assert_array_equal(out.t_us, feats.t_us[src])
    np.testing.assert_array_equal(out.row, feats.row[src])
    np.testing.assert_array_equal(out.col, feats.col[src])
    np.testing.assert_array_equal(out.codes, codes[src])
    assert set(out.t_us) <= set(feats.t_us)
    assert out.num_regions.sum() == 120  # every region of every kept frame is in exactly one token


def test_merging_joins_similar_neighbours_first():
    # one frame, 1 x 4 grid: left half one colour, right half another -> 2 tokens = the halves
    vals = np.array([[1, 0], [1.01, 0], [0, 1], [0, 1.02]], np.float32)
    feats = Features(values=vals, t_us=np.full(4, 7, np.int64), row=np.zeros(4, np.int32),
                     col=np.arange(4, dtype=np.int32), frame_index=np.zeros(4, np.int32))
    out = merge_regions(feats, np.zeros((4, 1), np.int64), np.array([0]), 1_000_000,
                        CompressionConfig(budget_tokens_per_s=2))
    assert sorted(out.num_regions.tolist()) == [2, 2]
    assert sorted(out.col.tolist()) in ([0, 2], [0, 3], [1, 2], [1, 3])


def test_budget_smaller_than_keyframes_keeps_first_frame():
    feats = _region_features(10, 2, 2, 4)
    out = merge_regions(feats, np.zeros((40, 1), np.int64), np.arange(10), 100_000,
                        CompressionConfig(budget_tokens_per_s=30))  # 3 tokens for 0.1 s
    assert out.tokens_out == 3 and 0 in out.keyframes


def test_keyframes_keep_first_and_scene_cuts():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=64), rng.normal(size=64)
    frames = np.stack([a, a * 1.01, a * 1.02, b, b, b * 1.01, a])  # cuts at 3 and 6
    kept = select_keyframes(frames, CompressionConfig(keyframe_threshold=0.5, scene_cut_threshold=0.5))
    np.testing.assert_array_equal(kept, [0, 3, 6])
    # slow drift accumulates against the last keyframe, not the previous frame
    drift = np.stack([a + 0.1 * i * b for i in range(10)])
    kept = select_keyframes(drift, CompressionConfig(keyframe_threshold=0.3, scene_cut_threshold=5.0))
    assert kept[0] == 0 and 1 < len(kept) < 10


def test_audio_runs_keep_first_frame_time():
    codes = np.array([[1, 2, 3], [1, 2, 4], [1, 2, 5], [7, 0, 0], [7, 0, 0], [1, 2, 3]])
    t = np.array([10, 20_010, 40_010, 60_010, 80_010, 100_010], np.int64)
    out = merge_audio_runs(codes, t, hop_us=20_000, match_stages=2)
    np.testing.assert_array_equal(out.t_us, [10, 60_010, 100_010])
    np.testing.assert_array_equal(out.frame_count, [3, 2, 1])
    np.testing.assert_array_equal(out.duration_us, [60_000, 40_000, 20_000])
    np.testing.assert_array_equal(out.codes, codes[[0, 3, 5]])
    assert out.compression_ratio == 2.0
    strict = merge_audio_runs(codes, t, hop_us=20_000, match_stages=None)
    assert strict.tokens_out == 5


def test_compress_errors_are_typed():
    with pytest.raises(InvalidInputError, match="codes"):
        merge_audio_runs(np.zeros((0, 2)), np.zeros(0, np.int64))
    feats = _region_features(2, 2, 2, 4)
    with pytest.raises(InvalidInputError) as info:
        merge_regions(feats, np.zeros((3, 1)), np.arange(2), 1_000_000, CompressionConfig())
    assert info.value.input == "codes"


def test_group_representative_is_the_member_nearest_the_mean_first_on_ties():
    from engine.tokenize.compress import group_representatives

    values = np.array([[0.0, 0.0], [2.0, 0.0], [5.0, 5.0], [9.0, 9.0], [5.0, 6.0], [5.0, 4.0]])
    labels = np.array([0, 0, 2, 3, 2, 2])
    rep, mean, size = group_representatives(values, labels)
    # group 0: two members equidistant from their mean -> the first; group 2: the middle one
    assert rep.tolist() == [0, 2, 3] and size.tolist() == [2, 3, 1]
    np.testing.assert_allclose(mean, [[1.0, 0.0], [5.0, 5.0], [9.0, 9.0]])
