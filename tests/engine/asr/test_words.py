"""Word assignment and the text measures."""

from __future__ import annotations

import pytest

from engine.asr.config import AsrConfig, VadConfig
from engine.asr.words import Word, normalize_text, text_of, word_error_rate, words_in
from engine.errors import InvalidInputError


def test_a_word_belongs_to_the_segment_where_it_starts():
    ws = [Word("a", 0, 900_000, 0.9), Word("boundary", 1_900_000, 2_300_000, 0.8), Word("c", 2_400_000, 2_500_000, 0.7)]
    assert words_in(ws, 0, 2_000_000) == ws[:2]
    assert words_in(ws, 2_000_000, 4_000_000) == ws[2:]
    assert text_of(ws[:2]) == "a boundary" and text_of([]) is None


def test_normalization_and_wer():
    assert normalize_text("Mr. John's 10 cold-hearted, ill-disposed!") == ["mister", "john's", "ten", "cold", "hearted",
                                                                           "ill", "disposed"]
    assert word_error_rate(["ten of clubs"], ["10 of clubs."]) == 0.0
    assert word_error_rate(["ten of clubs"], ["ten of clothes"]) == pytest.approx(1 / 3)
    assert word_error_rate(["a b c d"], ["a c d e f"]) == pytest.approx(3 / 4)  # 1 deletion + 2 insertions


def test_configs_check_their_values():
    with pytest.raises(InvalidInputError, match="neg_threshold"):
        VadConfig(threshold=0.3, neg_threshold=0.4)
    with pytest.raises(InvalidInputError, match="pad_ms"):
        VadConfig(min_silence_ms=300.0, pad_ms=200.0)
    with pytest.raises(InvalidInputError, match="max_utterance_s"):
        AsrConfig(max_utterance_s=40.0)
    with pytest.raises(InvalidInputError, match="device"):
        AsrConfig(device="tpu")
