"""Streaming speech recognition of one stream: segments in, each segment's final words out.

Per pushed segment the recognizer scores the new audio with the VAD, then decides:

* audio with no speech (and that no padded utterance can reach any more) is final at once,
  without the model (the VAD skip);
* *closed* utterances (followed by a pause of ``vad.min_silence_ms``) wait until enough speech
  is pending (``batch_speech_s``), the oldest waited ``max_delay_s`` of stream time, an
  utterance grew past ``max_utterance_s``, or the stream ended; then they are transcribed in one
  call, each padded and laid end to end, with the stream's recent text as the prompt. Word times
  are mapped back through the layout onto the unified timeline;
* the audio is cut only after a transcribed utterance (inside its pause), so no word is ever
  heard by two calls, and everything before the cut is final.

A segment is complete once the final point passes its end: its words are those that start in it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from engine.asr.config import AsrConfig
from engine.asr.model import SpeechModel
from engine.asr.vad import RATE_HZ, WINDOW_SAMPLES, VoiceActivity, speech_regions
from engine.asr.words import Word, text_of, words_in
from engine.errors import InvalidInputError

_US_PER_S = 1_000_000
#: A segment starting this far from where the previous one ended is a discontinuity.
_GAP_TOLERANCE_US = 1_000


@dataclass
class SegmentWords:
    """The final words of one segment.

    Attributes:
        index: Segment number in the stream.
        t_start_us: Segment start (unified timeline).
        t_end_us: Segment end (exclusive).
        words: Words that start in the segment, in time order.
    """

    index: int
    t_start_us: int
    t_end_us: int
    words: list[Word] = field(default_factory=list)

    @property
    def transcript(self) -> str | None:
        """The words as text, or None without words."""
        return text_of(self.words)


@dataclass
class AsrStats:
    """What the recognizer did, for metrics and benchmarks.

    Attributes:
        audio_s: Audio pushed.
        speech_s: Audio given to the model (speech plus padding).
        calls: Model calls.
        model_cpu_s: CPU seconds (all threads of the process) spent in model calls.
    """

    audio_s: float = 0.0
    speech_s: float = 0.0
    calls: int = 0
    model_cpu_s: float = 0.0

    @property
    def skipped_share(self) -> float:
        """Share of the audio the VAD kept from the model."""
        return 1.0 - self.speech_s / self.audio_s if self.audio_s > 0 else 0.0


def chunk_of_word(chunks: list[tuple[int, int]], start_s: float, end_s: float) -> int:
    """Which of the chunks laid end to end in one model call a word was spoken in.

    The chunk that holds most of the word; a word shorter than one VAD window goes by its
    start. Whisper times a chunk's first word early, into the previous chunk's tail: by its
    start alone such a word went to the previous utterance.

    Args:
        chunks: ``(offset, length)`` in samples of each chunk in the call's audio, in order.
        start_s: The word's start in seconds from the start of the call's audio.
        end_s: Its end.
    """
    x0, x1 = start_s * RATE_HZ, end_s * RATE_HZ
    if x1 - x0 >= WINDOW_SAMPLES:
        overlap = [min(x1, off + n) - max(x0, off) for off, n in chunks]
        if max(overlap) > 0:
            return int(np.argmax(overlap))
    return max([k for k, (off, _) in enumerate(chunks) if off <= x0] or [0])


class StreamRecognizer:
    """Recognizes one stream's speech as its segments arrive (see module doc).

    Args:
        model: The recognizer (one may be shared by the streams of a process).
        config: ASR settings.
        live: The stream plays in real time (a URL, or a file paced as live): pending speech
            waits at most ``config.max_delay_s`` of stream time; otherwise batches fill up.
    """

    def __init__(self, model: SpeechModel, config: AsrConfig, live: bool = True) -> None:
        self.model = model
        self.config = config
        self.stats = AsrStats()
        self.context = ""
        self._pending: deque[SegmentWords] = deque()
        self._words: list[Word] = []
        w_ms = WINDOW_SAMPLES / RATE_HZ * 1000.0
        self._pad_w = int(math.ceil(config.vad.pad_ms / w_ms))
        self._gap_w = int(math.ceil(config.vad.min_silence_ms / w_ms))
        self._max_w = int((config.live_max_utterance_s if live else config.max_utterance_s) * 1000.0 / w_ms)
        self._split_w = int(1500.0 / w_ms)  # a forced cut looks for the quietest window this far back
        self._batch_w = config.batch_speech_s * 1000.0 / w_ms
        self._delay_w = config.max_delay_s * 1000.0 / w_ms if live else float("inf")
        self._reset(None)

    def _reset(self, origin_us: int | None) -> None:
        """Starts a new run of contiguous audio at ``origin_us`` (sample 0)."""
        self._origin_us = origin_us
        self._vad = VoiceActivity()
        self._audio = np.zeros(0, np.float32)
        self._buf_w = 0  # window index of _audio[0]; the buffer always starts on a window edge
        self._end_us = origin_us  # where the pushed audio ends
        self._final_us = origin_us if origin_us is not None else -1

    def _us(self, window: int) -> int:
        return self._origin_us + (window * WINDOW_SAMPLES * _US_PER_S) // RATE_HZ

    def push(self, index: int, t_start_us: int, t_end_us: int, audio: np.ndarray | None,
             is_final: bool = False) -> list[SegmentWords]:
        """Adds the stream's next segment; returns the segments that became complete, in order.

        Args:
            index: Segment number.
            t_start_us: Segment start on the unified timeline.
            t_end_us: Segment end (exclusive).
            audio: Its 16 kHz mono float32 samples, exactly covering the segment; None when the
                stream has no audio (the segment then completes with no words).
            is_final: The stream's last segment: everything pending is transcribed.

        Raises:
            InvalidInputError: ``audio`` is not 1-D float samples.
        """
        if audio is not None:
            audio = np.asarray(audio)
            if audio.ndim != 1 or audio.dtype.kind != "f":
                raise InvalidInputError("audio", f"must be 1-D float 16 kHz samples, got {audio.dtype} {audio.shape}")
        contiguous = self._end_us is not None and abs(t_start_us - self._end_us) <= _GAP_TOLERANCE_US
        if audio is None or not contiguous:
            self._process(flush=True)  # what came before is complete on its own
            self._reset(t_start_us if audio is not None else None)
        self._pending.append(SegmentWords(index, t_start_us, t_end_us))
        if audio is None:
            self._final_us = t_end_us
        else:
            self._audio = np.concatenate([self._audio, audio.astype(np.float32, copy=False)])
            self._vad.push(audio)
            self._end_us = t_end_us
            self.stats.audio_s += len(audio) / RATE_HZ
            self._process(flush=is_final)
        if is_final:
            self._final_us = max(self._final_us, t_end_us)
        return self._complete()

    # ----------------------------------------------------------------------------------------

    def _process(self, flush: bool) -> None:
        """Transcribes what is due and moves the final point (see module doc)."""
        if self._origin_us is None:
            return
        scored = self._vad.windows_end
        regions = [(s + self._vad.first_window, e + self._vad.first_window)
                   for s, e in speech_regions(self._vad.probs, self.config.vad)]
        closed, open_region, split = [], None, None
        for s, e in regions:
            if flush or e + self._gap_w <= scored:
                closed.append((s, e))
            elif e - s >= self._max_w:
                # Too long without a pause: cut at its quietest window near the limit; the rest
                # stays open and is recognized with what follows.
                lo = s + self._max_w - self._split_w
                window = self._vad.probs[lo - self._vad.first_window: s + self._max_w - self._vad.first_window]
                split = lo + int(np.argmin(window))
                closed.append((s, split))
                break
            else:
                open_region = (s, e)
        if closed:
            pending_w = sum(e - s for s, e in closed)
            due = (flush or split is not None or pending_w >= self._batch_w or scored - closed[0][0] >= self._delay_w
                   or open_region is not None
                   and pending_w + scored - open_region[0] >= self._batch_w)
            if not due:
                self._advance(closed[0][0] - self._pad_w)
                return
            cut = split if split is not None else closed[-1][1] + self._pad_w
            if open_region is not None:
                cut = min(cut, open_region[0] - self._pad_w)
            cut = min(cut, scored)
            self._transcribe(closed, cut)
            self._advance(cut)
            if split is not None:
                return  # speech goes on at the cut: nothing after it is final
        if open_region is not None:
            self._advance(open_region[0] - self._pad_w)
        elif flush:
            self._advance(scored)
            self._final_us = max(self._final_us, self._end_us)
        else:
            # No speech in sight: a region starting at the next window would be padded back by
            # pad_w, so everything before that is final.
            self._advance(scored - self._pad_w)

    def _advance(self, window: int) -> None:
        """Everything before ``window`` is final: forget its audio and VAD scores."""
        window = max(window, self._buf_w)
        self._final_us = max(self._final_us, self._us(window))
        k = (window - self._buf_w) * WINDOW_SAMPLES
        self._audio = self._audio[k:]
        self._buf_w = window
        self._vad.drop_before(window)

    def _transcribe(self, regions: list[tuple[int, int]], cut: int) -> None:
        """One model call over ``regions`` (padded, laid end to end), words kept as final."""
        chunks: list[list] = []  # [start window, end window, [(region start, region end), ...]]
        for s, e in regions:
            ps, pe = max(s - self._pad_w, self._buf_w), min(e + self._pad_w, cut)
            if pe <= ps:
                continue
            if chunks and ps <= chunks[-1][1]:
                chunks[-1][1] = max(chunks[-1][1], pe)
                chunks[-1][2].append((s, e))
            else:
                chunks.append([ps, pe, [(s, e)]])
        if not chunks:
            return
        pieces, layout, offset = [], [], 0  # layout: (window start, length in samples, offset, regions)
        for s, e, regs in chunks:
            a = self._audio[(s - self._buf_w) * WINDOW_SAMPLES:(e - self._buf_w) * WINDOW_SAMPLES]
            pieces.append(a)
            layout.append((s, len(a), offset, regs))
            offset += len(a)
        audio = np.concatenate(pieces)
        cpu0 = time.process_time()
        raw = self.model.transcribe(audio, self.context[-self.config.context_chars:] if self.config.context_chars else None)
        self.stats.model_cpu_s += time.process_time() - cpu0
        self.stats.calls += 1
        self.stats.speech_s += len(audio) / RATE_HZ

        words = []
        for w in raw:
            # A word's end is read in the chunk its start is in (clipped to that chunk): with
            # chunks laid end to end, Whisper may stretch an utterance's last word into the next.
            s, n, off, regs = layout[chunk_of_word([(off, n) for _, n, off, _ in layout], w.start_s, w.end_s)]
            a = min(max(w.start_s * RATE_HZ - off, 0), n)
            b = min(max(w.end_s * RATE_HZ - off, a), n)
            t0 = self._us(s) + int(round(a * _US_PER_S / RATE_HZ))
            t1 = self._us(s) + int(round(b * _US_PER_S / RATE_HZ))
            # Whisper starts a chunk's first word at the chunk's edge, i.e. in the padding, and
            # stretches its last into the padding: no word is spoken outside the speech the VAD
            # heard, so each word is kept within its region (one window of slack).
            rs, re_ = min(regs, key=lambda r: 0 if self._us(r[0]) <= t0 < self._us(r[1]) else
                          min(abs(t0 - self._us(r[0])), abs(t0 - self._us(r[1]))))
            lo, hi = self._us(rs - 1), self._us(re_ + 1)
            t0 = min(max(t0, lo), hi)
            t1 = min(max(t1, t0), hi)
            words.append(Word(w.text, t0, t1, w.probability))
        self._words.extend(words)
        if words:
            self.context = (self.context + " " + text_of(words)).strip()[-max(self.config.context_chars, 1):]

    def _complete(self) -> list[SegmentWords]:
        """Pops the pending segments whose every word is final."""
        done = []
        while self._pending and self._pending[0].t_end_us <= self._final_us:
            seg = self._pending.popleft()
            seg.words = words_in(self._words, seg.t_start_us, seg.t_end_us)
            done.append(seg)
        if done:
            last_end = done[-1].t_end_us
            self._words = [w for w in self._words if w.t_start_us >= last_end]
        return done
