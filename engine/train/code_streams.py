"""Dense RVQ code streams of one source for the local losses: every audio frame's codes and every
video frame's region codes, each with its µs time on the unified timeline.

The stored rows hold *compressed* tokens (merged runs, keyframes); a masked-reconstruction loss
wants the regular streams underneath, so this reads the tokenizer's quantizers directly. The
times are the segments' (PTS-derived), so a shift between the streams is a shift in time, never
in index.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from engine.errors import InvalidInputError


@dataclass(frozen=True)
class CodeStreams:
    """One source's codes.

    Attributes:
        name: The source (for reports).
        audio_codes: int64 ``[Na, La]`` codes of each audio frame.
        audio_t_us: int64 ``[Na]`` frame-centre time of each audio frame.
        video_codes: int64 ``[Nv, R, Lv]`` codes of each of ``R`` regions of each video frame.
        video_t_us: int64 ``[Nv]`` time of each video frame.
    """

    name: str
    audio_codes: np.ndarray
    audio_t_us: np.ndarray
    video_codes: np.ndarray
    video_t_us: np.ndarray

    def __post_init__(self) -> None:
        if self.audio_codes.ndim != 2 or len(self.audio_codes) != len(self.audio_t_us):
            raise InvalidInputError("audio_codes", f"{self.name}: need [Na, La] codes and [Na] times, got "
                                                   f"{self.audio_codes.shape} and {self.audio_t_us.shape}")
        if self.video_codes.ndim != 3 or len(self.video_codes) != len(self.video_t_us):
            raise InvalidInputError("video_codes", f"{self.name}: need [Nv, R, Lv] codes and [Nv] times, got "
                                                   f"{self.video_codes.shape} and {self.video_t_us.shape}")

    @property
    def span_us(self) -> tuple[int, int]:
        """The time both streams cover."""
        return (max(int(self.audio_t_us[0]), int(self.video_t_us[0])),
                min(int(self.audio_t_us[-1]), int(self.video_t_us[-1])))

    def with_audio_times(self, t_us: np.ndarray) -> CodeStreams:
        """The same codes with the audio frames re-timed (e.g. onto the video's timeline by a
        known offset and drift)."""
        return CodeStreams(self.name, self.audio_codes, np.asarray(t_us, np.int64), self.video_codes, self.video_t_us)


def code_streams(name: str, tokenizer, segments: Iterable) -> CodeStreams:
    """Encodes a source's segments into dense code streams.

    Args:
        name: The source's name.
        tokenizer: A fitted :class:`~engine.tokenize.tokenizer.Tokenizer` with both quantizers.
        segments: The source's :class:`~engine.media.decode.Segment` s, in order.

    Raises:
        InvalidInputError: The tokenizer lacks a quantizer, or the source lacks audio or video.
    """
    if tokenizer.audio_rvq is None or tokenizer.video_rvq is None:
        raise InvalidInputError("tokenizer", "dense code streams need both audio and video codebooks")
    a_codes, a_t, v_codes, v_t = [], [], [], []
    for seg in segments:
        if seg.audio is not None and seg.n_audio_samples > 0:
            f = tokenizer.audio_extractor.extract(seg.audio, seg.t_start_us)
            x = tokenizer.audio_norm(f.values) if tokenizer.audio_norm else f.values
            a_codes.append(np.asarray(tokenizer.audio_rvq.encode(x), np.int64))
            a_t.append(f.t_us)
        if seg.frames is not None and seg.n_video_frames > 0:
            keep = tokenizer.token_frames(seg.video_t_us)
            f = tokenizer.video_extractor.extract(np.stack([seg.frames[i] for i in keep]), seg.video_t_us[keep])
            x = tokenizer.video_norm(f.values) if tokenizer.video_norm else f.values
            codes = np.asarray(tokenizer.video_rvq.encode(x), np.int64)
            v_codes.append(codes.reshape(len(keep), -1, codes.shape[-1]))
            v_t.append(seg.video_t_us[keep])
    if not a_codes or not v_codes:
        raise InvalidInputError(name, "needs both an audio and a video stream")
    return CodeStreams(name, np.concatenate(a_codes), np.concatenate(a_t).astype(np.int64),
                       np.concatenate(v_codes), np.concatenate(v_t).astype(np.int64))
