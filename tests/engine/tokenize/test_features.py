"""Feature extractors: log-mel vs Whisper's front end, region grid/timestamps, HF encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import InvalidInputError
from engine.tokenize.features import (FeatureExtractor, Features, HFEncoderExtractor, LogMelExtractor, RegionConfig,
                             RegionExtractor)

SR = 16_000


def _chirp(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.4 * np.sin(2 * np.pi * (200 + 900 * t) * t) + 0.05 * rng.normal(size=t.size)
    return x.astype(np.float32)


def test_log_mel_matches_whisper_front_end():
    from transformers import WhisperFeatureExtractor

    audio = _chirp(1.0)
    ours = LogMelExtractor().extract(audio, 0).values.T  # [80, T] log10 mel power
    # Whisper pads to 30 s and then normalizes: max(x, x.max() - 8), (x + 4) / 4. Apply the same
    # normalization to ours; compare frames whose windows lie inside the audio (the last two see
    # Whisper's zero padding instead of our reflect padding).
    ours_norm = (np.maximum(ours, ours.max() - 8.0) + 4.0) / 4.0
    theirs = WhisperFeatureExtractor()(audio, sampling_rate=SR, return_tensors="np").input_features[0]
    n = ours.shape[1] - 2
    assert ours.shape == (80, 100)
    np.testing.assert_allclose(ours_norm[:, :n], theirs[:, :n], atol=2e-3)


def test_log_mel_timestamps_are_frame_centres():
    ext = LogMelExtractor()
    feats = ext.extract(_chirp(0.5), 1_000_000)
    assert feats.t_us.dtype == np.int64 and feats.values.dtype == np.float32
    assert len(feats) == 50 and feats.dim == 80
    np.testing.assert_array_equal(feats.t_us, 1_000_000 + 10_000 * np.arange(50))
    assert feats.row is None and feats.col is None
    # ceil(L / hop) frames for a length that is not a multiple of the hop
    assert len(ext.extract(np.zeros(161, np.float32), 0)) == 2


def test_log_mel_batched_equals_single():
    ext = LogMelExtractor()
    a, b = _chirp(0.3, 1), _chirp(0.3, 2)
    batch = ext.log_mel(torch.from_numpy(np.stack([a, b]))).numpy()
    np.testing.assert_allclose(batch[1], ext.extract(b, 0).values, atol=1e-5)


def test_silence_is_valid_and_empty_is_an_error():
    ext = LogMelExtractor()
    silent = ext.extract(np.zeros(1600, np.float32), 0)
    assert np.all(silent.values == np.float32(-10.0))
    short = ext.extract(np.zeros(50, np.float32), 0)  # shorter than half a window
    assert len(short) == 1
    with pytest.raises(InvalidInputError, match="empty") as info:
        ext.extract(np.zeros(0, np.float32), 0)
    assert info.value.input == "samples"
    bad = np.zeros(400, np.float32)
    bad[3] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        ext.extract(bad, 0)
    with pytest.raises(InvalidInputError, match="float"):
        ext.extract(np.zeros(400, np.int16), 0)
    with pytest.raises(InvalidInputError, match="t_start_us"):
        ext.extract(np.zeros(400, np.float32), 0.5)


def _frames(f: int, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(f, h, w, 3), dtype=np.uint8)


def test_region_grid_and_exact_times():
    ext = RegionExtractor(RegionConfig(resize_height_px=32, resize_width_px=48, patch_px=16, dim=24))
    t = np.array([5, 33_372, 66_739], np.int64)
    feats = ext.extract(_frames(3), t)
    assert feats.values.shape == (3 * 2 * 3, 24) and feats.values.dtype == np.float32
    np.testing.assert_array_equal(feats.t_us, np.repeat(t, 6))
    np.testing.assert_array_equal(feats.row[:6], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(feats.col[:6], [0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(feats.frame_index, np.repeat([0, 1, 2], 6))


def test_region_features_see_the_right_patch():
    # a frame that is black except the bottom-right patch: only that patch's feature changes
    ext = RegionExtractor(RegionConfig(resize_height_px=32, resize_width_px=32, patch_px=16, dim=16))
    black = np.zeros((1, 32, 32, 3), np.uint8)
    lit = black.copy()
    lit[0, 16:, 16:] = 255
    a = ext.extract(black, np.array([0])).values
    b = ext.extract(lit, np.array([0])).values
    changed = np.abs(a - b).max(axis=1) > 1e-3
    np.testing.assert_array_equal(changed, [False, False, False, True])
    # deterministic: a second extractor with the same seed gives identical features
    np.testing.assert_array_equal(RegionExtractor(ext.config).extract(lit, np.array([0])).values, b)


def test_region_errors_name_the_input():
    ext = RegionExtractor()
    with pytest.raises(InvalidInputError, match="empty") as info:
        ext.extract(np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0, np.int64))
    assert info.value.input == "frames"
    with pytest.raises(InvalidInputError) as info:
        ext.extract(_frames(2), np.array([0], np.int64))
    assert info.value.input == "t_us"
    with pytest.raises(InvalidInputError, match="uint8"):
        ext.extract(_frames(1).astype(np.float32), np.array([0]))


def test_builtins_follow_the_protocol():
    assert isinstance(LogMelExtractor(), FeatureExtractor)
    assert isinstance(RegionExtractor(), FeatureExtractor)


def test_hf_vision_encoder_from_local_dir(tmp_path):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=64)
    ViTModel(cfg, add_pooling_layer=False).save_pretrained(tmp_path / "vit")
    ext = HFEncoderExtractor(tmp_path / "vit")
    assert isinstance(ext, FeatureExtractor) and ext.modality == "video" and ext.dim == 32
    t = np.array([100, 200], np.int64)
    feats = ext.extract(_frames(2), t)
    assert isinstance(feats, Features) and feats.values.shape == (2 * 16, 32)
    np.testing.assert_array_equal(feats.t_us, np.repeat(t, 16))
    assert feats.row.max() == 3 and feats.col.max() == 3
    assert np.isfinite(feats.values).all()


def test_hf_audio_encoder_from_local_dir(tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4),
                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    Wav2Vec2Model(cfg).save_pretrained(tmp_path / "w2v")
    ext = HFEncoderExtractor(tmp_path / "w2v")
    assert ext.modality == "audio" and ext.stride_samples == 20
    feats = ext.extract(_chirp(0.1), 7)
    assert feats.values.shape[1] == 32 and len(feats) > 70
    np.testing.assert_array_equal(feats.t_us[:3], [7, 7 + 1250, 7 + 2500])


def test_hf_missing_dir_is_typed(tmp_path):
    with pytest.raises(InvalidInputError):
        HFEncoderExtractor(tmp_path / "nope")


@pytest.mark.parametrize("bins, mels, lo, hi, sr", [(201, 80, 0.0, 8000.0, 16000), (257, 64, 20.0, 7600.0, 16000),
                                                    (513, 128, 0.0, 11025.0, 22050)])
def test_slaney_mel_filters_equal_transformers(bins, mels, lo, hi, sr):
    from transformers.audio_utils import mel_filter_bank

    from engine.tokenize.features import slaney_mel_filters

    theirs = mel_filter_bank(num_frequency_bins=bins, num_mel_filters=mels, min_frequency=lo, max_frequency=hi,
                             sampling_rate=sr, norm="slaney", mel_scale="slaney")
    np.testing.assert_allclose(slaney_mel_filters(bins, mels, lo, hi, sr), theirs, rtol=1e-12, atol=1e-15)
