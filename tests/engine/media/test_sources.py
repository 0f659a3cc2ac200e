"""Bad input gets a typed error naming the input."""

from __future__ import annotations

import pytest

from engine.errors import (
    EmptyMediaError,
    MediaError,
    MediaNotFoundError,
    MissingStreamError,
    NotMediaError,
    SourceConnectionError,
    TruncatedMediaError,
    UnsupportedSourceError,
)
from engine.media.decode import MediaConfig, iter_segments
from engine.media.sources import classify, default_stream_id
from engine.media.synth import SynthSpec


def _expect(error_type, source, **cfg):
    with pytest.raises(error_type) as info:
        list(iter_segments(str(source), MediaConfig(**cfg)))
    assert isinstance(info.value, MediaError)
    assert info.value.input == str(source)
    assert str(source) in str(info.value) and info.value.reason
    return info.value


def test_missing_file(tmp_path):
    _expect(MediaNotFoundError, tmp_path / "nope.mp4")


def test_zero_length_file(tmp_path):
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    _expect(EmptyMediaError, p)


def test_non_media_file(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("this is a text file, not a video\n" * 50)
    _expect(NotMediaError, p)


def test_directory_is_not_media(tmp_path):
    _expect(NotMediaError, tmp_path)


def test_truncated_mp4_without_index(clip_factory, tmp_path):
    truth = clip_factory(SynthSpec(duration_s=4.0, seed=20), "whole.mp4")
    data = open(truth.path, "rb").read()
    p = tmp_path / "cut.mp4"
    p.write_bytes(data[: len(data) // 2])  # the moov index is at the end: it is lost
    err = _expect(TruncatedMediaError, p)
    assert "truncated" in err.reason


def test_truncated_stream_keeps_the_segments_before_the_cut(clip_factory, tmp_path):
    truth = clip_factory(SynthSpec(duration_s=6.0, seed=21), "whole.ts")
    data = open(truth.path, "rb").read()
    p = tmp_path / "cut.ts"
    p.write_bytes(data[: len(data) // 2])
    got = []
    # MPEG-TS has no index: decoding stops early, the cut is reported after the good segments.
    with pytest.raises(TruncatedMediaError):
        for seg in iter_segments(str(p)):
            got.append(seg)
    assert len(got) >= 1 and got[0].n_audio_samples == 32_000


def test_missing_required_streams(clip_factory):
    audio_only = clip_factory(SynthSpec(duration_s=2.0, with_video=False, seed=22), "ao.wav")
    video_only = clip_factory(SynthSpec(duration_s=2.0, with_audio=False, seed=23), "vo.mp4")
    err = _expect(MissingStreamError, audio_only.path, require_video=True)
    assert "video" in err.reason
    err = _expect(MissingStreamError, video_only.path, require_audio=True)
    assert "audio" in err.reason
    # Not requiring them, both decode.
    assert list(iter_segments(audio_only.path)) and list(iter_segments(video_only.path))


@pytest.mark.parametrize("url", ["ftp://host/a.mp4", "gopher://x", "s3://bucket/key.mp4"])
def test_unsupported_scheme(url):
    _expect(UnsupportedSourceError, url)


def test_unreachable_live_source_is_a_connection_error():
    # A port on loopback where nothing listens: refused at once.
    _expect(SourceConnectionError, "http://127.0.0.1:9/stream.ts", open_timeout_s=2.0)


def test_classify_and_stream_ids(tmp_path):
    p = tmp_path / "a.mp4"
    p.write_bytes(b"x")
    assert classify(str(p)).kind == "file"
    assert classify(f"file://{p}").target == str(p.resolve())
    assert classify("rtsp://cam/stream").is_live
    assert default_stream_id("rtsp://cam/stream") == default_stream_id("rtsp://cam/stream")
    assert default_stream_id("/a/b.mp4") != default_stream_id("/c/b.mp4")


def test_errors_survive_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(TruncatedMediaError("x.mp4", "cut")))
    assert isinstance(err, TruncatedMediaError) and err.input == "x.mp4" and err.reason == "cut"
