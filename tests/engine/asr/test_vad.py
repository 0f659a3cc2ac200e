"""Incremental VAD and speech regions on real speech."""

from __future__ import annotations

import numpy as np

from engine.asr.config import VadConfig
from engine.asr.vad import WINDOW_SAMPLES, VoiceActivity, speech_regions


def test_scoring_in_pieces_gives_the_scores_of_scoring_at_once(program):
    audio = program[0][: 20 * 16_000]
    whole = VoiceActivity()
    whole.push(audio)
    parts = VoiceActivity()
    for a, b in ((0, 1000), (1000, 33_000), (33_000, 33_001), (33_001, len(audio))):  # uneven pieces
        parts.push(audio[a:b])
    assert len(whole.probs) == len(parts.probs) == len(audio) // WINDOW_SAMPLES
    np.testing.assert_allclose(parts.probs, whole.probs, atol=1e-5)


def test_speech_regions_cover_each_utterance(program):
    audio, placed = program
    vad = VoiceActivity()
    vad.push(audio)
    regions = speech_regions(vad.probs, VadConfig())
    us = lambda w: w * WINDOW_SAMPLES * 1_000_000 // 16_000  # noqa: E731
    for p in placed:
        inside = [r for r in regions if us(r[1]) > p.t_start_us and us(r[0]) < p.t_end_us]
        assert inside, p.text
        # (each recording has up to ~0.3 s of its own silence at both ends)
        assert us(inside[0][0]) <= p.t_start_us + 500_000 and us(inside[-1][1]) >= p.t_end_us - 500_000
    speech = sum(r[1] - r[0] for r in regions) * WINDOW_SAMPLES / 16_000
    assert speech < 0.8 * len(audio) / 16_000  # the pauses are not speech


def test_hysteresis_bridges_short_pauses_and_drops_short_bursts():
    cfg = VadConfig(threshold=0.5, neg_threshold=0.35, min_silence_ms=100.0, min_speech_ms=100.0, pad_ms=30.0)
    # speech 10 windows, dip to 0.4 (kept by hysteresis), pause of 2 windows (< 100 ms: bridged),
    # speech, long pause, a 2-window burst (64 ms < 100 ms: dropped)
    p = np.array([0.9] * 10 + [0.4] * 3 + [0.1] * 2 + [0.9] * 5 + [0.0] * 20 + [0.9] * 2 + [0.0] * 10)
    assert speech_regions(p, cfg) == [(0, 20)]


def test_drop_before_forgets_old_windows():
    vad = VoiceActivity()
    vad.push(np.zeros(10 * WINDOW_SAMPLES, np.float32))
    vad.drop_before(4)
    assert vad.first_window == 4 and len(vad.probs) == 6 and vad.windows_end == 10
