"""Incremental voice activity: Silero VAD probabilities per 32 ms window, and speech regions.

faster-whisper's ``get_speech_timestamps`` re-scores a whole buffer on every call; a live stream
needs each window scored once. The Silero v6 model faster-whisper ships is recurrent: its input
is a sequence of 512-sample windows, each with the 64 samples before it as context, and its
state (``h``, ``c``) runs along that sequence. So the stream keeps the state and the last 64
samples between pushes, and scoring audio in pieces gives exactly the numbers of scoring it at
once. (faster-whisper's own wrapper also zeroes the tail of the last window it is given: scoring
through it in pieces would not be exact, so the ONNX session is run directly.)
"""

from __future__ import annotations

import numpy as np

from engine.asr.config import VadConfig
from engine.errors import ModelNotFoundError

#: Samples per VAD window at 16 kHz (the model's fixed input), and its context.
WINDOW_SAMPLES = 512
_CONTEXT_SAMPLES = 64
RATE_HZ = 16_000

_MODEL = None


def _silero():
    """The Silero VAD ONNX model bundled with faster-whisper (loaded once per process)."""
    global _MODEL
    if _MODEL is None:
        try:
            from faster_whisper.vad import get_vad_model
        except ImportError as exc:
            raise ModelNotFoundError("faster-whisper", "Silero VAD ships with faster-whisper; pip install faster-whisper") from exc
        _MODEL = get_vad_model()
    return _MODEL


class VoiceActivity:
    """Speech probabilities of a stream's audio, scored once per window as audio arrives.

    Window ``i`` covers samples ``[origin + i*512, origin + (i+1)*512)`` of the stream, where
    ``origin`` is the sample the object started at; :meth:`drop_before` forgets old windows.
    """

    def __init__(self) -> None:
        self._session = _silero().session
        self._pending = np.zeros(0, np.float32)  # samples not yet a whole window
        self._context = np.zeros(_CONTEXT_SAMPLES, np.float32)
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self.probs = np.zeros(0, np.float32)
        self.first_window = 0  # index (since origin) of probs[0]

    def push(self, audio: np.ndarray) -> None:
        """Scores the whole windows that ``audio`` completes."""
        x = np.concatenate([self._pending, np.asarray(audio, np.float32)])
        n = len(x) // WINDOW_SAMPLES
        self._pending = x[n * WINDOW_SAMPLES:]
        if n == 0:
            return
        windows = x[: n * WINDOW_SAMPLES].reshape(n, WINDOW_SAMPLES)
        context = np.concatenate([self._context[None], windows[:-1, -_CONTEXT_SAMPLES:]])
        batch = np.ascontiguousarray(np.concatenate([context, windows], axis=1))
        out, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        self.probs = np.concatenate([self.probs, np.asarray(out, np.float32).reshape(-1)])
        self._context = windows[-1, -_CONTEXT_SAMPLES:].copy()

    @property
    def windows_end(self) -> int:
        """Index (since origin) one past the last scored window."""
        return self.first_window + len(self.probs)

    def drop_before(self, window: int) -> None:
        """Forgets the probabilities of windows before ``window``."""
        k = max(0, min(window - self.first_window, len(self.probs)))
        self.probs = self.probs[k:]
        self.first_window += k


def speech_regions(probs: np.ndarray, config: VadConfig) -> list[tuple[int, int]]:
    """Speech as ``[(start_window, end_window), ...]`` (end exclusive) from window
    probabilities: hysteresis between ``threshold`` and ``neg_threshold``, pauses shorter than
    ``min_silence_ms`` bridged, bursts shorter than ``min_speech_ms`` dropped. Not padded."""
    win_ms = WINDOW_SAMPLES / RATE_HZ * 1000.0
    speech = np.zeros(len(probs), bool)
    on = False
    for i, p in enumerate(probs):
        on = p >= config.threshold or (on and p >= config.neg_threshold)
        speech[i] = on
    regions: list[list[int]] = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], speech.astype(np.int8), [0]])))
    gap = int(np.ceil(config.min_silence_ms / win_ms))
    for s, e in zip(edges[::2], edges[1::2]):
        if regions and s - regions[-1][1] < gap:
            regions[-1][1] = int(e)
        else:
            regions.append([int(s), int(e)])
    keep = config.min_speech_ms / win_ms
    return [(s, e) for s, e in regions if e - s >= keep]
