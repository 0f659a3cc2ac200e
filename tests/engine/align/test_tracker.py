"""SyncTracker: validation, convergence to the offline estimate with bounded state."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InvalidInputError
from engine.media.decode import MediaConfig, iter_segments
from engine.media.synth import SynthSpec
from engine.align.config import SyncConfig
from engine.align.sync import estimate_sync
from engine.align.tracker import SyncTracker


def _errors_ms(est, truth) -> np.ndarray:
    tv = np.array([e.t_video_s for e in truth.events])
    ta = np.array([e.t_audio_s for e in truth.events])
    return np.abs(est.warp_at(tv) - ta) * 1000.0


def test_config_and_tracker_validation():
    with pytest.raises(InvalidInputError):
        SyncConfig(max_offset_ms=0)
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
    assert max(s["split_snapshots"] for s in sizes) <= SyncConfig().split_max_snapshots
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
