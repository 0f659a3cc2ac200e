"""Sync on continuously coupled content (issue #12's failure modes): a mouth-like region that
follows a speech-like envelope inside an unrelated, moving picture; drift that a short clip must
not get; silent audio / static picture; the streaming tracker converging to the offline estimate;
the lag curves accumulated in pieces equal to one pass."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.data.media_io import encode_clip
from engine.align.coarse import LagCorrelator
from engine.align.config import LOW_CONFIDENCE, SyncConfig
from engine.align.cues import AudioCueExtractor, VideoCueExtractor
from engine.align.sync import estimate_from_cues, estimate_sync, extract_cues
from engine.align.tracker import SyncTracker
from engine.align.warp_fit import fit_pairs
from engine.media.decode import MediaConfig, iter_segments

RATE = 16_000
FPS = 25.0


def _envelope(duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Speech-like loudness at 1 kHz: syllables of 120–300 ms in phrases, pauses between."""
    env = np.zeros(int(duration_s * 1000))
    t = int(rng.uniform(200, 500))
    while t < len(env) - 300:
        for _ in range(int(rng.integers(2, 7))):  # one phrase
            d = int(rng.uniform(120, 300))
            if t + d > len(env):
                break
            env[t:t + d] = np.sin(np.linspace(0, np.pi, d)) ** 1.5 * rng.uniform(0.4, 1.0)
            t += d + int(rng.uniform(10, 60))
        t += int(rng.uniform(300, 900))
    return env


def make_mouth_clip(path, duration_s: float = 10.0, offset_ms: float = 230.0, seed: int = 0,
                    splice: tuple[float, float] | None = None) -> None:
    """Writes a clip: panning texture (unrelated motion), a dark mouth whose opening follows the
    envelope, and speech-like noise with that envelope, heard ``offset_ms`` late (``splice``:
    ``(t_s, jump_ms)``, from ``t_s`` on heard ``jump_ms`` later still)."""
    rng = np.random.default_rng(seed)
    env = _envelope(duration_s, rng)
    tex = (rng.uniform(40, 200, size=(120, 320, 3))).astype(np.uint8)
    tex = np.clip(np.cumsum(tex.astype(np.float32) - 120, axis=1) * 0.02 + 120, 0, 255).astype(np.uint8)

    def frames():
        for j in range(int(duration_s * FPS)):
            t = j / FPS
            x0 = int(80 + 70 * np.sin(2 * np.pi * 0.07 * t))
            img = tex[:, x0:x0 + 160].copy()
            yy, xx = np.mgrid[-15:16, -20:21]
            face = img[70 - 15:70 + 16, 100 - 20:100 + 21]
            face[(xx / 20.0) ** 2 + (yy / 15.0) ** 2 <= 1] = (200, 160, 130)
            o = env[min(len(env) - 1, int(t * 1000))]
            face[(xx / 11.0) ** 2 + (yy / (1.0 + 8.0 * o)) ** 2 <= 1] = (50, 10, 20)
            yield img

    n = int(duration_s * RATE)
    t_a = np.arange(n) / RATE
    tau = t_a - offset_ms / 1000.0  # audio heard late: content of video time tau
    if splice is not None:
        tau = np.where(t_a >= splice[0] + offset_ms / 1000.0, tau - splice[1] / 1000.0, tau)
    e = np.interp(tau * 1000.0, np.arange(len(env)), env, left=0.0, right=0.0)
    noise = np.convolve(rng.standard_normal(n), np.ones(6) / 6, mode="same")
    audio = (0.3 * e * noise + 0.002 * rng.standard_normal(n)).astype(np.float32)
    encode_clip(path, frames(), FPS, audio, RATE)


@pytest.fixture(scope="module")
def mouth_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("coupled") / "mouth.mp4"
    make_mouth_clip(path)
    return str(path)


def test_mouth_region_clip_is_found_within_20ms(mouth_clip):
    est = estimate_sync(mouth_clip)
    assert abs(est.offset_ms - 230.0) <= 20.0, est.offset_ms
    assert est.confidence >= 0.5 and not est.low_confidence
    assert abs(est.drift_ppm) <= 200.0
    assert abs(est.warp_at(5.0) - (5.0 + 0.230)) <= 0.020


@pytest.mark.parametrize("offset_ms,seed", [(-350.0, 1), (90.0, 2)])
def test_ten_second_coupled_clip_never_gets_large_drift(tmp_path, offset_ms, seed):
    path = tmp_path / "c.mp4"
    make_mouth_clip(path, 10.0, offset_ms, seed)
    est = estimate_sync(str(path))
    assert abs(est.drift_ppm) <= 200.0
    assert len(est.runs) == 1  # no breakpoint without evidence on both sides
    assert abs(est.offset_ms - offset_ms) <= 20.0


def test_scattered_pairs_over_ten_seconds_get_no_drift():
    # Onsets matched to the wrong syllables scatter by tens of ms: whatever slope they suggest
    # over 10 s, it is not a clock.
    rng = np.random.default_rng(3)
    for _ in range(20):
        tv = np.sort(rng.uniform(0, 10, 12))
        ta = tv + 0.1 + rng.uniform(-0.02, 0.02, len(tv)) + np.linspace(0, 0.015, len(tv))
        fit = fit_pairs(tv, ta, SyncConfig())
        assert fit is None or abs(fit.drift_ppm) <= 200.0


def test_silent_audio_or_static_picture_gives_low_confidence_with_the_global_estimate(mouth_clip):
    video, audio, end_us = extract_cues(mouth_clip)
    rng = np.random.default_rng(0)
    silent = AudioCueExtractor(RATE).push((rng.standard_normal(end_us * 16 // 1000) * 0.003).astype(np.float32), 0)
    est = estimate_from_cues(video, silent, t_start_us=0, t_end_us=end_us)
    assert est.confidence < LOW_CONFIDENCE and est.low_confidence
    assert est.method == "global" and est.offset_ms == est.diagnostics.global_lag.lag_ms
    n = end_us // 40_000
    static = VideoCueExtractor().push(np.full((n, 48, 64, 3), 90, np.uint8), np.arange(n, dtype=np.int64) * 40_000)
    est = estimate_from_cues(static, audio, t_start_us=0, t_end_us=end_us)
    assert est.confidence < LOW_CONFIDENCE and est.method in ("global", "none")


def _tracked_and_offline(path: str):
    """The tracker's final estimate (1 s segments, 6 s window) and the offline one."""
    tracker = SyncTracker(window_s=6.0, max_pairs=64)
    for seg in iter_segments(path, MediaConfig(segment_s=1.0, video_width=64, video_height=48)):
        est = tracker.push(seg)
    return est, estimate_sync(path)


def test_streaming_tracker_ends_within_5ms_of_offline(mouth_clip):
    est, offline = _tracked_and_offline(mouth_clip)
    t = np.linspace(0.5, 9.5, 19)
    assert np.abs(est.warp_at(t) - offline.warp_at(t)).max() * 1000.0 <= 5.0
    assert est.method == offline.method and abs(est.confidence - offline.confidence) <= 0.05


def test_lag_curves_accumulated_in_pieces_equal_one_pass():
    rng = np.random.default_rng(5)
    v, a = rng.standard_normal((700, 5)), rng.standard_normal((690, 4))
    whole = LagCorrelator(5, 4, 30, block_bins=100)
    whole.add(v, a)
    whole.advance(final=True)
    parts = LagCorrelator(5, 4, 30, block_bins=100)
    for k in range(0, 700, 97):
        parts.add(v[k:k + 97], a[k:k + 97])
        parts.advance()
    parts.advance(final=True)
    np.testing.assert_allclose(parts.curves(), whole.curves(), atol=1e-9)
    np.testing.assert_allclose(parts.naive_curve(), whole.naive_curve(), atol=1e-9)
    # Lag 0 of the whole stream is the plain Pearson correlation over the 690 common bins.
    r = np.corrcoef(v[:690, 2], a[:, 1])[0, 1]
    assert whole.curves()[2, 1, 30] == pytest.approx(r, abs=1e-9)


@pytest.fixture(scope="module")
def spliced_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("coupled") / "spliced.mp4"
    make_mouth_clip(path, 14.0, -60.0, seed=4, splice=(7.0, 160.0))
    return str(path)


def _truth_s(t, offset_ms=-60.0, splice=(7.0, 160.0)):
    return t + (offset_ms + np.where(t >= splice[0], splice[1], 0.0)) / 1000.0


def test_a_splice_in_continuously_coupled_content_is_found_on_both_sides(spliced_clip):
    est = estimate_sync(spliced_clip)
    assert len(est.runs) == 2 and not est.low_confidence
    t = np.concatenate([np.arange(0.5, 6.4, 0.1), np.arange(7.6, 13.5, 0.1)])  # ±0.6 s of the splice apart
    assert np.abs(est.warp_at(t) - _truth_s(t)).max() * 1000.0 <= 20.0
    assert abs(est.runs[1].t_video_start_s - 7.0) <= 0.6


def test_streaming_tracker_finds_the_same_splice_as_offline(spliced_clip):
    est, offline = _tracked_and_offline(spliced_clip)
    t = np.arange(0.5, 13.5, 0.1)
    assert len(est.runs) == len(offline.runs) == 2
    assert np.abs(est.warp_at(t) - offline.warp_at(t)).max() * 1000.0 <= 5.0


def _fed_in_one_pass(seed: int, n_video: int, n_audio: int, **snapshots) -> tuple:
    """Random features (5 video, 4 audio) and a correlator with snapshots fed them at once."""
    rng = np.random.default_rng(seed)
    v, a = rng.standard_normal((n_video, 5)), rng.standard_normal((n_audio, 4))
    corr = LagCorrelator(5, 4, 30, block_bins=100, **snapshots)
    corr.add(v, a)
    corr.advance(final=True)
    return v, a, corr


def test_splice_snapshots_do_not_depend_on_the_chunking():
    v, a, whole = _fed_in_one_pass(6, 1000, 990, snapshot_bins=50, max_snapshots=6)
    parts = LagCorrelator(5, 4, 30, block_bins=100, snapshot_bins=50, max_snapshots=6)
    for k in range(0, 1000, 83):
        parts.add(v[k:k + 83], a[k:k + 83])
        parts.advance()
    parts.advance(final=True)
    # Points every 50 bins, thinned twice on the way (more than 6): every 200 bins at the end
    # (none at 1000: video bins past the audio's end, 990, are not paired).
    assert [k for k, _ in whole.snapshots] == [k for k, _ in parts.snapshots] == [200, 400, 600, 800]
    for k, _ in whole.snapshots:
        for before in (True, False):
            np.testing.assert_allclose(parts.span(k, before).curves(), whole.span(k, before).curves(), atol=1e-9)
    # Before + after is the whole stream.
    k = whole.snapshots[1][0]
    both = whole.span(k, True).s_fg + whole.span(k, False).s_fg
    np.testing.assert_allclose(both, whole.s_fg, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 7])
def test_the_coarse_stage_holds_the_naive_peers_curve_exactly(tmp_path, seed):
    from benchmarks.sync_accuracy import naive_curve, naive_offset_ms
    from engine.align.sync import cues_from_segments, decode_for_sync, global_lag

    path = tmp_path / "c.mp4"
    make_mouth_clip(path, 8.0, 120.0, seed)
    segs = decode_for_sync(str(path))
    video, audio, end_us = cues_from_segments(segs)
    g, corr = global_lag(video, audio, SyncConfig(), 0, end_us)
    np.testing.assert_allclose(corr.naive_curve(), naive_curve(segs), atol=1e-5)  # float32 frames
    assert abs(g.naive_lag_ms - naive_offset_ms(segs)) <= 5.0  # the same bin (sub-bin only when sure)


def test_the_splice_search_leaves_the_snapshots_as_they_were():
    from engine.align.coarse import choose_lag

    _, _, corr = _fed_in_one_pass(8, 1200, 1200, snapshot_bins=100, max_snapshots=20)
    before = [{k: x.copy() for k, x in snap.items()} for _, snap in corr.snapshots]
    for k, _ in corr.snapshots:
        for side in (True, False):
            view = corr.span(k, side)
            choose_lag(view, 100.0, SyncConfig())
            view.half_naive_curve(0)
    for (_, snap), old in zip(corr.snapshots, before):
        for name, x in old.items():
            np.testing.assert_array_equal(snap[name], x)
