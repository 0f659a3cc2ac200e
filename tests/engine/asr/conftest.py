"""Real English speech for the ASR tests: Debian ``pocketsphinx-testdata`` (LibriVox sentences
and spoken card names with reference transcripts), fetched once into the dev-set cache by
``make test`` (``python -m benchmarks.data.speech``)."""

from __future__ import annotations

import pytest

from benchmarks.data.speech import compose_program, speech_set
from engine.asr.config import AsrConfig

#: Pauses after each utterance (s): long and short ones, all above the VAD's 0.5 s.
GAPS_S = [1.3, 2.0, 0.9, 3.0, 1.1, 2.5, 1.0, 4.0, 1.5, 2.0]


@pytest.fixture(scope="session")
def utterances():
    return speech_set(log=lambda *_: None)


@pytest.fixture(scope="session")
def program(utterances):
    """(16 kHz audio, placed utterances): the ten utterances at known times, 55 s in all."""
    return compose_program(utterances, GAPS_S)


@pytest.fixture(scope="session")
def speech_model():
    from engine.asr.model import load_speech_model

    return load_speech_model(AsrConfig())
