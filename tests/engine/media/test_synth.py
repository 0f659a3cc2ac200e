import json

import pytest

from engine.errors import InvalidInputError
from engine.media.synth import SynthSpec, synthesize


def test_ground_truth_follows_the_sign_convention(tmp_path):
    spec = SynthSpec(duration_s=8.0, offset_ms=250.0, drift_ppm=500.0, splices=((4.0, -100.0),), seed=1)
    truth = synthesize(spec, tmp_path / "c.mp4")
    assert len(truth.events) >= 5
    for e in truth.events:
        offset = 0.25 if e.t_video_s < 4.0 else -0.1
        expect = offset + e.t_video_s * (1 + 500e-6)
        assert abs(e.t_audio_s - expect) <= 1 / 48_000  # quantized to the sample grid only
        assert e.t_video_us == truth.video_frame_t_us[e.frame_index]
    gaps = [b.t_video_s - a.t_video_s for a, b in zip(truth.events, truth.events[1:])]
    assert len({round(g, 2) for g in gaps}) > 1  # spacing is jittered: no periodic ambiguity
    truth.write_json(tmp_path / "t.json")
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["spec"]["offset_ms"] == 250.0 and len(data["events"]) == len(truth.events)


def test_synth_is_deterministic(tmp_path):
    spec = SynthSpec(duration_s=3.0, vfr_jitter=0.3, speech=True, seed=5)
    a = synthesize(spec, tmp_path / "a.mkv")
    b = synthesize(spec, tmp_path / "b.mkv")
    assert a.video_frame_t_us == b.video_frame_t_us and a.to_json()["events"] == b.to_json()["events"]


def test_dropped_frames_leave_pts_gaps(tmp_path):
    truth = synthesize(SynthSpec(duration_s=2.0, dropped_frames=(5,), seed=2), tmp_path / "d.mp4")
    assert len(truth.video_frame_t_us) == 49
    assert truth.video_frame_t_us[5] - truth.video_frame_t_us[4] == 80_000


@pytest.mark.parametrize(
    "spec,name",
    [
        (SynthSpec(), "x.avi"),
        (SynthSpec(with_video=False, with_audio=False), "x.webm"),
        (SynthSpec(with_audio=False), "x.wav"),
        (SynthSpec(sample_rate_hz=44_100), "x.ogg"),
    ],
)
def test_bad_specs_are_rejected(tmp_path, spec, name):
    with pytest.raises(InvalidInputError):
        synthesize(spec, tmp_path / name)


@pytest.mark.parametrize("kw", [{"vfr_jitter": 1.5}, {"duration_s": 0}])
def test_bad_spec_values_are_refused_when_the_spec_is_made(kw):
    with pytest.raises(InvalidInputError) as err:
        SynthSpec(**kw)
    assert err.value.input == next(iter(kw))
