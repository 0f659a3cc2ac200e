"""Whisper tiny.en's encoder, pooled, on real English speech (Debian ``pocketsphinx-testdata``)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.data.media_io import decode_audio
from benchmarks.data.speech import RATE_HZ, speech_set
from engine.encode.audio import DEFAULT_AUDIO_ENC_DIM, DEFAULT_AUDIO_ENCODER, build_audio_encoder
from engine.errors import InvalidInputError


@pytest.fixture(scope="module")
def encoder():
    return build_audio_encoder()


@pytest.fixture(scope="module")
def pieces():
    """Two 2 s pieces of each of the ten utterances: {(utterance, piece): audio}."""
    out = {}
    for k, u in enumerate(speech_set(log=lambda *_: None)):
        a = decode_audio(u.path, RATE_HZ)
        for j in range(2):
            piece = a[j * 2 * RATE_HZ:(j + 1) * 2 * RATE_HZ]
            if len(piece) == 2 * RATE_HZ:
                out[(k, j)] = piece
    return out


def test_embeddings_are_unit_384_d_and_deterministic(encoder, pieces):
    a = pieces[(0, 0)]
    e1, e2 = encoder.embed(a), encoder.embed(a)
    assert encoder.dim == DEFAULT_AUDIO_ENC_DIM == 384 and e1.shape == (384,) and e1.dtype == np.float32
    np.testing.assert_array_equal(e1, e2)
    assert abs(float(np.linalg.norm(e1)) - 1.0) < 1e-5
    assert encoder.name == DEFAULT_AUDIO_ENCODER and len(encoder.weights_hash) >= 16


def test_a_noisy_quieter_copy_of_a_piece_finds_that_piece(encoder, pieces):
    keys = list(pieces)
    bank = np.stack([encoder.embed(pieces[k]) for k in keys])
    rng = np.random.default_rng(0)
    hits = 0
    for k in keys:
        x = pieces[k]
        noisy = (0.5 * x + 0.02 * np.std(x) * rng.standard_normal(len(x))).astype(np.float32)
        hits += keys[int(np.argmax(bank @ encoder.embed(noisy)))] == k
    assert hits >= 0.9 * len(keys), (hits, len(keys))


def test_speech_is_nearer_speech_than_silence_or_a_hum(encoder, pieces):
    speech = np.stack([encoder.embed(p) for p in pieces.values()])
    t = np.arange(2 * RATE_HZ) / RATE_HZ
    others = np.stack([encoder.embed(np.zeros(2 * RATE_HZ, np.float32)),
                       encoder.embed((0.1 * np.sin(2 * np.pi * 50 * t)).astype(np.float32))])
    within = (speech @ speech.T)[~np.eye(len(speech), dtype=bool)].mean()
    assert within > (speech @ others.T).mean() + 0.05


def test_long_audio_is_pooled_over_30_s_pieces_and_tiny_audio_is_none(encoder, pieces):
    long = np.tile(np.concatenate(list(pieces.values())), 3)[: 40 * RATE_HZ]
    assert len(long) > 30 * RATE_HZ and encoder.embed(long).shape == (384,)
    assert encoder.embed(np.zeros(320, np.float32)) is None
    with pytest.raises(InvalidInputError, match="audio"):
        encoder.embed(np.zeros((2, 100), np.float32))
    with pytest.raises(InvalidInputError, match="audio_encoder"):
        build_audio_encoder("wav2vec")
