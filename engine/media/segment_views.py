"""Lightweight views of a decoded segment that pipeline stages ship between processes.

Kept apart from the tokenizer and the sync code so that a decode process (a source actor) can
build them without importing torch or numba: each source actor starts faster and holds less.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from engine.media.decode import Segment


def token_frame_indices(t_us: np.ndarray, fps: float | None) -> np.ndarray:
    """First frame of each ``1/fps`` window of frame times (all frames when ``fps`` is None)."""
    if fps is None:
        return np.arange(len(t_us))
    window = np.asarray(t_us, np.int64) // int(1_000_000 / fps)
    return np.flatnonzero(np.r_[True, window[1:] != window[:-1]])


def token_view(segment: Segment, fps: float | None) -> Segment:
    """The segment with only the frames that get tokens (what a tokenizer stage needs).

    Pipelines ship this instead of every frame: 5 of 25 frames per second is 5x less data
    between processes, and tokenizing it gives exactly the same tokens.
    """
    if not segment.frames:
        return segment
    keep = token_frame_indices(segment.video_t_us, fps)
    return replace(segment, frames=[segment.frames[i] for i in keep], video_t_us=segment.video_t_us[keep])
