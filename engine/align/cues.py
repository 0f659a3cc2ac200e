"""Cue signals for audio–video sync: *when does something happen* in each stream.

Two incremental extractors turn segments into onset-strength cues, and helpers put both on one
common grid (default 100 Hz) for the coarse search and DTW:

* :class:`AudioCueExtractor` -- short-time log-energy *rise*: for every 1 ms frame, the energy of
  that frame over the mean energy of the preceding ``audio_pre_ms`` (in dB, only rises kept). A
  step in loudness peaks on the frame that contains it, so onsets are located to ~1 ms, finer
  than any video frame; slow envelopes (speech-like syllables, fades) rise only a few dB per ms
  and stay small.
* :class:`VideoCueExtractor` -- frame-change *novelty*: per-region mean absolute grey-level change
  between consecutive frames, minus that region's median change over the last few frames (so
  steady motion, which changes every frame, cancels and only sudden changes remain: flashes,
  cuts, objects appearing). Each value is stamped with its frame's PTS; nothing assumes a constant
  frame rate.

Both extractors keep only a few frames/milliseconds of state between calls, so a segment stream
of any length is processed in bounded memory, and feeding a clip in pieces gives the same cues as
feeding it whole.

Normalised cues are in [0, 1]: 0 below a floor that noise does not reach (so silent audio or a
static picture is an all-zero cue, which the estimator reads as "no evidence"), 1 at a level that
clear events reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.align.flux import SpectralFlux
from engine.errors import InvalidInputError
from engine.media.timeline import US_PER_S


@dataclass(frozen=True)
class CueConfig:
    """Parameters of the cue signals.

    Attributes:
        cue_rate_hz: Rate of the common grid both cues are placed on (coarse search and DTW).
        onset_rate_hz: Rate of the fine audio onset function; must divide the audio sample rate.
        audio_pre_ms: Background window before each fine frame that a rise is measured against.
        audio_floor_dbfs: Energy floor (dBFS) so digital silence has a defined, flat level.
        audio_rise_floor_db: Rises at or below this are treated as noise (cue 0). Frame energy of
            stationary noise fluctuates by a few dB at 1 ms; real onsets rise by tens of dB.
        audio_rise_full_db: Rise mapped to cue 1.
        video_regions: ``(rows, cols)`` grid the frame-change measure is taken over; a small
            object appearing changes one region a lot even when it barely moves the whole-frame mean.
        video_history_frames: Frames in the per-region median baseline that is subtracted.
        video_max_side_px: Frames larger than this on their long side are subsampled first (cue
            extraction needs change energy, not detail).
        video_floor: Novelty (grey levels, 0-255 scale) at or below which the cue is 0; encoder
            noise and steady motion stay under it.
        video_full: Novelty mapped to cue 1.
        coupling_regions: ``(rows, cols)`` grid of the per-region brightness kept for continuous
            coupling (a talking mouth, a lamp that follows the music): finer than
            ``video_regions`` so a small region is not averaged away.
    """

    cue_rate_hz: float = 100.0
    onset_rate_hz: float = 1000.0
    audio_pre_ms: float = 10.0
    audio_floor_dbfs: float = -80.0
    audio_rise_floor_db: float = 10.0
    audio_rise_full_db: float = 30.0
    video_regions: tuple[int, int] = (4, 4)
    video_history_frames: int = 4
    video_max_side_px: int = 128
    video_floor: float = 2.0
    video_full: float = 20.0
    coupling_regions: tuple[int, int] = (8, 8)

    def __post_init__(self) -> None:
        # Raises InvalidInputError naming the field on inconsistent settings.
        if self.cue_rate_hz <= 0 or self.onset_rate_hz <= 0:
            raise InvalidInputError("cue_rate_hz/onset_rate_hz", "must be positive")
        if self.audio_rise_full_db <= self.audio_rise_floor_db:
            raise InvalidInputError("audio_rise_full_db", "must exceed audio_rise_floor_db")
        if self.video_full <= self.video_floor:
            raise InvalidInputError("video_full", "must exceed video_floor")
        if min(self.video_regions) < 1 or self.video_history_frames < 1 or min(self.coupling_regions) < 1:
            raise InvalidInputError("video_regions/video_history_frames", "must be >= 1")


@dataclass
class AudioCues:
    """Fine audio onset function.

    Attributes:
        t0_us: Time of frame 0 (its start), microseconds on the stream's timeline.
        rate_hz: Frames per second (``onset_rate_hz``).
        rise_db: float32 ``[N]`` energy rise of each frame over its background, dB (>= 0).
        energy: float32 ``[N]`` mean-square level of each frame (the loudness envelope the
            continuous cues are built from), or None from older producers.
        flux: float32 ``[N // (rate_hz / cue_rate_hz)]`` spectral flux per cue-grid frame
            (:mod:`engine.align.flux`; frame ``k`` spans onset frames ``k·r .. k·r + r - 1``),
            or None.
    """

    t0_us: int
    rate_hz: float
    rise_db: np.ndarray
    energy: np.ndarray | None = None
    flux: np.ndarray | None = None

    @property
    def t_end_us(self) -> int:
        """End of the last frame."""
        return self.t0_us + int(round(len(self.rise_db) * US_PER_S / self.rate_hz))

    def times_us(self) -> np.ndarray:
        """int64 ``[N]`` start time of each frame."""
        return self.t0_us + np.round(np.arange(len(self.rise_db)) * US_PER_S / self.rate_hz).astype(np.int64)


@dataclass
class VideoCues:
    """Per-frame video novelty.

    Attributes:
        t_us: int64 ``[F]`` PTS-derived time of each frame.
        novelty: float32 ``[F]`` sudden-change strength of each frame, grey levels (0-255 scale).
        frame_diff: float32 ``[F]`` mean absolute grey change from the previous frame (0 for the
            first), or None.
        region_mean: float32 ``[F, R]`` mean grey level of each ``coupling_regions`` region, or None.
    """

    t_us: np.ndarray
    novelty: np.ndarray
    frame_diff: np.ndarray | None = None
    region_mean: np.ndarray | None = None

    def select(self, keep: np.ndarray) -> "VideoCues":
        """The frames where ``keep`` is true (all fields)."""
        return VideoCues(self.t_us[keep], self.novelty[keep],
                         None if self.frame_diff is None else self.frame_diff[keep],
                         None if self.region_mean is None else self.region_mean[keep])


def concat_audio(chunks: list[AudioCues]) -> AudioCues:
    """Joins contiguous chunks (as returned by successive :meth:`AudioCueExtractor.push`)."""
    if not chunks:
        raise InvalidInputError("chunks", "no audio cue chunks")
    energy = flux = None
    if all(c.energy is not None for c in chunks):
        energy = np.concatenate([c.energy for c in chunks])
    if all(c.flux is not None for c in chunks):
        flux = np.concatenate([c.flux for c in chunks])
    return AudioCues(chunks[0].t0_us, chunks[0].rate_hz, np.concatenate([c.rise_db for c in chunks]), energy, flux)


def concat_video(chunks: list[VideoCues]) -> VideoCues:
    """Joins chunks in time order."""
    chunks = [c for c in chunks if len(c.t_us)] or chunks[:1]
    if not chunks:
        return VideoCues(np.zeros(0, np.int64), np.zeros(0, np.float32))

    def cat(name):
        parts = [getattr(c, name) for c in chunks]
        return None if any(p is None for p in parts) else np.concatenate(parts)

    return VideoCues(cat("t_us"), cat("novelty"), cat("frame_diff"), cat("region_mean"))


class AudioCueExtractor:
    """Incremental fine onset function of mono audio.

    Args:
        sample_rate_hz: Rate of the samples pushed.
        config: Cue parameters.

    Samples pushed across calls are treated as one contiguous signal starting at the first call's
    ``t_start_us``; leftover samples (less than one frame) and the background window carry over.
    """

    def __init__(self, sample_rate_hz: int, config: CueConfig | None = None) -> None:
        self.config = config or CueConfig()
        hop = sample_rate_hz / self.config.onset_rate_hz
        if hop != int(hop) or hop < 1:
            raise InvalidInputError("onset_rate_hz", f"{self.config.onset_rate_hz} Hz does not divide {sample_rate_hz} Hz")
        self.sample_rate_hz = sample_rate_hz
        self._hop = int(hop)
        self._pre = max(1, int(round(self.config.audio_pre_ms * self.config.onset_rate_hz / 1000.0)))
        self._floor = 10.0 ** (self.config.audio_floor_dbfs / 10.0)
        self._left = np.zeros(0, np.float64)
        self._hist = np.zeros(0, np.float64)  # energies of the last `_pre` frames
        self._t0_us: int | None = None
        self._frames_out = 0
        flux_hop = sample_rate_hz / self.config.cue_rate_hz
        if flux_hop != int(flux_hop):
            raise InvalidInputError("cue_rate_hz", f"{self.config.cue_rate_hz} Hz does not divide {sample_rate_hz} Hz")
        self._flux = SpectralFlux(sample_rate_hz, int(flux_hop))

    def push(self, samples: np.ndarray, t_start_us: int = 0) -> AudioCues:
        """Appends samples; returns the onset frames they complete.

        Args:
            samples: float ``[L]`` mono PCM in [-1, 1].
            t_start_us: Time of ``samples[0]``; only the first call's value is used (the signal is
                contiguous by contract).

        Returns:
            The new frames (possibly none), stamped on the first call's clock.
        """
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim != 1:
            raise InvalidInputError("samples", f"must be mono 1-D, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise InvalidInputError("samples", "contains NaN or inf")
        if self._t0_us is None:
            self._t0_us = int(t_start_us)
        flux = self._flux.push(x)
        x = np.concatenate([self._left, x])
        n = len(x) // self._hop
        self._left = x[n * self._hop :].copy()
        t0 = self._t0_us + int(round(self._frames_out * US_PER_S / self.config.onset_rate_hz))
        if n == 0:
            return AudioCues(t0, self.config.onset_rate_hz, np.zeros(0, np.float32), np.zeros(0, np.float32), flux)
        energy = (x[: n * self._hop].reshape(n, self._hop) ** 2).mean(axis=1) + self._floor
        ext = np.concatenate([self._hist, energy])
        # Mean energy of the `_pre` frames before each new frame (fewer at the very start).
        csum = np.concatenate([[0.0], np.cumsum(ext)])
        idx = np.arange(len(self._hist), len(ext))
        lo = np.maximum(0, idx - self._pre)
        count = np.maximum(1, idx - lo)
        pre = np.where(idx > lo, (csum[idx] - csum[lo]) / count, energy)
        rise = np.maximum(0.0, 10.0 * np.log10(energy / pre))
        self._hist = ext[-self._pre :].copy()
        self._frames_out += n
        return AudioCues(t0, self.config.onset_rate_hz, rise.astype(np.float32), energy.astype(np.float32), flux)


class VideoCueExtractor:
    """Incremental per-frame novelty of RGB frames.

    Args:
        config: Cue parameters.

    The previous frame and a few frames of per-region change history carry over between calls.
    """

    def __init__(self, config: CueConfig | None = None) -> None:
        self.config = config or CueConfig()
        self._prev: np.ndarray | None = None
        self._hist: list[np.ndarray] = []

    def _grey(self, frames: np.ndarray) -> np.ndarray:
        h, w = frames.shape[1:3]
        step = max(1, int(np.ceil(max(h, w) / self.config.video_max_side_px)))
        f = frames[:, ::step, ::step].astype(np.float32)
        # Same value as .mean(axis=3), several times faster than numpy's reduction over a
        # length-3 inner axis.
        return (f[..., 0] + f[..., 1] + f[..., 2]) / np.float32(3.0)

    def _region_means(self, diff: np.ndarray, regions: tuple[int, int] | None = None) -> np.ndarray:
        """Mean of each frame's ``diff`` over an (almost) even region grid; edges absorb the
        remainder. ``[F, h, w] -> [F, rows * cols]``."""
        rows, cols = regions or self.config.video_regions
        rows, cols = min(rows, diff.shape[1]), min(cols, diff.shape[2])
        h, w = diff.shape[1:]
        rb = np.linspace(0, h, rows + 1).astype(int)
        cb = np.linspace(0, w, cols + 1).astype(int)
        sums = np.add.reduceat(np.add.reduceat(diff.astype(np.float64), rb[:-1], axis=1), cb[:-1], axis=2)
        area = np.outer(np.diff(rb), np.diff(cb))
        return (sums / area).reshape(diff.shape[0], rows * cols)

    def push(self, frames: np.ndarray, t_us: np.ndarray) -> VideoCues:
        """Appends frames; returns their novelty.

        Args:
            frames: uint8 ``[F, H, W, 3]`` RGB frames (F may be 0).
            t_us: int64 ``[F]`` their PTS-derived times.

        Returns:
            One novelty value per frame (the first frame ever has novelty 0: nothing to compare).
        """
        frames = np.asarray(frames)
        t = np.asarray(t_us, dtype=np.int64)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise InvalidInputError("frames", f"must be RGB [F, H, W, 3], got shape {frames.shape}")
        if t.shape != (frames.shape[0],):
            raise InvalidInputError("t_us", f"must be [{frames.shape[0]}], got shape {t.shape}")
        out = np.zeros(frames.shape[0], np.float32)
        fdiff = np.zeros(frames.shape[0], np.float32)
        rows, cols = self.config.coupling_regions
        if frames.shape[0] == 0:
            return VideoCues(t, out, fdiff, np.zeros((0, rows * cols), np.float32))
        grey = self._grey(frames)
        regions = np.zeros((grey.shape[0], rows * cols), np.float32)
        rm = self._region_means(grey, (rows, cols)).astype(np.float32)
        regions[:, : rm.shape[1]] = rm  # frames smaller than the grid leave the rest at 0
        if self._prev is None or self._prev.shape != grey.shape[1:]:
            # Nothing to compare the first frame with (stream start or a resolution change).
            self._prev, grey, first = grey[0], grey[1:], 1
        else:
            first = 0
        if grey.shape[0] == 0:
            return VideoCues(t, out, fdiff, regions)
        # Vectorised over the frames of the call (a per-frame loop cost more than decoding).
        prev = np.concatenate([self._prev[None], grey[:-1]])
        diff = np.abs(grey - prev)
        fdiff[first:] = diff.mean(axis=(1, 2))
        self._prev = grey[-1].copy()  # not a view that would keep the whole call's frames alive
        change = self._region_means(diff)  # [F', regions]
        hist_len = self.config.video_history_frames
        past = np.concatenate([np.stack(self._hist), change]) if self._hist else change
        offset = len(self._hist)
        # Baseline of frame k: the per-region median of the (up to) `hist_len` changes before it.
        base = np.zeros_like(change)
        full = max(0, min(change.shape[0], hist_len - offset))  # frames before that with a shorter history
        for k in range(full):
            if offset + k > 0:
                base[k] = np.median(past[: offset + k], axis=0)
        if full < change.shape[0]:
            windows = np.lib.stride_tricks.sliding_window_view(past, hist_len, axis=0)  # [.., R, H]
            base[full:] = np.median(windows[offset + full - hist_len : offset + change.shape[0] - hist_len], axis=-1)
        # Mean over regions of the excess change: a flash or cut excites every region, a small
        # new object one region; steady motion is in the baseline and cancels.
        excess = np.maximum(0.0, change - base)
        out[first:] = (excess.mean(axis=1) + excess.max(axis=1)) / 2.0
        self._hist = list(past[-hist_len:]) if hist_len > 0 else []
        return VideoCues(t, out, fdiff, regions)


@dataclass(frozen=True)
class SegmentCues:
    """One segment's sync evidence: its span and its cue chunks (what a sync tracker consumes).

    About 15 kB per 2 s segment at 25 fps (most of it the 8×8 region brightness) where the
    segment's frames are megabytes: a decode process extracts these and ships them to the
    stream's tracker instead of the media.
    """

    index: int
    t_start_us: int
    t_end_us: int
    is_final: bool
    audio: AudioCues | None
    video: VideoCues | None


class SegmentCueExtractor:
    """Per-stream, stateful cue extraction from consecutive segments (audio onsets, video novelty).

    Args:
        config: Cue parameters (must be the tracker's ``SyncConfig.cues``).
    """

    def __init__(self, config: CueConfig | None = None) -> None:
        self.config = config or CueConfig()
        self._audio: AudioCueExtractor | None = None
        self._video = VideoCueExtractor(self.config)

    def extract(self, segment) -> SegmentCues:
        """Cues of the next :class:`~engine.media.decode.Segment` of the stream (segments in order)."""
        audio = video = None
        if segment.audio is not None:
            if self._audio is None:
                self._audio = AudioCueExtractor(segment.audio_rate_hz, self.config)
            audio = self._audio.push(segment.audio, segment.t_start_us)
        if segment.video is not None and len(segment.video_t_us):
            video = self._video.push(segment.video, segment.video_t_us)
        return SegmentCues(int(segment.index), int(segment.t_start_us), int(segment.t_end_us), bool(segment.is_final),
                           audio, video)


def normalize_audio(rise_db: np.ndarray, config: CueConfig) -> np.ndarray:
    """Maps rises (dB) to [0, 1]: 0 at/below ``audio_rise_floor_db``, 1 at ``audio_rise_full_db``."""
    span = config.audio_rise_full_db - config.audio_rise_floor_db
    return np.clip((np.asarray(rise_db, np.float64) - config.audio_rise_floor_db) / span, 0.0, 1.0)


def normalize_video(novelty: np.ndarray, config: CueConfig) -> np.ndarray:
    """Maps novelty (grey levels) to [0, 1]: 0 at/below ``video_floor``, 1 at ``video_full``."""
    span = config.video_full - config.video_floor
    return np.clip((np.asarray(novelty, np.float64) - config.video_floor) / span, 0.0, 1.0)


def grid_size(t0_us: int, t1_us: int, rate_hz: float) -> int:
    """Number of grid bins covering ``[t0_us, t1_us)``."""
    return max(0, int(np.ceil((t1_us - t0_us) * rate_hz / US_PER_S)))


def audio_on_grid(cues: AudioCues, t0_us: int, n_bins: int, config: CueConfig) -> np.ndarray:
    """Normalised audio cue on the common grid: bin ``k`` covers ``[t0 + k/rate, t0 + (k+1)/rate)``
    and holds the strongest fine onset inside it (max-pooling keeps 1 ms onsets at full height)."""
    out = np.zeros(n_bins, np.float64)
    if n_bins == 0 or len(cues.rise_db) == 0:
        return out
    val = normalize_audio(cues.rise_db, config)
    k = np.floor((cues.times_us() - t0_us) * config.cue_rate_hz / US_PER_S).astype(np.int64)
    ok = (k >= 0) & (k < n_bins)
    np.maximum.at(out, k[ok], val[ok])
    return out


def video_on_grid(cues: VideoCues, t0_us: int, n_bins: int, config: CueConfig) -> np.ndarray:
    """Normalised video cue on the common grid: each frame's value lands in the bin holding its PTS
    (video exists only at frame times, which may be irregular; nothing is interpolated between)."""
    out = np.zeros(n_bins, np.float64)
    if n_bins == 0 or len(cues.t_us) == 0:
        return out
    val = normalize_video(cues.novelty, config)
    k = np.floor((cues.t_us - t0_us) * config.cue_rate_hz / US_PER_S).astype(np.int64)
    ok = (k >= 0) & (k < n_bins)
    np.maximum.at(out, k[ok], val[ok])
    return out


def pick_events(t_us: np.ndarray, strength: np.ndarray, threshold: float, refractory_us: int) -> np.ndarray:
    """Indices of event onsets: samples at/above ``threshold``, keeping only the first of any run
    closer than ``refractory_us`` to an accepted one (a flash's switch-off, or the tail of an
    onset, is not a second event)."""
    idx = np.flatnonzero(np.asarray(strength) >= threshold)
    keep: list[int] = []
    last = None
    for i in idx:
        if last is None or t_us[i] - last >= refractory_us:
            keep.append(int(i))
            last = int(t_us[i])
    return np.asarray(keep, dtype=np.int64)
