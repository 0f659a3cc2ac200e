"""Windows of dense code streams for masked reconstruction: a video window, an audio window near
it (independently placed, so where a window starts says nothing about sync), spans of masked
audio tokens, and an optional artificial shift of the audio against the video.

A shift ``s`` moves the video, never the audio: the video window keeps its labelled times and
shows the frames from ``s`` later (a frame of stream time ``τ`` is labelled ``τ - s``), which is
the audio running ``s`` late relative to it. The audio window, and so the masked content the loss
is scored on, is the same at every shift, and the windows' edges are too; only what the video
says about that audio changes. (Shifting the audio instead puts different content under the
masks at each shift, and how hard that content is swamps the curve.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.errors import InvalidInputError, check_fields
from engine.train.code_streams import CodeStreams


@dataclass(frozen=True)
class WindowConfig:
    """How windows are cut.

    Args:
        window_us: Length of the video window and of the audio window.
        audio_stride: Keep every n-th audio frame (2: 20 ms tokens from 10 ms log-mel hops).
        jitter_us: The audio window starts up to this far before or after the video window.
        mask_ratio: Share of the audio tokens that are masked (in spans).
        span_us: Length of one masked span: long enough that the audio around it cannot fill
            it in alone, so the video has to.
    """

    window_us: int = 4_000_000
    audio_stride: int = 2
    jitter_us: int = 400_000
    mask_ratio: float = 0.4
    span_us: int = 400_000

    def __post_init__(self) -> None:
        check_fields(self, positive=("window_us", "audio_stride", "span_us"))
        if self.jitter_us < 0 or self.jitter_us >= self.window_us:
            raise InvalidInputError("jitter_us", f"must be in [0, window_us), got {self.jitter_us}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise InvalidInputError("mask_ratio", f"must be in (0, 1), got {self.mask_ratio}")


def start_range_us(streams: CodeStreams, config: WindowConfig, max_shift_us: int = 0) -> tuple[int, int]:
    """Where a video window may start so that it and its audio window, at any jitter and any shift up to
    ``max_shift_us``, lie inside the streams (an empty range when the source is too short)."""
    lo, hi = streams.span_us
    margin = config.jitter_us + max_shift_us
    return lo + margin, hi - margin - config.window_us


def span_mask(n: int, config: WindowConfig, token_us: int, rng: np.random.Generator) -> np.ndarray:
    """``[n]`` bool: spans of ``span_us`` set at random starts until ``mask_ratio`` is reached."""
    span = max(1, config.span_us // token_us)
    mask = np.zeros(n, bool)
    want = int(round(config.mask_ratio * n))
    while mask.sum() < want:
        s = int(rng.integers(0, max(1, n - span + 1)))
        mask[s:s + span] = True
    return mask


def cut_window(streams: CodeStreams, v0_us: int, a0_us: int, config: WindowConfig, mask: np.ndarray,
               shift_us: int = 0) -> dict:
    """One window, times relative to ``v0_us`` (the video window's start).

    Args:
        streams: The source.
        v0_us: Video window start.
        a0_us: Audio window start (claimed time).
        config: Window settings.
        mask: ``[>= n_audio]`` bool over the audio window's tokens (cut to their count).
        shift_us: The video's frames are taken from ``shift_us`` later than they are labelled
            (the audio, relative to them, runs ``shift_us`` late).
    """
    w = config.window_us
    src0 = v0_us + shift_us
    v = (streams.video_t_us >= src0) & (streams.video_t_us < src0 + w)
    a = np.flatnonzero((streams.audio_t_us >= a0_us) & (streams.audio_t_us < a0_us + w))[::config.audio_stride]
    if len(a) == 0 or not v.any():
        raise InvalidInputError(streams.name, f"no tokens in the window at {v0_us} us")
    return {"audio": streams.audio_codes[a], "audio_t": streams.audio_t_us[a] - v0_us,
            "video": streams.video_codes[v], "video_t": streams.video_t_us[v] - shift_us - v0_us,
            "mask": mask[:len(a)].copy()}


def collate(windows: list[dict]) -> dict[str, torch.Tensor]:
    """Pads windows into a batch; ``*_pad`` are True at padding (never masked, never scored)."""
    ta = max(len(w["audio"]) for w in windows)
    tv = max(len(w["video"]) for w in windows)
    b = len(windows)
    la, (r, lv) = windows[0]["audio"].shape[1], windows[0]["video"].shape[1:]
    out = {"audio": np.zeros((b, ta, la), np.int64), "audio_t": np.zeros((b, ta), np.int64),
           "audio_pad": np.ones((b, ta), bool), "mask": np.zeros((b, ta), bool),
           "video": np.zeros((b, tv, r, lv), np.int64), "video_t": np.zeros((b, tv), np.int64),
           "video_pad": np.ones((b, tv), bool)}
    for i, w in enumerate(windows):
        n, m = len(w["audio"]), len(w["video"])
        out["audio"][i, :n], out["audio_t"][i, :n], out["audio_pad"][i, :n] = w["audio"], w["audio_t"], False
        out["mask"][i, :n] = w["mask"]
        out["video"][i, :m], out["video_t"][i, :m], out["video_pad"][i, :m] = w["video"], w["video_t"], False
    return {k: torch.from_numpy(v) for k, v in out.items()}
