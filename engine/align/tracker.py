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
from engine.align.config import SyncConfig
from engine.align.sync import SyncEstimate, confidence_score, match_window, no_estimate
from engine.media.timeline import US_PER_S
from engine.align.warp_fit import WarpFit, build_warp, fit_pairs, locate_transitions


class SyncTracker:
    """Incremental sync estimation over a segment stream, with bounded state.

    Feed segments in order with :meth:`push`; the estimate (offset, drift, warp) is refined after
    each. Cues are kept for the last ``window_s`` seconds only; onset pairs (the evidence the fit
    uses) for at most ``max_pairs`` of the most recent onsets. A video onset is matched once its
    audio counterpart is surely buffered (``max_offset_ms + search_ms`` of audio past it), or at
    the final segment.

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
        self._video = VideoCues(np.zeros(0, np.int64), np.zeros(0, np.float32))
        self._tv = np.zeros(0, np.int64)
        self._ta = np.zeros(0, np.int64)
        self._looked: list[tuple[int, int]] = []  # (t_video_us chunk end, onsets looked for)
        self._matched_until_us: int | None = None
        self._t_start_us: int | None = None
        self._t_end_us = 0
        self._estimate: SyncEstimate | None = None
        self._transition_cache: dict[tuple[float, float], tuple[float, float]] = {}

    @property
    def state_size(self) -> dict[str, int]:
        """Sizes of everything the tracker holds (bounded by ``window_s`` and ``max_pairs``)."""
        return {
            "audio_cue_frames": 0 if self._audio is None else len(self._audio.rise_db),
            "video_cue_frames": len(self._video.t_us),
            "pairs": len(self._tv),
            "looked_records": len(self._looked),
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
        margin_us = int((cfg.max_offset_ms + cfg.search_ms) * 1000) + US_PER_S // 10
        ready_us = self._t_end_us if final else min(self._t_end_us, self._audio.t_end_us) - margin_us
        if ready_us > self._matched_until_us:
            win_t0 = max(self._t_start_us, self._t_end_us - self.window_us)
            # Only the new onsets are matched here; the fit runs over all kept pairs in _refit.
            pairs, _ = match_window(self._video, self._audio, cfg, win_t0, self._t_end_us,
                                    (self._matched_until_us, ready_us))
            self._tv = np.concatenate([self._tv, pairs.t_video_us])[-self.max_pairs :]
            self._ta = np.concatenate([self._ta, pairs.t_audio_us])[-self.max_pairs :]
            self._looked.append((ready_us, pairs.n_looked))
            self._matched_until_us = ready_us
            self._refit()
        self._trim()

    def _refit(self) -> None:
        cfg = self.config
        # Onsets looked for, counted over the span the kept pairs cover, for the agreement factor.
        first = int(self._tv[0]) if len(self._tv) else self._matched_until_us
        self._looked = [(t, n) for t, n in self._looked if t > first] or self._looked[-1:]
        looked = sum(n for _, n in self._looked)
        tv_s, ta_s = self._tv / US_PER_S, self._ta / US_PER_S
        fit = fit_pairs(tv_s, ta_s, cfg)
        t0, t1 = self._t_start_us / US_PER_S, self._t_end_us / US_PER_S
        if fit is None:
            self._estimate = no_estimate(t0, t1, None)
            return
        n_in = int(fit.inliers.sum())
        conf = confidence_score(n_in, looked, fit.residual_rms_ms, cfg)
        warp = build_warp(fit.runs, fit.drift_ppm, t0, t1, self._transitions(fit))
        self._estimate = SyncEstimate(fit.runs[0].offset_ms, fit.drift_ppm, conf, warp, fit.runs, n_in, None)

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
        if self._audio is not None and self._audio.t0_us < cut_us:
            drop = int((cut_us - self._audio.t0_us) * self._audio.rate_hz // US_PER_S)
            if drop > 0:
                t0 = self._audio.t0_us + int(round(drop * US_PER_S / self._audio.rate_hz))
                self._audio = AudioCues(t0, self._audio.rate_hz, self._audio.rise_db[drop:].copy())
        keep = self._video.t_us >= cut_us
        if not keep.all():
            self._video = VideoCues(self._video.t_us[keep], self._video.novelty[keep])
