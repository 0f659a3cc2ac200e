"""A one-line live progress indicator on stderr (only when stderr is a terminal)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Rewrites one stderr line with segments done, media seconds and speed.

    Silent when stderr is not a TTY (logs and CI stay clean) unless ``force`` is set.
    """

    def __init__(self, label: str, force: bool = False, min_interval_s: float = 0.25) -> None:
        self.label = label
        self.enabled = force or sys.stderr.isatty()
        self.min_interval_s = min_interval_s
        self._t0 = time.monotonic()
        self._last = 0.0
        self._shown = False

    def update(self, segments: int, media_s: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.min_interval_s:
            return
        self._last = now
        wall = max(now - self._t0, 1e-9)
        sys.stderr.write(f"\r{self.label}: {segments} segments, {media_s:.1f} s media, {media_s / wall:.1f}x real time ")
        sys.stderr.flush()
        self._shown = True

    def done(self) -> None:
        if self._shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._shown = False
