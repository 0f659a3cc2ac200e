"""The aligner actor on a real local Ray: each segment's own estimate, or a fallback that says so."""

from __future__ import annotations

import pytest

from actors.aligner import AlignerActor, alignments_for
from engine.align.config import SyncConfig
from engine.align.cues import SegmentCueExtractor
from engine.media.decode import MediaConfig, iter_segments
from engine.media.synth import SynthSpec

pytestmark = pytest.mark.slow


def test_estimates_are_per_segment_and_a_lost_one_is_marked_fallback(ray_local, clip_factory):
    import ray

    truth = clip_factory(SynthSpec(duration_s=6.0, offset_ms=120.0, seed=81), "aligner.mp4")
    sync = SyncConfig()
    cues = SegmentCueExtractor(sync.cues)
    segs = list(iter_segments(truth.path, MediaConfig(video_width=64, video_height=48)))
    aligner = AlignerActor.options(num_cpus=0).remote(sync, 20.0)
    for seg in segs[:2]:  # segment 2 never arrives (as if lost in a restart)
        ray.get(aligner.push.remote("s", cues.extract(seg)))
    own0, own1, lost, unknown = alignments_for([("s", 0), ("s", 1), ("s", 2), ("other", 0)], [aligner], timeout_s=0.2)
    assert own0.status == own1.status == "measured"
    newest = ray.get(aligner.current.remote("s"))
    assert lost.status == "fallback" and lost.offset_ms == newest.offset_ms and lost.warp.tolist() == newest.warp.tolist()
    assert unknown.status == "none" and unknown.offset_ms is None and unknown.warp.shape == (0, 2)
    ray.kill(aligner)


def test_a_row_is_stamped_with_the_estimate_settle_segments_later(ray_local, clip_factory):
    import ray

    truth = clip_factory(SynthSpec(duration_s=10.0, offset_ms=-180.0, seed=82), "settle.mp4")
    sync = SyncConfig()
    cues = SegmentCueExtractor(sync.cues)
    segs = list(iter_segments(truth.path, MediaConfig(video_width=64, video_height=48)))
    plain = AlignerActor.options(num_cpus=0).remote(sync, 20.0)
    settled = AlignerActor.options(num_cpus=0).remote(sync, 20.0, (), 2)
    for seg in segs[:3]:
        c = cues.extract(seg)
        ray.get([plain.push.remote("s", c), settled.push.remote("s", c)])
    first_plain, third_plain = alignments_for([("s", 0), ("s", 2)], [plain])
    # Segment 0 gets the estimate in force after segment 2, not the one after segment 0.
    (first_settled,) = alignments_for([("s", 0)], [settled])
    assert first_settled == third_plain and first_settled != first_plain
    # A segment whose later one has not arrived waits for it; at the stream's end, the last.
    pending = settled.estimate_for.remote("s", 2, 30.0)
    for seg in segs[3:]:
        c = cues.extract(seg)
        ray.get([plain.push.remote("s", c), settled.push.remote("s", c)])
    ray.get([plain.finish.remote("s"), settled.finish.remote("s")])
    last = len(segs) - 1
    (fourth_plain, last_plain) = alignments_for([("s", 4), ("s", last)], [plain])
    assert ray.get(pending) == fourth_plain
    assert alignments_for([("s", last - 1)], [settled]) == [last_plain]
    ray.kill(plain)
    ray.kill(settled)
