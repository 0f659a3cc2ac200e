"""Streaming sync estimation: :class:`SyncTracker` runs the :mod:`engine.align.sync` pipeline
incrementally over a sliding cue window, with bounded state."""

from __future__ import annotations

import numpy as np

from engine.align.cues import (
    AudioCues,
    SegmentCueExtractor,
    SegmentCues,
    VideoCues,
    concat_audio,
    concat_video,
)
from engine.errors import InvalidInputError
from engine.align.coarse import (
    CONTEXT_BINS,
    CUT_NOVELTY,
    LagCorrelator,
    audio_features,
    choose_lag,
    naive_frame_pair,
    video_features,
)
from engine.align.splits import choose_split
from engine.align.config import SyncConfig
from engine.align.cues import grid_size
from engine.align.sync import SyncEstimate, combine, confidence_score, match_window, new_correlator, no_estimate
from engine.media.timeline import US_PER_S
from engine.align.warp_fit import WarpFit, build_warp, fit_pairs, locate_transitions


class SyncTracker:
    """Incremental sync estimation over a segment stream, with bounded state.

    Feed segments in order with :meth:`push`; the estimate (offset, drift, warp) is refined after
    each. Two kinds of evidence, as offline (:func:`engine.align.sync.estimate_from_cues`):

    * the continuous-cue lag curves (:class:`~engine.align.coarse.LagCorrelator`): every grid bin
      is added once its features are final, so at the end of the stream the curves — and the
      global lag — are exactly the offline ones, whatever the window;
    * onset pairs, matched over a sliding window and kept for at most ``max_pairs`` of the most
      recent onsets. A video onset is matched once its audio counterpart is surely buffered
      (``max_offset_ms + search_ms`` of audio past it), or at the final segment.

    Cues are kept for the last ``window_s`` seconds only.

    Args:
        config: Parameters (as for the offline estimate, which this converges to).
        window_s: Cue window the coarse search and DTW run over; must exceed ``4 × max_offset``.
        max_pairs: Onset pairs kept for the fit.

    Example:
        >>> tracker = SyncTracker()
        >>> for seg in iter_segments("clip.mp4", MediaConfig(video_width=64, video_height=48)):
        ...     est = tracker.push(seg)
        >>> est.offset_ms, est.warp_at(3.0)
    """

    def __init__(self, config: SyncConfig | None = None, *, window_s: float = 20.0, max_pairs: int = 512) -> None:
        self.config = config or SyncConfig()
        if window_s * 1000.0 < 4 * (self.config.max_offset_ms + self.config.search_ms):
            raise InvalidInputError("window_s", f"must be >= 4 x (max_offset + search) = "
                                    f"{4 * (self.config.max_offset_ms + self.config.search_ms) / 1000:.1f} s")
        if max_pairs < self.config.full_support_pairs:
            raise InvalidInputError("max_pairs", f"must be >= full_support_pairs ({self.config.full_support_pairs})")
        self.window_us = int(window_s * US_PER_S)
        self.max_pairs = max_pairs
        self._cues = SegmentCueExtractor(self.config.cues)
        self._audio: AudioCues | None = None
        self._video = VideoCues(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32),
                                np.zeros((0, int(np.prod(self.config.cues.coupling_regions))), np.float32))
        self._tv = np.zeros(0, np.int64)
        self._ta = np.zeros(0, np.int64)
        self._looked: list[tuple[int, int]] = []  # (t_video_us chunk end, onsets looked for)
        self._matched_until_us: int | None = None
        self._t_start_us: int | None = None
        self._t_end_us = 0
        self._estimate: SyncEstimate | None = None
        self._transition_cache: dict[tuple[float, float], tuple[float, float]] = {}
        self._corr: LagCorrelator | None = None
        self._frame_pairs: list[np.ndarray] = []  # naive video pairs of frames not yet in the curves' weights
        self._split = None  # the splice the continuous cues support, if any
        self._split_key: tuple[int, int] | None = None  # (spacing, last snapshot) the last search saw
        self._bins_v = 0  # grid bins whose video / audio features were added to the curves
        self._bins_a = 0

    @property
    def state_size(self) -> dict[str, int]:
        """Sizes of everything the tracker holds (bounded by ``window_s`` and ``max_pairs``)."""
        return {
            "audio_cue_frames": 0 if self._audio is None else len(self._audio.rise_db),
            "video_cue_frames": len(self._video.t_us),
            "pairs": len(self._tv),
            "looked_records": len(self._looked),
            "split_snapshots": 0 if self._corr is None else len(self._corr.snapshots),
        }

    def push(self, segment) -> SyncEstimate:
        """Adds one :class:`~engine.media.decode.Segment` and returns the refined estimate."""
        return self.push_cues(self._cues.extract(segment))

    def push_cues(self, cues: SegmentCues) -> SyncEstimate:
        """Adds one segment's cues, extracted elsewhere by a :class:`~engine.align.cues.SegmentCueExtractor`
        with this tracker's ``config.cues``, and returns the refined estimate. Use either this or
        :meth:`push` for a stream, not both."""
        if self._t_start_us is None:
            self._t_start_us = cues.t_start_us
            self._matched_until_us = cues.t_start_us
        self._t_end_us = max(self._t_end_us, cues.t_end_us)
        if cues.audio is not None:
            self._audio = cues.audio if self._audio is None else concat_audio([self._audio, cues.audio])
        if cues.video is not None:
            prev = None
            if len(self._video.t_us):
                prev = (int(self._video.t_us[-1]), float(self._video.region_mean[-1].astype(np.float64).mean()))
            self._frame_pairs.append(naive_frame_pair(cues.video, prev))
            self._video = concat_video([self._video, cues.video])
        self._update(final=cues.is_final)
        return self.estimate()

    def estimate(self) -> SyncEstimate:
        """Current estimate (confidence 0 and identity warp before there is evidence)."""
        if self._estimate is None:
            t0 = (self._t_start_us or 0) / US_PER_S
            return no_estimate(t0, self._t_end_us / US_PER_S, None)
        return self._estimate

    def warp_at(self, t_video_s: float) -> float:
        """Audio time for a video time under the warp in force now."""
        return self.estimate().warp_at(t_video_s)

    def _update(self, final: bool) -> None:
        cfg = self.config
        if self._audio is None or len(self._audio.rise_db) == 0:
            return
        self._add_bins(final)
        g = None if self._corr is None else choose_lag(self._corr, cfg.cues.cue_rate_hz, cfg)
        margin_us = int((cfg.max_offset_ms + cfg.search_ms) * 1000) + US_PER_S // 10
        ready_us = self._t_end_us if final else min(self._t_end_us, self._audio.t_end_us) - margin_us
        if ready_us > self._matched_until_us:
            win_t0 = max(self._t_start_us, self._t_end_us - self.window_us)
            # Only the new onsets are matched here; the fit runs over all kept pairs in _refit.
            pairs, _ = match_window(self._video, self._audio, cfg, win_t0, self._t_end_us,
                                    (self._matched_until_us, ready_us), None if g is None else g.lag_ms)
            self._tv = np.concatenate([self._tv, pairs.t_video_us])[-self.max_pairs :]
            self._ta = np.concatenate([self._ta, pairs.t_audio_us])[-self.max_pairs :]
            self._looked.append((ready_us, pairs.n_looked))
            self._matched_until_us = ready_us
        # The splice search reruns only when it has a new point to try (or at the end).
        key = None
        if self._corr is not None and self._corr.snapshots:
            key = (self._corr.snapshot_every, self._corr.snapshots[-1][0])
        if g is None or g.confidence >= cfg.split_max_whole_confidence:
            self._split, self._split_key = None, None  # the single lag is sure: no splice stands against it
        elif self._corr is not None and (final or key != self._split_key):
            self._split_key = key
            self._split = choose_split(self._corr, cfg.cues.cue_rate_hz, cfg, g)
        # The global lag moves with every bin, so the estimate is refreshed on every segment.
        self._refit(g)
        self._trim()

    def _add_bins(self, final: bool) -> None:
        """Adds the grid bins whose features no later cue can change to the lag curves."""
        cfg = self.config
        rate = cfg.cues.cue_rate_hz
        t0 = self._t_start_us
        if final:
            kv = grid_size(t0, self._t_end_us, rate)
            ka = max(0, min(kv, int(np.floor((self._audio.t_end_us - t0) * rate / US_PER_S))))
        else:
            last_frame = int(self._video.t_us[-1]) if len(self._video.t_us) else t0
            # A bin's centred slope needs CONTEXT_BINS more bins of cues after it.
            kv = max(0, int(np.floor((last_frame - t0) * rate / US_PER_S - 0.5)) - CONTEXT_BINS)
            ka = max(0, int(np.floor((self._audio.t_end_us - t0) * rate / US_PER_S)) - CONTEXT_BINS - 1)
        v = video_features(self._video, t0, self._bins_v, max(self._bins_v, kv), rate)
        a = audio_features(self._audio, t0, self._bins_a, max(self._bins_a, ka), rate,
                           10.0 ** (cfg.cues.audio_floor_dbfs / 10.0))
        if self._corr is None:
            self._corr = new_correlator(v.shape[1], a.shape[1], cfg)
        for pairs in self._frame_pairs:
            self._corr.add_frames(pairs)
        self._frame_pairs = []
        self._corr.add(v, a)
        self._corr.advance(final)
        self._bins_v, self._bins_a = max(self._bins_v, kv), max(self._bins_a, ka)

    def _refit(self, g) -> None:
        cfg = self.config
        # Onsets looked for, counted over the span the kept pairs cover, for the agreement factor.
        first = int(self._tv[0]) if len(self._tv) else self._matched_until_us
        self._looked = [(t, n) for t, n in self._looked if t > first] or self._looked[-1:]
        looked = sum(n for _, n in self._looked)
        tv_s, ta_s = self._tv / US_PER_S, self._ta / US_PER_S
        fit = fit_pairs(tv_s, ta_s, cfg)
        t0, t1 = self._t_start_us / US_PER_S, self._t_end_us / US_PER_S
        onset = None
        if fit is not None:
            n_in = int(fit.inliers.sum())
            conf = confidence_score(n_in, looked, fit.residual_rms_ms, cfg)
            warp = build_warp(fit.runs, fit.drift_ppm, t0, t1, self._transitions(fit))
            onset = SyncEstimate(fit.runs[0].offset_ms, fit.drift_ppm, conf, warp, fit.runs, n_in, None)
        self._estimate = combine(g, onset, t0, t1, cfg, split=self._split)

    def _transitions(self, fit: WarpFit) -> list[tuple[float, float]]:
        # Splices are narrowed with the buffered cues while their gap is inside the window; the
        # result is kept (one entry per current splice) for when those cues are gone.
        out, cache = [], {}
        buf_t0_s = min(self._audio.t0_us, int(self._video.t_us[0]) if len(self._video.t_us) else self._audio.t0_us) / US_PER_S
        for a, b in zip(fit.runs[:-1], fit.runs[1:]):
            key = (round(a.t_video_end_s, 4), round(b.t_video_start_s, 4))
            if key in self._transition_cache:
                cache[key] = self._transition_cache[key]
            elif a.t_video_end_s - 2 * self.config.max_offset_ms / 1000.0 >= buf_t0_s:
                cache[key] = locate_transitions([a, b], fit.drift_ppm, self._video, self._audio, self.config)[0]
            out.append(cache.get(key, key))
        self._transition_cache = cache
        return out

    def _trim(self) -> None:
        # Cues older than the window are dropped, but never video not yet matched.
        cut_us = min(self._t_end_us - self.window_us, self._matched_until_us)
        # ... nor cues that bins not yet in the lag curves still need.
        rate = self.config.cues.cue_rate_hz
        pending = min(self._bins_v, self._bins_a) - CONTEXT_BINS - 2
        cut_us = min(cut_us, self._t_start_us + int(pending * US_PER_S / rate))
        if self._audio is not None and self._audio.t0_us < cut_us:
            # Whole grid bins only, so the audio stays aligned with the grid the features use.
            hop = max(1, int(round(self._audio.rate_hz / self.config.cues.cue_rate_hz)))
            drop = int((cut_us - self._audio.t0_us) * self._audio.rate_hz // US_PER_S) // hop * hop
            if drop > 0:
                t0 = self._audio.t0_us + int(round(drop * US_PER_S / self._audio.rate_hz))
                energy = None if self._audio.energy is None else self._audio.energy[drop:].copy()
                flux = None if self._audio.flux is None else self._audio.flux[drop // hop:].copy()
                self._audio = AudioCues(t0, self._audio.rate_hz, self._audio.rise_db[drop:].copy(), energy, flux)
        # Keep a few frames before the cut: interpolated features need a frame on each side.
        keep = self._video.t_us >= cut_us
        idx = np.flatnonzero(keep)
        if len(idx) and idx[0] > 2:
            first = idx[0] - 2
            # ... and back to a frame that is not a cut: `motion` holds cut frames at the last
            # one before them, which must still be here (as it is offline).
            while first > 0 and self._video.novelty[first] >= CUT_NOVELTY:
                first -= 1
            keep[first:idx[0]] = True
        if not keep.all():
            self._video = self._video.select(keep)
