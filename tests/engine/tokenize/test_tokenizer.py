"""Tokenizer fitted on real decoded media: round trip, exact timestamps, typed errors."""

from __future__ import annotations

import numpy as np
import pytest

from engine.tokenize.compress import CompressionConfig
from engine.errors import InvalidInputError
from engine.tokenize.features import RegionConfig
from engine.media.decode import MediaConfig, iter_segments
from engine.media.synth import SynthSpec
from engine.tokenize.tokenizer import Tokenizer, TokenizerConfig

SMALL = TokenizerConfig(
    audio_quantizers=2, audio_codebook_size=32, video_quantizers=2, video_codebook_size=32,
    region=RegionConfig(resize_height_px=48, resize_width_px=64, patch_px=16, dim=16), max_fit_vectors=20_000,
    compression=CompressionConfig(budget_tokens_per_s=30.0),
)


@pytest.fixture(scope="module")
def fitted(clip_factory, tmp_path_factory):
    truth = clip_factory(SynthSpec(duration_s=6.0, speech=True, seed=31), "tok.mp4")
    segs = list(iter_segments(truth.path, MediaConfig(video_width=128, video_height=96)))
    tok = Tokenizer.fit(segs, SMALL)
    folder = tok.save(tmp_path_factory.mktemp("codebooks"))
    return tok, folder, segs


def test_save_load_round_trip_gives_identical_codes(fitted):
    tok, folder, segs = fitted
    again = Tokenizer.load(folder)
    assert again.codebook_version == tok.codebook_version and len(tok.codebook_version) == 16
    for seg in segs:
        a, b = tok.encode_segment(seg), again.encode_segment(seg)
        np.testing.assert_array_equal(a.audio.codes, b.audio.codes)
        np.testing.assert_array_equal(a.video.codes, b.video.codes)


def test_tokens_keep_exact_source_timestamps(fitted):
    tok, _, segs = fitted
    for seg in segs:
        out = tok.encode_segment(seg)
        mel_t = tok.audio_extractor.frame_times_us(-(-seg.n_audio_samples // 160), seg.t_start_us)
        assert set(out.audio.t_us.tolist()) <= set(mel_t.tolist())
        assert set(out.video.t_us.tolist()) <= set(seg.video_t_us[out.video_frames].tolist())
        assert np.all(np.diff(seg.video_t_us[out.video_frames] // 200_000) >= 1)  # <= 5 token frames/s
        assert np.all((out.video.t_us >= seg.t_start_us) & (out.video.t_us < seg.t_end_us))
        assert out.video.tokens_out <= SMALL.compression.budget_tokens_per_s * seg.duration_us / 1e6
        assert out.audio.compression_ratio >= 1.0 and out.video.compression_ratio > 1.0
        assert out.audio_embedding.shape == (160,) and out.video_embedding.shape == (32,)
        assert abs(np.linalg.norm(out.audio_embedding) - 1) < 1e-5


def test_codebook_version_changes_with_codebooks(fitted, tmp_path):
    tok, _, segs = fitted
    other = Tokenizer.fit(segs[:1], TokenizerConfig(**{**SMALL.__dict__, "seed": 5}))
    assert other.codebook_version != tok.codebook_version


def test_errors(fitted, tmp_path):
    tok, folder, segs = fitted
    with pytest.raises(InvalidInputError, match="manifest"):
        Tokenizer.load(tmp_path)
    audio_only = Tokenizer(SMALL, tok.audio_rvq, None)
    with pytest.raises(InvalidInputError, match="video"):
        audio_only.encode_segment(segs[0])
    with pytest.raises(InvalidInputError, match="dim"):
        Tokenizer(SMALL, tok.video_rvq, None)  # a 16-d quantizer where 80-d log-mels go
    bad = segs[0]
    bad_audio = bad.audio.copy()
    bad_audio[5] = np.nan
    from dataclasses import replace

    with pytest.raises(InvalidInputError, match="NaN"):
        tok.encode_segment(replace(bad, audio=bad_audio))
    with pytest.raises(InvalidInputError, match="no audio or video"):
        Tokenizer.fit([], SMALL)
    # Fitting on digital silence is refused; tokenizing a silent segment is fine.
    silent = replace(segs[0], audio=np.zeros_like(segs[0].audio), frames=None, video_t_us=np.zeros(0, np.int64))
    with pytest.raises(InvalidInputError, match="identical"):
        Tokenizer.fit([silent], SMALL)
    out = tok.encode_segment(silent)
    assert out.audio.tokens_out == 1 and out.video is None  # one run of one repeated code
