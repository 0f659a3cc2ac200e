"""Masked audio-code reconstruction on synthetic code streams with a known answer: the audio is
loud exactly while a video region flashes, quiet codes are random, so only the video (at the
right time) can fill a masked span. A trained model's shift curve must bottom out at zero shift,
and at the offset of a stream whose audio runs late."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import InvalidInputError
from engine.train.code_streams import CodeStreams
from engine.train.masked import MaskedCodeModel, MaskedConfig
from engine.train.shift_curve import MaskedTrainConfig, curve_offset_us, shift_curve, train_masked
from engine.train.windows import WindowConfig, collate, cut_window, span_mask

K, R = 8, 4


def flashing(name: str, duration_s: float, seed: int, audio_late_us: int = 0) -> CodeStreams:
    rng = np.random.default_rng(seed)
    v_t = np.arange(int(duration_s * 25)) * 40_000
    flash = np.zeros(len(v_t), bool)
    for start in rng.choice(len(v_t) - 6, size=int(duration_s * 1.2), replace=False):
        flash[start:start + int(rng.integers(2, 6))] = True
    video = rng.integers(2, K, size=(len(v_t), R, 1))
    video[flash, 1, 0] = 1  # region 1 lights up
    a_t = np.arange(int(duration_s * 100)) * 10_000 + 5_000
    loud = flash[np.minimum(a_t // 40_000, len(v_t) - 1)]
    audio = rng.integers(2, K, size=(len(a_t), 2))
    audio[loud, 0] = 1
    return CodeStreams(name, audio, a_t + audio_late_us, video, v_t)


WINDOWS = WindowConfig(window_us=2_000_000, jitter_us=200_000, span_us=200_000, mask_ratio=0.4)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = MaskedCodeModel(MaskedConfig(2, K, 1, K, R, region_dim=4, target_levels=1, d_model=32, n_layers=2,
                                     n_heads=2, dropout=0.0))
    history = train_masked(m, [flashing(f"s{i}", 20.0, i) for i in range(4)], WINDOWS,
                           MaskedTrainConfig(steps=600, batch_size=16, lr=3e-3))
    # Without the video the best loss is the codes' entropy (≈ 1.94 nats here); with it, ≈ 1.5.
    assert history[-1] < 0.9 * history[0]
    return m


def test_the_shift_curve_of_aligned_streams_is_lowest_at_zero(model):
    shifts = np.arange(-400_000, 400_001, 40_000)
    curve = shift_curve(model, flashing("eval", 12.0, 99), WINDOWS, shifts)
    offset_us, contrast = curve_offset_us(curve, shifts)
    assert abs(offset_us) <= 20_000 and contrast > 0.1
    assert curve[0] > curve[len(shifts) // 2] and curve[-1] > curve[len(shifts) // 2]


def test_the_curve_finds_the_offset_of_late_audio(model):
    shifts = np.arange(-400_000, 400_001, 40_000)
    curve = shift_curve(model, flashing("late", 12.0, 98, audio_late_us=200_000), WINDOWS, shifts)
    offset_us, _ = curve_offset_us(curve, shifts)
    assert abs(offset_us - 200_000) <= 30_000


def test_a_shift_relabels_content_and_keeps_the_window_edges():
    s = flashing("x", 10.0, 1)
    mask = span_mask(120, WINDOWS, 20_000, np.random.default_rng(0))
    w0 = cut_window(s, 3_000_000, 3_100_000, WINDOWS, mask)
    w1 = cut_window(s, 3_000_000, 3_100_000, WINDOWS, mask, shift_us=200_000)
    # The audio (what the loss scores) is the same; the video shows, at the same labels, the frames
    # of 200 ms later.
    assert (w0["audio"] == w1["audio"]).all() and (w0["audio_t"] == w1["audio_t"]).all()
    assert w0["video_t"][0] == w1["video_t"][0] and len(w0["video"]) == len(w1["video"])
    i = np.searchsorted(s.video_t_us, 3_000_000 + 200_000)
    assert (w1["video"][0] == s.video_codes[i]).all()
    batch = collate([w0, w1])
    assert batch["audio"].shape[0] == 2 and not batch["mask"][batch["audio_pad"]].any()


def test_bad_shapes_and_configs_are_named():
    with pytest.raises(InvalidInputError, match="target_levels"):
        MaskedConfig(2, K, 1, K, R, target_levels=3)
    with pytest.raises(InvalidInputError, match="jitter_us"):
        WindowConfig(window_us=1_000_000, jitter_us=1_000_000)
    with pytest.raises(InvalidInputError, match="audio_codes"):
        CodeStreams("bad", np.zeros((3,), np.int64), np.zeros(3, np.int64), np.zeros((2, R, 1), np.int64),
                    np.zeros(2, np.int64))
    with pytest.raises(InvalidInputError, match="too short"):
        shift_curve(MaskedCodeModel(MaskedConfig(2, K, 1, K, R, d_model=32, n_heads=2)), flashing("short", 2.5, 0),
                    WINDOWS, np.array([-400_000, 0, 400_000]))
