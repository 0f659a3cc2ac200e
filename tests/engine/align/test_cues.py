"""Cue signals: onset timing, silence/static -> zero, chunking invariance, PTS placement."""

from __future__ import annotations

import numpy as np
import pytest

from engine.align.cues import (
    AudioCueExtractor,
    CueConfig,
    VideoCueExtractor,
    VideoCues,
    audio_on_grid,
    concat_audio,
    concat_video,
    normalize_audio,
    pick_events,
    video_on_grid,
)
from engine.errors import InvalidInputError

SR = 16_000


def _noise(n: int, seed: int = 0, level: float = 0.003) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * level).astype(np.float32)


@pytest.mark.parametrize("onset_sample", [8_000, 8_005, 8_013])
def test_audio_onset_peaks_within_a_millisecond(onset_sample):
    x = _noise(SR)
    x[onset_sample : onset_sample + 800] += 0.5 * np.cos(2 * np.pi * 1000 * np.arange(800) / SR)
    cues = AudioCueExtractor(SR).push(x, 0)
    t_peak_us = cues.times_us()[int(np.argmax(cues.rise_db))]
    assert abs(t_peak_us - onset_sample * 1e6 / SR) <= 1000
    assert cues.rise_db.max() > 30


def test_audio_silence_and_noise_floor_give_a_zero_cue():
    cfg = CueConfig()
    for x in (np.zeros(SR, np.float32), _noise(SR, level=0.003)):
        cues = AudioCueExtractor(SR, cfg).push(x, 0)
        assert normalize_audio(cues.rise_db, cfg).max() == 0.0


def test_audio_chunked_equals_whole():
    x = _noise(3 * SR, seed=1)
    x[20_000:20_400] += 0.6
    whole = AudioCueExtractor(SR).push(x, 0)
    ex = AudioCueExtractor(SR)
    parts = [ex.push(x[a:b], 0) for a, b in ((0, 7_777), (7_777, 31_003), (31_003, len(x)))]
    joined = concat_audio(parts)
    np.testing.assert_allclose(joined.rise_db, whole.rise_db, rtol=1e-5, atol=1e-5)
    assert joined.t0_us == whole.t0_us and parts[1].t0_us == 486_000  # 7777 samples -> 486 whole ms


def test_audio_rejects_bad_rate_and_shape():
    with pytest.raises(InvalidInputError):
        AudioCueExtractor(22_050)  # 1 kHz onset grid does not divide 22.05 kHz
    with pytest.raises(InvalidInputError):
        AudioCueExtractor(SR).push(np.zeros((2, 10)), 0)


def _frames(n: int, moving: bool = True, flash_at: int | None = None) -> np.ndarray:
    f = np.full((n, 48, 64, 3), 80, np.uint8)
    for k in range(n):
        if moving:
            x = int(20 + 15 * np.sin(k / 8.0))
            f[k, 20:28, x : x + 8] = (230, 60, 40)
        if flash_at is not None and k in (flash_at, flash_at + 1):
            f[k] = 255
    return f


def test_video_static_is_zero_and_steady_motion_stays_under_the_floor():
    cfg = CueConfig()
    t = np.arange(60, dtype=np.int64) * 40_000
    static = VideoCueExtractor(cfg).push(_frames(60, moving=False), t)
    assert static.novelty.max() == 0.0
    moving = VideoCueExtractor(cfg).push(_frames(60), t)
    assert moving.novelty[5:].max() < cfg.video_floor


def test_video_flash_is_stamped_at_its_frame_pts_with_irregular_times():
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.integers(30_000, 50_000, size=50)).astype(np.int64)
    frames = _frames(50, flash_at=30)
    whole = VideoCueExtractor().push(frames, t)
    # Switching on (frame 30) and off (frame 32) are both changes; the onset is the first.
    assert whole.novelty[30] > 100 and whole.novelty[31] < 1.0
    assert pick_events(t, whole.novelty, 50.0, 150_000).tolist() == [30]
    ex = VideoCueExtractor()
    joined = concat_video([ex.push(frames[:17], t[:17]), ex.push(frames[17:], t[17:])])
    np.testing.assert_allclose(joined.novelty, whole.novelty)
    cfg = CueConfig()
    grid = video_on_grid(whole, 0, int(t[-1] // 10_000) + 1, cfg)
    assert int(np.flatnonzero(grid >= 1.0)[0]) == int(t[30] // 10_000)  # the bin holding the PTS, not k * 40 ms


def _novelty_reference(frames: np.ndarray, cfg: CueConfig) -> np.ndarray:
    """The novelty definition, frame by frame: excess of each region's mean absolute grey change
    over the median of the previous changes (up to ``video_history_frames``)."""
    step = max(1, int(np.ceil(max(frames.shape[1:3]) / cfg.video_max_side_px)))
    grey = frames[:, ::step, ::step].astype(np.float64).mean(axis=3)
    rows, cols = cfg.video_regions
    rb = np.linspace(0, grey.shape[1], rows + 1).astype(int)
    cb = np.linspace(0, grey.shape[2], cols + 1).astype(int)
    out, hist = np.zeros(len(frames)), []
    for k in range(1, len(frames)):
        diff = np.abs(grey[k] - grey[k - 1])
        change = np.array([diff[rb[r]:rb[r + 1], cb[c]:cb[c + 1]].mean() for r in range(rows) for c in range(cols)])
        base = np.median(hist[-cfg.video_history_frames:], axis=0) if hist else np.zeros_like(change)
        excess = np.maximum(0.0, change - base)
        out[k] = (excess.mean() + excess.max()) / 2
        hist.append(change)
    return out


@pytest.mark.parametrize("chunks", [(60,), (1, 1, 3, 55), (7, 0, 20, 33)])
def test_video_novelty_matches_its_frame_by_frame_definition_for_any_chunking(chunks):
    rng = np.random.default_rng(11)
    frames = rng.integers(0, 256, size=(60, 50, 70, 3), dtype=np.uint8)
    frames[20:25] = frames[20]  # a static stretch: zero change, the baseline must decay to it
    cfg = CueConfig(video_regions=(3, 4), video_history_frames=5, video_max_side_px=40)
    ex, parts, start = VideoCueExtractor(cfg), [], 0
    for n in chunks:
        parts.append(ex.push(frames[start:start + n], np.arange(start, start + n, dtype=np.int64) * 40_000).novelty)
        start += n
    np.testing.assert_allclose(np.concatenate(parts), _novelty_reference(frames, cfg), rtol=1e-5, atol=1e-4)


def test_grid_placement_of_audio_uses_max_pooling():
    cfg = CueConfig()
    x = _noise(SR)
    x[4_840:5_600] += 0.5  # onset at 302.5 ms -> 100 Hz bin 30
    grid = audio_on_grid(AudioCueExtractor(SR, cfg).push(x, 0), 0, 100, cfg)
    assert int(np.argmax(grid)) == 30 and grid[30] == pytest.approx(1.0)


def test_pick_events_keeps_the_first_of_close_onsets():
    t = np.array([0, 40_000, 80_000, 400_000, 420_000], np.int64)
    s = np.array([1.0, 0.0, 1.0, 0.5, 0.9])
    assert pick_events(t, s, 0.4, 150_000).tolist() == [0, 3]
    assert pick_events(t, s, 2.0, 150_000).tolist() == []


def test_empty_video_chunks():
    out = concat_video([])
    assert isinstance(out, VideoCues) and len(out.t_us) == 0
    cues = VideoCueExtractor().push(np.zeros((0, 48, 64, 3), np.uint8), np.zeros(0, np.int64))
    assert len(cues.novelty) == 0
