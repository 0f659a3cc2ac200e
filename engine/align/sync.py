"""Audio–video sync estimation: offset, drift and a piecewise-linear warp for one clip.

Sign convention (the project's one): for an event seen at ``t_video`` and heard at ``t_audio``::

    t_audio = offset_s + t_video × (1 + drift_ppm · 1e-6)      (positive offset = audio late)

where ``offset_s`` may jump at splices. Pipeline (:func:`estimate_from_cues`):

1. **Cues** (:mod:`engine.align.cues`): audio onset strength and loudness (1 ms), video novelty,
   frame difference and per-region brightness (per frame, at its PTS).
2. **Global lag** (:func:`global_lag`, :mod:`engine.align.coarse`): lagged correlation of
   continuous cue pairs; the naive peer's curve unless one pair (a talking mouth's region against
   the loudness) is clearly stronger and repeated by both interleaved halves of the clip.
   Confidence from peak height, prominence and that agreement. Where that lag is unsure, a
   splice is looked for on the same curves (:func:`engine.align.splits.choose_split`): one lag
   before a point and another after it, each confident on its own.
3. **Fine path** (:func:`dtw_path`): banded DTW between the onset cues, centred on the global lag
   and wide enough (``band_ms``) for the offset to jump at a splice.
4. **Event matching** (:func:`engine.align.warp_fit.match_onsets`): every video onset is paired with
   the strongest audio onset near where the path puts it, precise to ~1 ms.
5. **Robust fit** (:mod:`engine.align.warp_fit`): runs of constant offset with one shared drift
   (kept only when significant), fit with outlier rejection, become the warp.
6. **Combination** (:func:`combine`): the onset warp is used when it is confident and agrees with
   the global lag (splices or drift need more confidence); otherwise the global lag, offset
   only, with its own confidence. Below :data:`LOW_CONFIDENCE` the estimate is a best guess
   (``low_confidence``); ``method == "none"`` (offset 0, confidence 0) only when no cue carries
   any evidence (digital silence, a frozen picture).

:func:`estimate_sync` runs the pipeline on a media source; :class:`engine.align.tracker.SyncTracker`
runs the same steps incrementally for the streaming pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from engine.align.cues import (
    AudioCueExtractor,
    AudioCues,
    CueConfig,
    VideoCueExtractor,
    VideoCues,
    audio_on_grid,
    concat_audio,
    concat_video,
    grid_size,
    video_on_grid,
)
from engine.align.coarse import (
    GlobalLag,
    LagCorrelator,
    audio_features,
    choose_lag,
    naive_frame_pair,
    subbin_peak,
    video_features,
)
from engine.align.config import LOW_CONFIDENCE, SyncConfig
from engine.align.dtw import DTWConfig, dtw
from engine.align.splits import SplitLag, choose_split
from engine.media.timeline import US_PER_S
from engine.align.warp_fit import WarpRun, build_warp, fit_pairs, locate_transitions, match_onsets

@dataclass
class SyncDiagnostics:
    """What the estimate was made from (for plots and debugging).

    Attributes:
        t0_s: Time of grid bin 0 (video and audio timelines share it).
        t_end_s: End of the span the grids cover.
        cue_rate_hz: Grid rate.
        video_cue: float ``[N]`` normalised video cue on the grid.
        audio_cue: float ``[M]`` normalised audio cue on the grid.
        dtw_path: int ``[K, 2]`` DTW path ``(video bin, audio bin)``, or empty.
        coarse_offset_ms: Lag of the cross-correlation peak (None without evidence).
        pairs_t_video_s: Matched video onset times.
        pairs_t_audio_s: Matched audio onset times.
        inliers: bool mask over the pairs: used by the fit.
        n_video_onsets: Video onsets that were looked for in the audio.
        global_lag: The coarse stage's answer (curve, peak, which cue pair won), or None.
        onset_confidence: Confidence of the onset path's fit (0 without one).
        coupled_video: The winning continuous cue pair's video signal on the grid (the naive
            peer's z(frame diff) + z(|dB/dt|) when it won), or None.
        coupled_audio: Its audio signal on the grid, or None.
        split: The splice the continuous cues support (lags before and after), or None.
    """

    t0_s: float
    t_end_s: float
    cue_rate_hz: float
    video_cue: np.ndarray
    audio_cue: np.ndarray
    dtw_path: np.ndarray
    coarse_offset_ms: float | None
    pairs_t_video_s: np.ndarray
    pairs_t_audio_s: np.ndarray
    inliers: np.ndarray
    n_video_onsets: int
    global_lag: GlobalLag | None = None
    split: SplitLag | None = None
    onset_confidence: float = 0.0
    coupled_video: np.ndarray | None = None
    coupled_audio: np.ndarray | None = None


@dataclass
class SyncEstimate:
    """Result of sync estimation (sign convention in the module docstring).

    Attributes:
        offset_ms: Offset at video time 0 (first run's line), positive = audio late.
        drift_ppm: Audio clock drift relative to video, parts per million.
        confidence: In [0, 1]; below :data:`LOW_CONFIDENCE` do not trust the numbers.
        warp: float ``[K, 2]`` rows ``(t_video_s, t_audio_s)``: piecewise-linear, non-decreasing
            in both columns, strictly increasing in ``t_video_s``, first row at/before
            ``t_start_s`` and last at/after ``t_end_s``.
        runs: The constant-offset runs (more than one = splices).
        n_pairs: Consistent (inlier) onset pairs behind the fit.
        diagnostics: Inputs of the estimate, for plots (None when not kept).
        method: ``"onsets"`` (matched events: offset, drift, splices), ``"global"`` (the
            continuous-cue global lag alone: offset only) or ``"none"`` (no evidence at all).
    """

    offset_ms: float
    drift_ppm: float
    confidence: float
    warp: np.ndarray
    runs: list[WarpRun]
    n_pairs: int
    diagnostics: SyncDiagnostics | None = None
    method: str = "onsets"

    @property
    def low_confidence(self) -> bool:
        """True when the numbers are a best guess, not a measurement (below LOW_CONFIDENCE)."""
        return self.confidence < LOW_CONFIDENCE

    def warp_at(self, t_video_s: float | np.ndarray) -> float | np.ndarray:
        """Audio time for a video time under the warp (linear beyond the ends)."""
        t = np.asarray(t_video_s, dtype=np.float64)
        w = self.warp
        out = np.interp(t, w[:, 0], w[:, 1])
        # Outside the warp, extend the end segments' slope instead of clamping.
        lo_slope = (w[1, 1] - w[0, 1]) / (w[1, 0] - w[0, 0])
        hi_slope = (w[-1, 1] - w[-2, 1]) / (w[-1, 0] - w[-2, 0])
        out = np.where(t < w[0, 0], w[0, 1] + (t - w[0, 0]) * lo_slope, out)
        out = np.where(t > w[-1, 0], w[-1, 1] + (t - w[-1, 0]) * hi_slope, out)
        return float(out) if out.ndim == 0 else out

    def to_json(self) -> dict:
        """The CLI's JSON schema, exactly: ``offset_ms``, ``drift_ppm``, ``confidence``, ``warp``."""
        return {
            "offset_ms": float(self.offset_ms),
            "drift_ppm": float(self.drift_ppm),
            "confidence": float(self.confidence),
            "warp": [[float(a), float(b)] for a, b in self.warp],
        }


# ----------------------------------------------------------------------------------------------
# grid-level steps


def _smooth(x: np.ndarray, sigma_bins: float) -> np.ndarray:
    if sigma_bins <= 0 or len(x) == 0:
        return x
    r = int(np.ceil(3 * sigma_bins))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma_bins) ** 2)
    return np.convolve(x, k / k.max(), mode="same")


def coarse_lag(video_cue: np.ndarray, audio_cue: np.ndarray, max_lag_bins: int) -> tuple[float | None, float]:
    """Global lag by cross-correlation: the ``L`` (bins, sub-bin by parabolic interpolation)
    maximising ``sum_k video[k] * audio[k + L]`` over ``|L| <= max_lag_bins``.

    Returns:
        ``(lag_bins, peak)``; ``lag_bins`` is None when either cue is all zero (no evidence).
    """
    n = max(len(video_cue), len(audio_cue))
    if n == 0 or not video_cue.any() or not audio_cue.any():
        return None, 0.0
    size = 1 << int(np.ceil(np.log2(2 * n + 1)))
    spec = np.conj(np.fft.rfft(video_cue, size)) * np.fft.rfft(audio_cue, size)
    xc = np.fft.irfft(spec, size)  # xc[L] = sum_k v[k] a[k+L], negative L wrapped to the end
    lags = np.arange(-max_lag_bins, max_lag_bins + 1)
    vals = xc[lags % size]
    k, frac = subbin_peak(vals)
    return float(lags[k] + frac), float(vals[k])


def global_xcorr_offset_ms(video: VideoCues, audio: AudioCues, config: SyncConfig | None = None) -> float | None:
    """The coarse stage alone: one global offset (ms) from cross-correlating the grid cues — no
    drift, no warp, no event refinement. It is the naive baseline the benchmark compares against.

    Returns:
        The offset in ms (positive = audio late), or None when a cue is all zero.
    """
    config = config or SyncConfig()
    cc = config.cues
    t0 = min(audio.t0_us, int(video.t_us[0]) if len(video.t_us) else audio.t0_us)
    t1 = max(audio.t_end_us, int(video.t_us[-1]) + 1 if len(video.t_us) else audio.t_end_us)
    n = grid_size(t0, t1, cc.cue_rate_hz)
    sigma = config.smooth_ms * cc.cue_rate_hz / 1000.0
    vs = _smooth(video_on_grid(video, t0, n, cc), sigma)
    as_ = _smooth(audio_on_grid(audio, t0, n, cc), sigma)
    lag, _ = coarse_lag(vs, as_, int(round(config.max_offset_ms * cc.cue_rate_hz / 1000.0)))
    return None if lag is None else lag * 1000.0 / cc.cue_rate_hz


def dtw_path(
    video_cue: np.ndarray, audio_cue: np.ndarray, center_lag_bins: int, band_bins: int, step_cost: float = 0.0
) -> np.ndarray:
    """Banded DTW path between the grid cues, band ``center ± band_bins`` on ``j - i`` (widened to
    contain both corners, which DTW's boundary conditions require).

    ``step_cost`` is added to every cell's cost, so each bin of lag change costs that much: cue
    trains are sparse, and unpenalised DTW would happily wander off to pair a picture change with
    a neighbouring, unrelated sound; a real splice pays the price once and then matches every
    event after it.
    """
    # DTW pins both ends to lag 0; zero padding of the band width on both sides lets the path
    # reach the true lag inside the padding, before the first and after the last real bin.
    pad = abs(center_lag_bins) + band_bins
    v = np.concatenate([np.zeros(pad), video_cue, np.zeros(pad)])
    au = np.concatenate([np.zeros(pad), audio_cue, np.zeros(pad)])
    n, m = len(v), len(au)
    lo = min(0, m - n, center_lag_bins - band_bins)
    hi = max(0, m - n, center_lag_bins + band_bins)
    # A constant extra feature (0 vs sqrt(step_cost)) adds step_cost to every squared-Euclidean
    # cell cost without building the dense cost matrix.
    a = np.column_stack([v, np.zeros(n)])
    b = np.column_stack([au, np.full(m, np.sqrt(step_cost))])
    path = dtw(a, b, DTWConfig(metric="sqeuclidean", band_offsets=(lo, hi))).path - pad
    inside = (path[:, 0] >= 0) & (path[:, 0] < len(video_cue)) & (path[:, 1] >= 0) & (path[:, 1] < len(audio_cue))
    return path[inside]


# ----------------------------------------------------------------------------------------------
# estimate


@dataclass(frozen=True)
class OnsetPairs:
    """Matched onsets of one window: the evidence the warp fit uses.

    Attributes:
        t_video_us: int64 ``[P]`` video onset times.
        t_audio_us: int64 ``[P]`` the audio onset each was matched to.
        n_looked: Video onsets that were looked for in the audio (matched or not).
    """

    t_video_us: np.ndarray
    t_audio_us: np.ndarray
    n_looked: int


def confidence_score(n_inliers: int, n_looked: int, rms_ms: float, config: SyncConfig) -> float:
    """Confidence in [0, 1] from support (inlier pairs), agreement (share of video onsets that
    found a consistent partner) and precision (residual RMS)."""
    if n_inliers < config.min_pairs or n_looked == 0:
        return 0.0
    support = min(1.0, n_inliers / config.full_support_pairs)
    # Video onsets without a sound (a light switched on) are normal; only when fewer than half of
    # them find a consistent partner does agreement start to count against the estimate.
    agreement = min(1.0, 2.0 * n_inliers / n_looked)
    precision = float(np.exp(-((rms_ms / 10.0) ** 2)))
    return float(np.clip(support * agreement * precision, 0.0, 1.0))


def no_estimate(t_start_s: float, t_end_s: float, diagnostics: SyncDiagnostics | None = None) -> SyncEstimate:
    """The estimate without evidence: identity warp over the span, confidence 0."""
    t_end_s = max(t_end_s, t_start_s + 1e-3)
    warp = np.array([[t_start_s, t_start_s], [t_end_s, t_end_s]])
    return SyncEstimate(0.0, 0.0, 0.0, warp, [], 0, diagnostics, method="none")


def match_window(
    video: VideoCues,
    audio: AudioCues,
    config: SyncConfig,
    t_start_us: int | None = None,
    t_end_us: int | None = None,
    match_range_us: tuple[int, int] | None = None,
    center_lag_ms: float | None = None,
) -> tuple[OnsetPairs, SyncDiagnostics]:
    """Steps 2–4 of the module doc over one window: grid cues, coarse lag, DTW path, onset pairs.

    Shared by the offline estimate (the whole clip) and :class:`~engine.align.tracker.SyncTracker`
    (a sliding window, matching only the onsets in ``match_range_us``).

    Returns:
        The pairs, and the grids / path / coarse lag they came from (``inliers`` not yet known:
        all False).
    """
    cc = config.cues
    starts = [audio.t0_us] + ([int(video.t_us[0])] if len(video.t_us) else [])
    ends = [audio.t_end_us] + ([int(video.t_us[-1]) + 1] if len(video.t_us) else [])
    t0 = min(starts) if t_start_us is None else int(t_start_us)
    t1 = max(ends) if t_end_us is None else int(t_end_us)
    n = grid_size(t0, t1, cc.cue_rate_hz)
    vg = video_on_grid(video, t0, n, cc)
    ag = audio_on_grid(audio, t0, n, cc)
    sigma = config.smooth_ms * cc.cue_rate_hz / 1000.0
    vs, as_ = _smooth(vg, sigma), _smooth(ag, sigma)
    max_lag = int(round(config.max_offset_ms * cc.cue_rate_hz / 1000.0))
    lag, _ = coarse_lag(vs, as_, max_lag)
    if center_lag_ms is not None and lag is not None:
        # The DTW band is centred on the continuous-cue global lag, which sees more than onsets.
        lag = center_lag_ms * cc.cue_rate_hz / 1000.0
    path = np.zeros((0, 2), np.int64)
    tv_p = ta_p = np.zeros(0, np.int64)
    looked = 0
    if lag is not None and n >= 2:
        band = int(round(config.band_ms * cc.cue_rate_hz / 1000.0))
        path = dtw_path(vs, as_, int(round(lag)), band, config.dtw_step_cost)
        tv_p, ta_p, looked = match_onsets(video, audio, path, t0, config, match_range_us)
    diag = SyncDiagnostics(
        t0_s=t0 / US_PER_S, t_end_s=t1 / US_PER_S, cue_rate_hz=cc.cue_rate_hz, video_cue=vg, audio_cue=ag, dtw_path=path,
        coarse_offset_ms=None if lag is None else lag * 1000.0 / cc.cue_rate_hz,
        pairs_t_video_s=tv_p / US_PER_S, pairs_t_audio_s=ta_p / US_PER_S,
        inliers=np.zeros(len(tv_p), bool), n_video_onsets=looked,
    )
    return OnsetPairs(tv_p, ta_p, looked), diag


def global_lag(
    video: VideoCues, audio: AudioCues, config: SyncConfig, t0_us: int, t1_us: int, signals: dict | None = None
) -> tuple[GlobalLag | None, LagCorrelator]:
    """The coarse stage over one span: continuous-cue lag curves and the chosen global lag.

    ``signals``, when given, receives the winning pair's grid signals (``"video"``, ``"audio"``)."""
    rate = config.cues.cue_rate_hz
    n = grid_size(t0_us, t1_us, rate)
    n_audio = max(0, min(n, int(np.floor((audio.t_end_us - t0_us) * rate / US_PER_S))))
    v = video_features(video, t0_us, 0, n, rate)
    a = audio_features(audio, t0_us, 0, n_audio, rate, 10.0 ** (config.cues.audio_floor_dbfs / 10.0))
    corr = new_correlator(v.shape[1], a.shape[1], config)
    corr.add_frames(naive_frame_pair(video))
    corr.add(v, a)
    corr.advance(final=True)
    g = choose_lag(corr, rate, config)
    if signals is not None and g is not None:
        def z(x):
            return (x - x.mean()) / x.std() if len(x) and x.std() > 0 else np.zeros_like(x)

        if g.pair is None:
            signals["video"] = z(v[:, 0]) + z(v[:, 1])
            signals["audio"] = z(a[:, 0]) + z(a[:, 1])
        else:
            signals["video"] = g.pair[2] * z(v[:, g.pair[0]])
            signals["audio"] = z(a[:, g.pair[1]])
    return g, corr


def new_correlator(n_video: int, n_audio: int, config: SyncConfig) -> LagCorrelator:
    """The lag correlator of one stream, with the splice search's snapshots (shared with the
    tracker, so both take the same ones)."""
    rate = config.cues.cue_rate_hz
    return LagCorrelator(n_video, n_audio, int(round(config.max_offset_ms * rate / 1000.0)),
                         snapshot_bins=max(1, int(round(config.split_snapshot_s * rate))),
                         max_snapshots=config.split_max_snapshots)


def split_estimate(split: SplitLag, t0_s: float, t1_s: float, diagnostics=None) -> SyncEstimate:
    """The estimate a continuous-cue splice supports: two offsets, the step at the splice
    (``split.t_split_s`` counts from ``t0_s``, the grid's bin 0)."""
    t1_s = max(t1_s, t0_s + 1e-3)
    ts = t0_s + split.t_split_s
    runs = [WarpRun(t0_s, ts, split.before.lag_ms, 0), WarpRun(ts, t1_s, split.after.lag_ms, 0)]
    warp = build_warp(runs, 0.0, t0_s, t1_s, [(ts, ts)])
    return SyncEstimate(split.before.lag_ms, 0.0, split.confidence, warp, runs, 0, diagnostics, method="global")


def global_estimate(g: GlobalLag | None, t0_s: float, t1_s: float, diagnostics=None) -> SyncEstimate:
    """The estimate the global lag alone supports: one offset, no drift, its confidence."""
    if g is None:
        return no_estimate(t0_s, t1_s, diagnostics)
    t1_s = max(t1_s, t0_s + 1e-3)
    off = g.lag_ms / 1000.0
    warp = np.array([[t0_s, t0_s + off], [t1_s, t1_s + off]])
    run = WarpRun(t0_s, t1_s, g.lag_ms, 0)
    return SyncEstimate(g.lag_ms, 0.0, g.confidence, warp, [run], 0, diagnostics, method="global")


def combine(g: GlobalLag | None, onset: SyncEstimate | None, t0_s: float, t1_s: float, config: SyncConfig,
            diagnostics=None, split: SplitLag | None = None) -> SyncEstimate:
    """Chooses between the onset path's warp and the global lag (shared with the tracker).

    The onset path (precise, drift, splices) is used when it is itself confident and its main
    run agrees with the global lag, or when it is far more confident than the global lag (clean
    impulsive events, where continuous cues are weak). Otherwise the global lag is returned with
    its own confidence — never a bare "offset 0". A continuous-cue splice (``split``, found only
    where the single lag is unsure) stands in for the global lag; the onsets replace it only
    with a fit of their own that is sure enough for a splice (``complex_min_confidence``).
    """
    if split is not None:
        fallback = split_estimate(split, t0_s, t1_s, diagnostics)
        # Matched onsets are precise to ~1 ms and fit drift and several splices: when they are
        # sure, they win over the two continuous-cue lags.
        if onset is not None and onset.confidence >= config.complex_min_confidence:
            return replace(onset, diagnostics=diagnostics)
        return fallback
    fallback = global_estimate(g, t0_s, t1_s, diagnostics)
    if onset is None or onset.confidence < LOW_CONFIDENCE:
        return fallback
    # Splices and drift are claims beyond an offset: they need clearly better onset evidence
    # (speech syllables matched to picture changes scatter into spurious runs and slopes).
    complex_fit = len(onset.runs) > 1 or onset.drift_ppm != 0.0
    if complex_fit and onset.confidence < config.complex_min_confidence and g is not None:
        return fallback
    if g is None:
        return onset
    main = max(onset.runs, key=lambda r: r.n_pairs)
    t_mid = 0.5 * (main.t_video_start_s + main.t_video_end_s)
    main_lag_ms = main.offset_ms + onset.drift_ppm * 1e-6 * t_mid * 1000.0
    if abs(main_lag_ms - g.lag_ms) <= config.onset_agree_ms:
        # Two independent cues agree: at least as sure as either.
        return replace(onset, confidence=max(onset.confidence, g.confidence), diagnostics=diagnostics)
    if onset.confidence >= g.confidence + config.onset_override_margin:
        return replace(onset, confidence=onset.confidence * (1.0 - 0.5 * g.confidence), diagnostics=diagnostics)
    return fallback


def estimate_from_cues(
    video: VideoCues,
    audio: AudioCues,
    config: SyncConfig | None = None,
    *,
    t_start_us: int | None = None,
    t_end_us: int | None = None,
    keep_diagnostics: bool = True,
) -> SyncEstimate:
    """Estimates offset, drift and warp from the cues of one clip (steps 2–6 of the module doc).

    Args:
        video: Video cues of the clip.
        audio: Audio cues of the clip.
        config: Parameters.
        t_start_us: Start of the span the warp must cover (default: start of the cues).
        t_end_us: End of that span (default: end of the cues).
        keep_diagnostics: Attach grids, curves, path and pairs to the result.

    Returns:
        The estimate. Without onset evidence it is the global lag with its (low) confidence;
        method ``"none"``, offset 0 and confidence 0 only when no cue carries any evidence.
    """
    config = config or SyncConfig()
    starts = [audio.t0_us] + ([int(video.t_us[0])] if len(video.t_us) else [])
    ends = [audio.t_end_us] + ([int(video.t_us[-1]) + 1] if len(video.t_us) else [])
    t0 = min(starts) if t_start_us is None else int(t_start_us)
    t1 = max(ends) if t_end_us is None else int(t_end_us)
    signals: dict = {}
    g, corr = global_lag(video, audio, config, t0, t1, signals if keep_diagnostics else None)
    split = choose_split(corr, config.cues.cue_rate_hz, config, g)
    pairs, diag = match_window(video, audio, config, t0, t1, center_lag_ms=None if g is None else g.lag_ms)
    t0_s, t1_s = diag.t0_s, diag.t_end_s
    fit = fit_pairs(pairs.t_video_us / US_PER_S, pairs.t_audio_us / US_PER_S, config)
    onset = None
    if fit is not None:
        diag = replace(diag, inliers=fit.inliers)
        n_in = int(fit.inliers.sum())
        conf = confidence_score(n_in, pairs.n_looked, fit.residual_rms_ms, config)
        transitions = locate_transitions(fit.runs, fit.drift_ppm, video, audio, config)
        warp = build_warp(fit.runs, fit.drift_ppm, t0_s, t1_s, transitions)
        onset = SyncEstimate(fit.runs[0].offset_ms, fit.drift_ppm, conf, warp, fit.runs, n_in, None)
    diag = replace(diag, global_lag=g, onset_confidence=0.0 if onset is None else onset.confidence,
                   coupled_video=signals.get("video"), coupled_audio=signals.get("audio"), split=split)
    return combine(g, onset, t0_s, t1_s, config, diag if keep_diagnostics else None, split)


# ----------------------------------------------------------------------------------------------
# media entry points


def _sync_media_config(segment_s: float = 2.0):
    from engine.media.decode import MediaConfig

    # Cues need change energy, not detail: a 64×48 decode is several times cheaper than full size.
    return MediaConfig(segment_s=segment_s, video_width=64, video_height=48, require_audio=True, require_video=True)


def decode_for_sync(source: str, segment_s: float = 2.0) -> list:
    """Decodes a source the way :func:`estimate_sync` does (64×48 video), into its segments."""
    from engine.media.decode import iter_segments

    return list(iter_segments(source, _sync_media_config(segment_s)))


def cues_from_segments(segments, config: SyncConfig | None = None) -> tuple[VideoCues, AudioCues, int]:
    """The cues of decoded segments (in order) and their end time (µs)."""
    config = config or SyncConfig()
    ax = vx = None
    a_chunks, v_chunks = [], []
    end_us = 0
    for seg in segments:
        if ax is None:
            ax = AudioCueExtractor(seg.audio_rate_hz, config.cues)
            vx = VideoCueExtractor(config.cues)
        a_chunks.append(ax.push(seg.audio, seg.t_start_us))
        v_chunks.append(vx.push(seg.video, seg.video_t_us))
        end_us = seg.t_end_us
    return concat_video(v_chunks), concat_audio(a_chunks), end_us


def extract_cues(source: str, config: SyncConfig | None = None, segment_s: float = 2.0) -> tuple[VideoCues, AudioCues, int]:
    """Decodes a source and returns its cues and its end time (µs).

    Raises:
        MediaError: From the media layer; :class:`~engine.errors.MissingStreamError` when the
            source lacks audio or video.
    """
    from engine.media.decode import iter_segments

    return cues_from_segments(iter_segments(source, _sync_media_config(segment_s)), config)


def estimate_from_segments(segments, config: SyncConfig | None = None, keep_diagnostics: bool = True) -> SyncEstimate:
    """The offline estimate of already decoded segments (what :func:`estimate_sync` computes)."""
    config = config or SyncConfig()
    video, audio, end_us = cues_from_segments(segments, config)
    return estimate_from_cues(video, audio, config, t_start_us=0, t_end_us=end_us, keep_diagnostics=keep_diagnostics)


def estimate_sync(source: str, config: SyncConfig | None = None) -> SyncEstimate:
    """Offline sync estimate of one file (or finite source).

    Args:
        source: Path or URL readable by :mod:`engine.media.decode`.
        config: Parameters.

    Returns:
        The estimate; its warp covers ``[0, end of the source]``.

    Raises:
        MediaError: Unreadable source, or no audio/video stream (MissingStreamError).
    """
    config = config or SyncConfig()
    video, audio, end_us = extract_cues(source, config)
    return estimate_from_cues(video, audio, config, t_start_us=0, t_end_us=end_us)
