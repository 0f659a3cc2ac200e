"""Sync estimation on real encodes (synth -> PyAV -> engine.media), fit/warp units, SyncTracker."""

from __future__ import annotations

import numpy as np
import pytest

from engine.cues import AudioCueExtractor, VideoCueExtractor
from engine.errors import InvalidInputError
from engine.media import MediaConfig, iter_segments
from engine.synth import SynthSpec
from engine.sync import (
    LOW_CONFIDENCE,
    SyncConfig,
    SyncTracker,
    WarpRun,
    build_warp,
    estimate_from_cues,
    estimate_sync,
    extract_cues,
    fit_pairs,
    global_xcorr_offset_ms,
)

# (offset_ms, drift_ppm, splices): the corners of ±500 ms × ±1000 ppm, and splices both ways.
ACCURACY_CASES = [
    (-500, -1000, ()),
    (500, 1000, ()),
    (150, -1000, ()),
    (-200, 1000, ((7.0, 150.0),)),
    (300, 0, ((6.0, -120.0),)),
]


def _errors_ms(est, truth) -> np.ndarray:
    tv = np.array([e.t_video_s for e in truth.events])
    ta = np.array([e.t_audio_s for e in truth.events])
    return np.abs(est.warp_at(tv) - ta) * 1000.0


@pytest.mark.parametrize("offset_ms,drift_ppm,splices", ACCURACY_CASES)
def test_warp_error_at_ground_truth_events(clip_factory, offset_ms, drift_ppm, splices):
    spec = SynthSpec(duration_s=12.0, offset_ms=offset_ms, drift_ppm=drift_ppm, splices=splices, speech=True,
                     vfr_jitter=0.3, seed=abs(offset_ms) + len(splices))
    truth = clip_factory(spec, f"acc_{offset_ms}_{drift_ppm}_{len(splices)}.mp4")
    est = estimate_sync(truth.path)
    err = _errors_ms(est, truth)
    assert len(err) >= 8
    assert np.median(err) <= 10.0 and err.max() <= 40.0, err.round(1)
    assert est.confidence >= 0.5
    assert abs(est.offset_ms - offset_ms) <= 5.0
    assert len(est.runs) == 1 + len(splices)
    if not splices:
        assert abs(est.drift_ppm - drift_ppm) <= 150.0
    w = est.warp
    assert w[0, 0] <= 0.0 and w[-1, 0] >= 12.0 - 0.05
    assert np.all(np.diff(w[:, 0]) > 0) and np.all(np.diff(w[:, 1]) >= 0)


def test_naive_baseline_cannot_follow_a_splice(clip_factory):
    spec = SynthSpec(duration_s=12.0, offset_ms=-200, splices=((7.0, 150.0),), speech=True, vfr_jitter=0.3, seed=201)
    truth = clip_factory(spec, "naive_splice.mp4")
    video, audio, _ = extract_cues(truth.path)
    naive = global_xcorr_offset_ms(video, audio) / 1000.0
    tv = np.array([e.t_video_s for e in truth.events])
    ta = np.array([e.t_audio_s for e in truth.events])
    assert np.abs(tv + naive - ta).max() * 1000 > 300  # one offset is wrong on one side of the splice
    assert _errors_ms(estimate_sync(truth.path), truth).max() <= 40.0


def test_clip_with_a_single_event_has_low_confidence(clip_factory):
    # Real encode: moving object and speech-like noise throughout, one paired event (at 0.5 s):
    # one coincidence is not a measurement.
    spec = SynthSpec(duration_s=8.0, event_every_s=100.0, speech=True, seed=5)
    truth = clip_factory(spec, "one_event.mp4")
    assert len(truth.events) == 1
    assert estimate_sync(truth.path).confidence < LOW_CONFIDENCE


def test_silent_audio_or_static_video_gives_low_confidence(clip_factory):
    spec = SynthSpec(duration_s=10.0, offset_ms=120, speech=True, seed=9)
    truth = clip_factory(spec, "for_silence.mp4")
    video, audio, end_us = extract_cues(truth.path)
    assert estimate_from_cues(video, audio, t_start_us=0, t_end_us=end_us).confidence >= 0.5
    # Near-silence (-50 dBFS noise) in place of the audio.
    rng = np.random.default_rng(0)
    silent = AudioCueExtractor(16_000).push((rng.standard_normal(end_us * 16 // 1000) * 0.003).astype(np.float32), 0)
    est = estimate_from_cues(video, silent, t_start_us=0, t_end_us=end_us)
    assert est.confidence < LOW_CONFIDENCE and est.offset_ms == 0.0
    # A constant picture in place of the video.
    n = end_us // 40_000
    static = VideoCueExtractor().push(np.full((n, 48, 64, 3), 90, np.uint8), np.arange(n, dtype=np.int64) * 40_000)
    assert estimate_from_cues(static, audio, t_start_us=0, t_end_us=end_us).confidence < LOW_CONFIDENCE


def test_fit_pairs_recovers_runs_drift_and_rejects_outliers():
    rng = np.random.default_rng(1)
    tv = np.sort(rng.uniform(0.5, 30.0, 30))
    offset = np.where(tv < 15.0, 0.2, -0.1)
    ta = offset + tv * (1 + 700e-6) + rng.normal(0, 0.0005, len(tv))
    ta[[4, 20]] += np.array([0.35, -0.5])  # two stray matches
    fit = fit_pairs(tv, ta, SyncConfig())
    assert fit is not None and len(fit.runs) == 2
    assert abs(fit.drift_ppm - 700) < 60
    assert abs(fit.runs[0].offset_ms - 200) < 1.5 and abs(fit.runs[1].offset_ms + 100) < 1.5
    assert not fit.inliers[4] and not fit.inliers[20] and fit.inliers.sum() >= 26
    assert fit_pairs(tv[:2], ta[:2], SyncConfig()) is None


def test_build_warp_is_monotonic_across_a_backward_jump():
    runs = [WarpRun(0.5, 4.0, 300.0, 5), WarpRun(6.0, 9.0, -100.0, 4)]
    w = build_warp(runs, 0.0, 0.0, 10.0)
    assert w[0, 0] == 0.0 and w[-1, 0] == 10.0
    assert np.all(np.diff(w[:, 0]) > 0) and np.all(np.diff(w[:, 1]) >= 0)
    # Exact on both runs away from the transition.
    from engine.sync import SyncEstimate

    est = SyncEstimate(300.0, 0.0, 1.0, w, runs, 9)
    assert est.warp_at(3.0) == pytest.approx(3.3) and est.warp_at(8.0) == pytest.approx(7.9)


def test_config_and_tracker_validation():
    with pytest.raises(InvalidInputError):
        SyncConfig(max_offset_ms=0).validate()
    with pytest.raises(InvalidInputError):
        SyncTracker(window_s=2.0)


@pytest.mark.slow
def test_tracker_converges_to_offline_with_bounded_state(clip_factory):
    spec = SynthSpec(duration_s=20.0, offset_ms=-300, drift_ppm=800, splices=((10.0, 100.0),), speech=True,
                     vfr_jitter=0.3, seed=21)
    truth = clip_factory(spec, "tracker.mp4")
    offline = estimate_sync(truth.path)
    tracker = SyncTracker(window_s=8.0, max_pairs=64)
    assert tracker.estimate().confidence == 0.0  # nothing seen yet
    sizes = []
    for seg in iter_segments(truth.path, MediaConfig(segment_s=2.0, video_width=64, video_height=48)):
        est = tracker.push(seg)
        sizes.append(tracker.state_size)
    assert max(s["audio_cue_frames"] for s in sizes) <= 8_000 + 2_000  # window + one segment at 1 kHz
    assert max(s["video_cue_frames"] for s in sizes) <= 26 * 10
    assert abs(est.offset_ms - offline.offset_ms) <= 2.0
    assert abs(est.drift_ppm - offline.drift_ppm) <= 100.0
    assert len(est.runs) == len(offline.runs) == 2
    tv = np.array([e.t_video_s for e in truth.events])
    assert np.abs(est.warp_at(tv) - offline.warp_at(tv)).max() * 1000 <= 5.0
    assert _errors_ms(est, truth).max() <= 40.0
    assert est.confidence >= 0.5 and tracker.warp_at(5.0) == pytest.approx(est.warp_at(5.0))


def test_tracker_max_pairs_bounds_the_evidence(clip_factory):
    spec = SynthSpec(duration_s=12.0, offset_ms=80, speech=True, seed=33)
    truth = clip_factory(spec, "tracker_small.mp4")
    tracker = SyncTracker(max_pairs=6)
    for seg in iter_segments(truth.path, MediaConfig(video_width=64, video_height=48)):
        tracker.push(seg)
        assert tracker.state_size["pairs"] <= 6
    assert abs(tracker.estimate().offset_ms - 80) <= 5.0
