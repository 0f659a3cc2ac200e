"""The streaming recognizer on real English speech placed at known times."""

from __future__ import annotations

import numpy as np
import pytest

from engine.asr.config import AsrConfig
from engine.asr.stream import StreamRecognizer, chunk_of_word
from engine.asr.words import word_error_rate

SEG_US = 2_000_000
SEG = 32_000
TOL_US = 150_000


def _run(model, audio, config=AsrConfig(), seg=SEG, live=False):
    rec = StreamRecognizer(model, config, live)
    n = -(-len(audio) // seg)
    done = []
    for i in range(n):
        a = audio[i * seg:(i + 1) * seg]
        a = np.pad(a, (0, seg - len(a)))
        done += rec.push(i, i * seg * 125 // 2, (i + 1) * seg * 125 // 2, a, is_final=i == n - 1)
    return rec, done


@pytest.fixture(scope="module")
def streamed(speech_model, program):
    audio, _ = program
    return _run(speech_model, audio)


def test_every_segment_completes_once_in_order(streamed, program):
    _, done = streamed
    n = -(-len(program[0]) // SEG)
    assert [s.index for s in done] == list(range(n))
    assert all(s.t_end_us - s.t_start_us == SEG_US for s in done)


def test_each_utterances_words_land_inside_its_window(streamed, program):
    _, placed = program
    _, done = streamed
    words = [w for s in done for w in s.words]
    assert words, "no words recognized"
    for w in words:  # no word outside every utterance (nothing invented in the pauses)
        assert any(p.t_start_us - TOL_US <= w.t_start_us and w.t_end_us <= p.t_end_us + TOL_US for p in placed), w
    for p in placed:  # and every utterance got words
        inside = [w for w in words if p.t_start_us - TOL_US <= w.t_start_us and w.t_end_us <= p.t_end_us + TOL_US]
        assert inside, f"no words for {p.text!r}"


def test_a_word_across_a_segment_boundary_is_stored_once_where_it_starts(streamed):
    _, done = streamed
    crossing = [(s.index, w) for s in done for w in s.words if w.t_end_us > s.t_end_us]
    assert crossing, "the program should put some word across a 2 s boundary"
    for index, w in crossing:
        holders = [s.index for s in done if w in s.words]
        assert holders == [index]
        assert done[index].t_start_us <= w.t_start_us < done[index].t_end_us


def test_word_error_rate_matches_standalone_faster_whisper(streamed, utterances, program, speech_model):
    # The peer: faster-whisper on each file alone, with its own VAD, same model and beam.
    model = speech_model._model
    refs, peer = [], []
    for u in utterances:
        segs, _ = model.transcribe(str(u.path), language="en", beam_size=5, vad_filter=True)
        refs.append(u.text)
        peer.append(" ".join(s.text for s in segs))
    _, placed = program
    _, done = streamed
    words = [w for s in done for w in s.words]
    ours = [" ".join(w.text for w in words if p.t_start_us - TOL_US <= w.t_start_us < p.t_end_us + TOL_US) for p in placed]
    wer_peer, wer_ours = word_error_rate(refs, peer), word_error_rate(refs, ours)
    assert wer_peer < 0.3  # the model works at all on this speech
    # Measured on this one program: 7.6 % vs 5.4 % (of 92 words: the second "five" of "five five"
    # Whisper times past its chunk, so it lands in the next window). benchmarks/understanding.py
    # measures over ten other programs (~920 words), where issue #13's 1 point is checked; one
    # program is too few words for it (one word is 1.1 points), so this guards 3.
    assert wer_ours <= wer_peer + 0.03, (wer_ours, wer_peer, ours)


def test_non_speech_never_reaches_the_model(speech_model):
    rng = np.random.default_rng(0)
    t = np.arange(10 * 16_000) / 16_000
    hum = 0.05 * np.sin(2 * np.pi * 50 * t) + 0.003 * rng.standard_normal(len(t))  # mains hum and hiss
    rec, done = _run(speech_model, hum.astype(np.float32), live=True)
    assert len(done) == 5 and not any(s.words for s in done)
    assert rec.stats.calls == 0 and rec.stats.skipped_share == 1.0


def test_a_silent_stream_completes_segments_without_waiting_for_the_end(speech_model):
    rec = StreamRecognizer(speech_model, AsrConfig())
    out = []
    for i in range(4):
        out += rec.push(i, i * SEG_US, (i + 1) * SEG_US, np.zeros(SEG, np.float32))
    # Only the padding after the newest audio stays open: the first three are final already.
    assert [s.index for s in out] == [0, 1, 2]


def test_a_live_stream_transcribes_within_the_delay_bound(speech_model, program):
    audio, placed = program
    cfg = AsrConfig(max_delay_s=4.0)
    rec = StreamRecognizer(speech_model, cfg)
    lag = []
    for i in range(len(audio) // SEG):
        for s in rec.push(i, i * SEG_US, (i + 1) * SEG_US, audio[i * SEG:(i + 1) * SEG]):
            lag.append((i + 1) * SEG_US - s.t_end_us)  # stream time between a segment's end and its words
    assert lag and max(lag) <= (cfg.max_delay_s + cfg.max_utterance_s) * 1e6
    assert np.median(lag) <= (cfg.max_delay_s + 2 * SEG_US / 1e6) * 1e6


def test_audio_must_be_float_samples(speech_model):
    from engine.errors import InvalidInputError

    rec = StreamRecognizer(speech_model, AsrConfig())
    with pytest.raises(InvalidInputError, match="audio"):
        rec.push(0, 0, SEG_US, np.zeros(SEG, np.int16))


def test_a_file_fills_whisper_windows_a_live_stream_bounds_its_delay(speech_model, program, streamed):
    file_rec, done = streamed
    audio, placed = program
    live, _ = _run(speech_model, audio, live=True)
    assert file_rec.stats.calls < live.stats.calls
    assert file_rec.stats.speech_s == pytest.approx(live.stats.speech_s, rel=0.05)
    assert sum(len(s.words) for s in done) >= 0.9 * sum(len(p.text.split()) for p in placed)


def test_live_speech_without_pauses_is_cut_so_its_rows_do_not_wait_for_the_end(speech_model, utterances):
    from benchmarks.data.speech import compose_program

    # Three sentences back to back (no pause the VAD would close): one 17 s region of speech.
    audio, _ = compose_program(utterances[:3], [0.0, 0.0, 4.0], lead_s=0.0)
    rec = StreamRecognizer(speech_model, AsrConfig(), live=True)
    first_done = None
    n = len(audio) // SEG
    for i in range(n):
        if rec.push(i, i * SEG_US, (i + 1) * SEG_US, audio[i * SEG:(i + 1) * SEG]) and first_done is None:
            first_done = i
    assert first_done is not None and first_done * SEG_US <= (AsrConfig().live_max_utterance_s + 4) * 1e6


def test_a_word_is_given_to_the_chunk_that_holds_most_of_it():
    chunks = [(0, 16_000), (16_000, 16_000)]  # two 1 s chunks laid end to end
    assert chunk_of_word(chunks, 0.2, 0.6) == 0
    assert chunk_of_word(chunks, 0.9, 1.4) == 1  # starts early, in the first chunk's tail
    assert chunk_of_word(chunks, 0.7, 1.1) == 0
    assert chunk_of_word(chunks, 1.2, 1.2) == 1  # no length: its start decides
    assert chunk_of_word(chunks, 0.99, 0.99) == 0
