"""Real PyAV encode -> decode tests of the media layer on synthetic clips with ground truth."""

from __future__ import annotations

import functools
import http.server
import threading
import time

import numpy as np
import pytest

from engine.media.decode import MediaConfig, SegmentReader, iter_segments
from engine.media.synth import SynthSpec

SEG_US = 2_000_000


def _segments(path, **cfg):
    return list(iter_segments(str(path), MediaConfig(**cfg)))


def _check_tiling(segs, seg_us, rate=16_000):
    """Contiguous, exact boundaries; exact audio sample counts."""
    assert [s.index for s in segs] == list(range(len(segs)))
    for k, s in enumerate(segs):
        assert s.t_start_us == k * seg_us
        if k + 1 < len(segs):
            assert s.t_end_us == segs[k + 1].t_start_us == (k + 1) * seg_us
            assert not s.is_final
            if s.audio is not None:
                assert s.n_audio_samples == seg_us * rate // 1_000_000
        else:
            assert s.is_final
        if s.audio is not None:
            assert s.audio.dtype == np.float32 and s.audio.ndim == 1
            assert s.n_audio_samples == round((s.t_end_us - s.t_start_us) * rate / 1_000_000)
        assert np.all((s.video_t_us >= s.t_start_us) & (s.video_t_us < s.t_end_us))


def test_segments_tile_the_timeline_exactly(clip_factory):
    truth = clip_factory(SynthSpec(duration_s=7.0, seed=1), "plain.mp4")
    segs = _segments(truth.path)
    _check_tiling(segs, SEG_US)
    assert len(segs) == 4
    assert segs[-1].t_end_us >= 7_000_000 - 40_000
    assert sum(s.n_audio_samples for s in segs[:-1]) == 3 * 32_000
    assert segs[0].video.shape[1:] == (240, 320, 3) and segs[0].video.dtype == np.uint8


def test_video_timestamps_equal_encoded_pts_with_vfr_and_drops(clip_factory):
    spec = SynthSpec(duration_s=6.0, vfr_jitter=0.4, dropped_frames=(20, 21, 22, 90), seed=2)
    truth = clip_factory(spec, "vfr.mp4")
    segs = _segments(truth.path)
    _check_tiling(segs, SEG_US)
    decoded = np.concatenate([s.video_t_us for s in segs])
    assert decoded.tolist() == truth.video_frame_t_us
    gaps = [d for s in segs for d in s.discontinuities if d.stream == "video" and d.kind == "gap"]
    assert len(gaps) == 2  # frames 20-22 and frame 90; VFR jitter is not reported
    assert gaps[0].jump_us > 3 * 40_000 - 20_000


@pytest.mark.parametrize("segment_s", [0.5, 1.0, 3.0])
def test_segment_length_is_configurable(clip_factory, segment_s):
    truth = clip_factory(SynthSpec(duration_s=5.0, seed=3), "seglen.mp4")
    segs = _segments(truth.path, segment_s=segment_s)
    _check_tiling(segs, int(segment_s * 1e6))
    assert np.concatenate([s.video_t_us for s in segs]).tolist() == truth.video_frame_t_us


def _video_event_times(segs, truth):
    """Measured frame time of each ground-truth visual event (brightness / change peaks)."""
    t = np.concatenate([s.video_t_us for s in segs])
    frames = np.concatenate([s.video for s in segs]).astype(np.float32)
    change = np.r_[0.0, np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))]
    out = []
    for e in truth.events:
        j = int(np.searchsorted(t, e.t_video_us))
        near = range(max(1, j - 2), min(len(t), j + 3))
        if e.video_kind == "flash":
            hit = min(q for q in near if frames[q].mean() > 250)
        else:
            hit = max(near, key=lambda q: change[q])
        out.append(int(t[hit]))
    return np.array(out)


def _audio_onsets(segs, truth, kinds=("tone", "click")):
    """Measured onset (µs) of each sharp-edged audio event: first sample above half its peak."""
    audio = np.concatenate([s.audio for s in segs])
    res = []
    for e in truth.events:
        if e.audio_kind not in kinds:
            continue
        s0 = int((e.t_audio_us / 1e6 - 0.05) * 16_000)
        w = np.abs(audio[s0 : s0 + int(0.1 * 16_000)])
        onset = s0 + int(np.argmax(w > 0.5 * w.max()))
        res.append((e, onset * 1e6 / 16_000))
    return res


@pytest.mark.parametrize(
    "offset_ms,drift_ppm,seed",
    [(0.0, 0.0, 10), (237.0, 0.0, 11), (-410.0, 800.0, 12), (120.0, -1000.0, 13)],
)
def test_synth_offset_and_drift_are_recovered_from_decoded_streams(clip_factory, offset_ms, drift_ppm, seed):
    spec = SynthSpec(duration_s=12.0, offset_ms=offset_ms, drift_ppm=drift_ppm, speech=True, seed=seed)
    truth = clip_factory(spec, f"off{seed}.mp4")
    segs = _segments(truth.path)
    tv = _video_event_times(segs, truth)
    assert np.array_equal(tv, [e.t_video_us for e in truth.events])  # frame-exact events
    onsets = _audio_onsets(segs, truth)
    assert len(onsets) >= 6
    errs_ms = [abs(t - e.t_audio_us) / 1000 for e, t in onsets]
    assert max(errs_ms) <= 1.0, errs_ms
    # Fit t_audio = offset + t_video * (1 + drift) on the measured events.
    x = np.array([e.t_video_us / 1e6 for e, _ in onsets])
    y = np.array([t / 1e6 for _, t in onsets])
    slope, intercept = np.polyfit(x, y, 1)
    assert abs(intercept * 1000 - offset_ms) <= 1.0
    assert abs((slope - 1) * 1e6 - drift_ppm) <= 150  # 150 ppm over 10 s = 1.5 ms total
    # ... and a drift-free fit of the offset alone, on the known drift, is within 1 ms.
    resid_ms = (y - x * (1 + drift_ppm * 1e-6)) * 1000
    assert abs(np.median(resid_ms) - offset_ms) <= 1.0


def test_splice_moves_the_offset_at_the_given_time(clip_factory):
    spec = SynthSpec(duration_s=12.0, offset_ms=150.0, splices=((6.0, -200.0),), seed=14)
    truth = clip_factory(spec, "splice.mp4")
    segs = _segments(truth.path)
    for e, t in _audio_onsets(segs, truth):
        expect_ms = 150.0 if e.t_video_us < 6_000_000 else -200.0
        assert abs((t - e.t_video_us) / 1000 - expect_ms) <= 1.0


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg", ".mp3"])
def test_audio_only_files(clip_factory, ext):
    truth = clip_factory(SynthSpec(duration_s=4.5, with_video=False, seed=4), "audio" + ext)
    segs = _segments(truth.path)
    _check_tiling(segs, SEG_US)
    assert all(s.video is None and s.n_video_frames == 0 for s in segs)
    assert segs[0].n_audio_samples == 32_000
    # mp3/opus pad a little; the clip is 4.5 s of audio.
    assert 4_500_000 <= segs[-1].t_end_us <= 4_600_000


@pytest.mark.parametrize("ext", [".mkv", ".webm", ".mov"])
def test_other_containers(clip_factory, ext):
    truth = clip_factory(SynthSpec(duration_s=3.0, seed=5), "c" + ext)
    segs = _segments(truth.path)
    _check_tiling(segs, SEG_US)
    assert np.concatenate([s.video_t_us for s in segs]).tolist() == truth.video_frame_t_us


def test_video_only_resize_and_fps_cap(clip_factory):
    truth = clip_factory(SynthSpec(duration_s=4.0, with_audio=False, seed=6), "video_only.mp4")
    segs = _segments(truth.path, video_width=160, video_height=120, video_max_fps=5.0)
    _check_tiling(segs, SEG_US)
    assert all(s.audio is None for s in segs)
    t = np.concatenate([s.video_t_us for s in segs])
    assert segs[0].video.shape[1:] == (120, 160, 3)
    assert len(t) == 20  # one frame per 200 ms window
    assert set(t.tolist()) <= set(truth.video_frame_t_us)  # kept frames keep their own PTS
    assert np.all(np.diff(t // 200_000) == 1)


def test_decoding_is_streamed_not_buffered(clip_factory):
    truth = clip_factory(SynthSpec(duration_s=12.0, seed=7), "long.mp4")
    with SegmentReader(truth.path, MediaConfig(segment_s=1.0)) as reader:
        peak = 0
        for _seg in reader:
            peak = max(peak, reader.buffered_video_frames)
    assert peak <= 2 * 25  # at most about one segment of frames waits, never the whole file


def test_pace_releases_segments_no_earlier_than_real_time(clip_factory):
    truth = clip_factory(SynthSpec(duration_s=2.0, seed=8), "pace.mp4")
    t0 = time.monotonic()
    for seg in iter_segments(truth.path, MediaConfig(segment_s=0.5, pace=True)):
        assert time.monotonic() - t0 >= seg.t_end_us / 1e6 - 0.02


def test_http_url_is_read_as_a_live_source(clip_factory, tmp_path):
    # MPEG-TS, as live streams are served: no index to seek for, and a non-zero start_time.
    truth = clip_factory(SynthSpec(duration_s=4.0, seed=9), "http.ts")
    import shutil

    shutil.copy(truth.path, tmp_path / "clip.ts")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.ts"
        with SegmentReader(url) as reader:
            assert reader.info.is_live
            segs = list(reader)
    finally:
        server.shutdown()
    _check_tiling(segs, SEG_US)
    # In MPEG-TS the AAC priming samples start before the first frame, so the timeline's zero is
    # the audio start and every frame sits one constant shift later: relative times are exact.
    decoded = np.concatenate([s.video_t_us for s in segs])
    shift = int(decoded[0] - truth.video_frame_t_us[0])
    assert 0 <= shift <= 50_000
    assert (decoded - shift).tolist() == truth.video_frame_t_us
    assert reader.info.origin_us > 0  # absolute PTS origin of the TS stream is kept for reference


def _avi_with_cut_ac3_frames(path, cut: set[int], seconds: float = 3.0) -> None:
    """mpeg4 + AC3 AVI where the AC3 packets in ``cut`` hold only the second half of their frame
    (the damage opencv's Megamind.avi has on its first audio packet)."""
    import av

    with av.open(str(path), "w", format="avi") as c:
        v = c.add_stream("mpeg4", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("ac3", rate=48000)
        a.layout = "mono"
        for i in range(int(seconds * 25)):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (i * 7) % 255, np.uint8), format="rgb24")
            f.pts = i
            for p in v.encode(f):
                c.mux(p)
        x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * 48000)) / 48000)).astype(np.float32)
        out = 0
        for k in range(0, len(x), 1536):
            f = av.AudioFrame.from_ndarray(x[None, k:k + 1536], format="flt", layout="mono")
            f.sample_rate, f.pts = 48000, k
            for p in a.encode(f):
                if out in cut:
                    half = av.Packet(bytes(p)[p.size // 2:])
                    half.pts, half.dts, half.time_base, half.stream = p.pts, p.dts, p.time_base, a
                    p = half
                out += 1
                c.mux(p)
        for s in (v, a):
            for p in s.encode(None):
                c.mux(p)


def test_a_cut_first_audio_frame_is_skipped_and_counted(tmp_path):
    path = tmp_path / "cut_first.avi"
    _avi_with_cut_ac3_frames(path, {0})
    reader = SegmentReader(str(path), MediaConfig())
    segs = list(reader)
    assert reader.info.corrupt_packets == {"audio (ac3)": 1}
    assert sum(s.n_audio_samples for s in segs) >= 2.9 * 16_000  # the rest of the audio is there
    assert sum(len(s.video_t_us) for s in segs) == 75


def test_many_corrupt_audio_packets_fail_with_an_error_naming_the_codec(tmp_path):
    from engine.errors import TruncatedMediaError

    path = tmp_path / "cut_many.avi"
    _avi_with_cut_ac3_frames(path, set(range(0, 200, 2)))
    with pytest.raises(TruncatedMediaError) as err:
        _segments(path)
    assert "ac3" in str(err.value) and str(path) in str(err.value)
