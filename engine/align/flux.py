"""Incremental spectral flux: how much new spectral energy each 10 ms of audio brings.

A loudness rise misses onsets that do not change the level much (a hit inside music, a door
over speech); a change of *spectrum* catches them. Flux of frame ``k`` is the sum, over frequency
bins, of the rise of the log-compressed magnitude from frame ``k - 1`` to frame ``k``; frame
``k``'s window is the ~32 ms of samples that *end* with frame ``k`` (``hop`` samples each), so an
onset inside frame ``k`` first shows in frame ``k``'s flux, as it does in its energy.
"""

from __future__ import annotations

import numpy as np

#: Magnitude compression ``log(1 + GAMMA·|X|)``: quiet partials count, loud ones do not dominate.
GAMMA = 100.0


class SpectralFlux:
    """Spectral flux of a contiguous sample stream, pushed in any chunking.

    Args:
        sample_rate_hz: Rate of the samples.
        hop: Samples per flux frame (``sample_rate_hz / cue_rate_hz``).
        window_s: Analysis window (rounded up to a power of two samples).
    """

    def __init__(self, sample_rate_hz: int, hop: int, window_s: float = 0.032) -> None:
        self.hop = int(hop)
        self.win = 1 << int(np.ceil(np.log2(max(self.hop, window_s * sample_rate_hz))))
        self._window = np.hanning(self.win)
        self._buf = np.zeros(self.win)  # the `win` samples before the next frame, then pending ones
        self._prev: np.ndarray | None = None  # log-magnitude spectrum of the last frame

    def push(self, x: np.ndarray) -> np.ndarray:
        """Appends samples; returns float32 flux of the frames they complete (possibly none)."""
        self._buf = np.concatenate([self._buf, np.asarray(x, np.float64)])
        n = (len(self._buf) - self.win) // self.hop
        if n <= 0:
            return np.zeros(0, np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(self._buf, self.win)[self.hop:(n + 1) * self.hop:self.hop]
        spec = np.log1p(GAMMA * np.abs(np.fft.rfft(frames * self._window, axis=1)))
        prev = spec[:1] if self._prev is None else self._prev[None]  # the first frame ever: 0
        flux = np.maximum(0.0, np.diff(np.concatenate([prev, spec]), axis=0)).sum(axis=1)
        self._prev = spec[-1].copy()
        self._buf = self._buf[n * self.hop:].copy()
        return flux.astype(np.float32)
