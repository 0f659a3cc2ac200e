"""Spectral flux: an onset shows in the 10 ms frame that contains it, silence gives none, and any
chunking gives the same frames."""

from __future__ import annotations

import numpy as np
import pytest

from engine.align.cues import AudioCueExtractor
from engine.align.flux import SpectralFlux

RATE = 16_000


def _hit_inside_music(onset_sample: int, n: int = RATE * 2) -> np.ndarray:
    """A steady chord (level unchanged by the hit) with a short broadband hit at ``onset_sample``."""
    rng = np.random.default_rng(0)
    t = np.arange(n) / RATE
    x = 0.2 * sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.0, 330.0)) / 3
    hit = np.zeros(n)
    hit[onset_sample:onset_sample + 480] = 0.05 * rng.standard_normal(480) * np.exp(-np.arange(480) / 120)
    return x + hit


@pytest.mark.parametrize("onset_sample", [8_000, 12_345])
def test_an_onset_peaks_in_the_frame_that_contains_it(onset_sample):
    flux = SpectralFlux(RATE, 160).push(_hit_inside_music(onset_sample))
    assert int(np.argmax(flux[5:])) + 5 == onset_sample // 160


def test_silence_and_steady_tones_give_no_flux():
    assert not SpectralFlux(RATE, 160).push(np.zeros(RATE)).any()
    t = np.arange(RATE) / RATE
    flux = SpectralFlux(RATE, 160).push(0.3 * np.sin(2 * np.pi * 440 * t))
    assert flux[10:].max() < 0.05 * flux[:5].max()  # only the tone's start is new


def test_flux_chunked_equals_whole():
    x = _hit_inside_music(9_000)
    whole = SpectralFlux(RATE, 160).push(x)
    sf = SpectralFlux(RATE, 160)
    cuts = np.cumsum(np.random.default_rng(1).integers(1, 900, 200))
    parts = [sf.push(p) for p in np.split(x, cuts[cuts < len(x)])]
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-6)
    assert len(whole) == len(x) // 160


def test_audio_cues_carry_one_flux_frame_per_grid_bin():
    cues = AudioCueExtractor(RATE).push(_hit_inside_music(8_000).astype(np.float32), 0)
    assert len(cues.flux) * 10 == len(cues.rise_db) and np.argmax(cues.flux[5:]) + 5 == 50
