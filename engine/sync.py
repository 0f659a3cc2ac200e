"""Audio–video sync estimation: offset, drift and a piecewise-linear warp, offline or streaming.

Sign convention (the project's one): for an event seen at ``t_video`` and heard at ``t_audio``::

    t_audio = offset_s + t_video × (1 + drift_ppm · 1e-6)      (positive offset = audio late)

where ``offset_s`` may jump at splices. Pipeline (:func:`estimate_from_cues`):

1. **Cues** (:mod:`engine.cues`): audio onset strength (1 ms) and video novelty (per frame, at
   its PTS), both normalised to [0, 1] and placed on a common grid (default 100 Hz).
2. **Coarse search**: cross-correlation of the two (lightly smoothed) grid cues over
   ``±max_offset_ms`` gives one global lag.
3. **Fine path**: banded DTW between the grid cues, the band centred on the coarse lag and wide
   enough (``band_ms``) for the offset to jump at a splice. The path says, for every video time,
   roughly where the audio is.
4. **Event matching**: every video onset (a frame PTS, exact) is paired with the strongest audio
   onset within ``search_ms`` of where the path puts it, located on the 1 ms onset function — so
   pairs are precise to ~1 ms even though the grid is 10 ms and video is frame-quantised.
5. **Robust fit**: pairs are split into runs of constant offset (a jump of more than
   ``splice_jump_ms`` between neighbouring pairs that is confirmed by the next pair starts a new
   run; unconfirmed pairs are outliers), then one shared drift and one offset per run are fit by
   least squares with iterative outlier rejection. The runs become the warp: linear inside a run,
   a step (audio jumps later) or a ramp (audio jumps earlier, so the warp stays monotonic)
   between runs.
6. **Confidence** in [0, 1]: enough consistent pairs (support), most video onsets found in the
   audio (agreement), small residuals (precision). Silent audio or a static picture produces no
   pairs and confidence 0; below :data:`LOW_CONFIDENCE` the estimate should not be trusted.

:class:`SyncTracker` runs the same steps incrementally over a sliding cue window for the
streaming pipeline, with bounded state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.cues import (
    AudioCueExtractor,
    AudioCues,
    CueConfig,
    VideoCueExtractor,
    VideoCues,
    audio_on_grid,
    concat_audio,
    concat_video,
    grid_size,
    normalize_video,
    pick_events,
    video_on_grid,
)
from engine.dtw import DTWConfig, dtw
from engine.errors import InvalidInputError
from engine.timeline import US_PER_S

#: Below this confidence an estimate is a guess, not a measurement (documented contract; the
#: tests hold silent/static inputs under it).
LOW_CONFIDENCE = 0.3


@dataclass(frozen=True)
class SyncConfig:
    """Parameters of sync estimation.

    Attributes:
        cues: Cue-signal parameters.
        max_offset_ms: Largest |offset| searched by the coarse cross-correlation.
        band_ms: DTW band half-width around the coarse lag: the largest offset change (splice jump)
            the fine path can follow.
        smooth_ms: Gaussian sigma applied to the grid cues before correlation/DTW, so a few
            milliseconds of drift or frame quantisation do not turn a match into a miss.
        dtw_step_cost: Cost added to every DTW cell (cue units squared): the price of one bin of
            lag change, see :func:`dtw_path`.
        search_ms: Half-width of the window around the DTW prediction in which a video onset's
            audio onset is looked for.
        video_event_threshold: Normalised video cue at/above which a frame is a video onset.
        audio_event_min_rise_db: Weakest audio onset (dB rise) accepted as a video onset's match.
        refractory_ms: Onsets closer than this to the previous one are not new events.
        splice_jump_ms: Offset change between neighbouring pairs that counts as a splice.
        outlier_floor_ms: Residuals below this are never rejected (onset timing is ~1 ms
            precise, video PTS exact; this absorbs codec smearing).
        frame_match_ms: Where a splice lies is narrowed with onsets too weak to match: a candidate
            video time needs a frame within this of it (see :func:`locate_transitions`).
        transition_margin: Novelty difference (grey levels) needed to prefer one candidate.
        min_pairs: Fewer consistent pairs than this -> no estimate (confidence 0).
        min_run_pairs: Pairs a constant-offset run needs to be kept (fewer: its pairs are outliers).
        full_support_pairs: Consistent pairs at which support (one confidence factor) saturates.
        min_drift_span_s: Drift is fit only when the pairs span at least this much video time
            (over a short span a slope is noise); otherwise it is 0.
        max_drift_ppm: Fitted drift is clipped to ± this (clock drift beyond it is not a clock).
    """

    cues: CueConfig = field(default_factory=CueConfig)
    max_offset_ms: float = 1000.0
    band_ms: float = 700.0
    smooth_ms: float = 20.0
    dtw_step_cost: float = 0.1
    search_ms: float = 60.0
    video_event_threshold: float = 0.25
    audio_event_min_rise_db: float = 12.0
    refractory_ms: float = 150.0
    splice_jump_ms: float = 20.0
    outlier_floor_ms: float = 6.0
    frame_match_ms: float = 6.0
    transition_margin: float = 0.2
    min_pairs: int = 3
    min_run_pairs: int = 2
    full_support_pairs: int = 6
    min_drift_span_s: float = 4.0
    max_drift_ppm: float = 5000.0

    def validate(self) -> None:
        """Raises :class:`InvalidInputError` on inconsistent settings."""
        self.cues.validate()
        for name in ("max_offset_ms", "band_ms", "search_ms", "splice_jump_ms", "refractory_ms"):
            if getattr(self, name) <= 0:
                raise InvalidInputError(name, f"must be positive, got {getattr(self, name)}")
        if self.min_pairs < 2:
            raise InvalidInputError("min_pairs", f"must be >= 2, got {self.min_pairs}")


@dataclass(frozen=True)
class WarpRun:
    """One stretch of constant offset (between splices).

    Attributes:
        t_video_start_s: First matched video onset of the run.
        t_video_end_s: Last matched video onset of the run.
        offset_ms: Offset of the run (audio time at video time 0 on this run's line, minus 0).
        n_pairs: Inlier pairs supporting it.
    """

    t_video_start_s: float
    t_video_end_s: float
    offset_ms: float
    n_pairs: int


@dataclass
class SyncDiagnostics:
    """What the estimate was made from (for plots and debugging).

    Attributes:
        t0_s: Time of grid bin 0 (video and audio timelines share it).
        cue_rate_hz: Grid rate.
        video_cue: float ``[N]`` normalised video cue on the grid.
        audio_cue: float ``[M]`` normalised audio cue on the grid.
        dtw_path: int ``[K, 2]`` DTW path ``(video bin, audio bin)``, or empty.
        coarse_offset_ms: Lag of the cross-correlation peak (None without evidence).
        pairs_t_video_s: Matched video onset times.
        pairs_t_audio_s: Matched audio onset times.
        inliers: bool mask over the pairs: used by the fit.
        n_video_onsets: Video onsets that were looked for in the audio.
    """

    t0_s: float
    cue_rate_hz: float
    video_cue: np.ndarray
    audio_cue: np.ndarray
    dtw_path: np.ndarray
    coarse_offset_ms: float | None
    pairs_t_video_s: np.ndarray
    pairs_t_audio_s: np.ndarray
    inliers: np.ndarray
    n_video_onsets: int


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
    """

    offset_ms: float
    drift_ppm: float
    confidence: float
    warp: np.ndarray
    runs: list[WarpRun]
    n_pairs: int
    diagnostics: SyncDiagnostics | None = None

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
    k = int(np.argmax(vals))
    peak = float(vals[k])
    frac = 0.0
    if 0 < k < len(vals) - 1:
        y0, y1, y2 = vals[k - 1], vals[k], vals[k + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            frac = float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5))
    return float(lags[k] + frac), peak


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


def _path_lag_at(path: np.ndarray, i: int) -> float:
    """Median ``j - i`` over the path points in video bin ``i`` (the audio lag the path assigns)."""
    sel = path[path[:, 0] == i]
    if len(sel) == 0:
        return float("nan")
    return float(np.median(sel[:, 1] - sel[:, 0]))


def match_onsets(
    video: VideoCues,
    audio: AudioCues,
    path: np.ndarray,
    t0_us: int,
    config: SyncConfig,
    t_video_range_us: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pairs video onsets with audio onsets near where the DTW path puts them.

    Args:
        video: Per-frame video novelty.
        audio: Fine audio onset function.
        path: DTW path on the grid starting at ``t0_us``.
        t0_us: Time of grid bin 0.
        config: Parameters.
        t_video_range_us: Only video onsets with ``lo <= t < hi`` are matched.

    Returns:
        ``(t_video_us, t_audio_us, n_looked_for)``: int64 arrays of matched pairs, and how many
        video onsets had their search window inside the audio cue.
    """
    cc = config.cues
    ev = pick_events(video.t_us, normalize_video(video.novelty, cc), config.video_event_threshold,
                     int(config.refractory_ms * 1000))
    tv_out, ta_out, looked = [], [], 0
    if len(ev) == 0 or len(path) == 0 or len(audio.rise_db) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0
    a_times = audio.times_us()
    half_bin_us = 0.5 * US_PER_S / cc.cue_rate_hz
    search_us = config.search_ms * 1000.0
    for e in ev:
        tv = int(video.t_us[e])
        if t_video_range_us is not None and not (t_video_range_us[0] <= tv < t_video_range_us[1]):
            continue
        i = int(np.floor((tv - t0_us) * cc.cue_rate_hz / US_PER_S))
        lag = _path_lag_at(path, i)
        if not np.isfinite(lag):
            continue
        # Both cues are stamped by the bin holding their onset, so the lag maps bin to bin; the
        # predicted audio onset is the video onset shifted by it (the search absorbs the rest).
        pred = tv + lag * US_PER_S / cc.cue_rate_hz
        lo, hi = pred - search_us - half_bin_us, pred + search_us + half_bin_us
        if lo < a_times[0] or hi > a_times[-1]:
            continue
        looked += 1
        k0, k1 = np.searchsorted(a_times, [lo, hi])
        if k1 <= k0:
            continue
        k = k0 + int(np.argmax(audio.rise_db[k0:k1]))
        if audio.rise_db[k] >= config.audio_event_min_rise_db:
            tv_out.append(tv)
            ta_out.append(int(a_times[k]))
    return np.asarray(tv_out, np.int64), np.asarray(ta_out, np.int64), looked


# ----------------------------------------------------------------------------------------------
# fit


@dataclass
class WarpFit:
    """Robust fit of onset pairs.

    Attributes:
        runs: Constant-offset runs in time order.
        drift_ppm: Shared drift.
        inliers: bool mask over the input pairs.
        residual_rms_ms: RMS residual of the inliers.
    """

    runs: list[WarpRun]
    drift_ppm: float
    inliers: np.ndarray
    residual_rms_ms: float


def _split_runs(tv: np.ndarray, d: np.ndarray, jump_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Run label per pair (-1 = outlier). A pair is kept only if a neighbour within two places has
    nearly the same offset (one stray match cannot fake a splice); a new run starts where the kept
    offsets jump."""
    n = len(d)
    supported = np.zeros(n, bool)
    for k in range(n):
        for o in (-2, -1, 1, 2):
            if 0 <= k + o < n and abs(d[k + o] - d[k]) <= jump_s:
                supported[k] = True
                break
    labels = np.full(n, -1, np.int64)
    run, prev = -1, None
    for k in np.flatnonzero(supported):
        if prev is None or abs(d[k] - prev) > jump_s:
            run += 1
        labels[k] = run
        prev = d[k]
    return labels, supported


def fit_pairs(t_video_s: np.ndarray, t_audio_s: np.ndarray, config: SyncConfig) -> WarpFit | None:
    """Fits runs of constant offset with one shared drift to onset pairs.

    Args:
        t_video_s: Video onset times, any order.
        t_audio_s: Matching audio onset times.
        config: Parameters (``splice_jump_ms``, ``outlier_floor_ms``, ``min_pairs``, ...).

    Returns:
        The fit, or None when fewer than ``config.min_pairs`` pairs are consistent.
    """
    order = np.argsort(t_video_s, kind="stable")
    tv = np.asarray(t_video_s, np.float64)[order]
    ta = np.asarray(t_audio_s, np.float64)[order]
    inl_sorted = np.zeros(len(tv), bool)
    if len(tv) < config.min_pairs:
        return None
    d = ta - tv
    labels, _ = _split_runs(tv, d, config.splice_jump_ms / 1000.0)
    keep = labels >= 0
    if keep.sum() < config.min_pairs:
        return None
    span = tv[keep].max() - tv[keep].min()
    fit_drift = span >= config.min_drift_span_s
    slope, offsets = 0.0, {}
    for _ in range(4):
        runs = sorted(set(labels[keep]))
        col = {r: c for c, r in enumerate(runs)}
        A = np.zeros((int(keep.sum()), len(runs) + int(fit_drift)))
        rows = np.flatnonzero(keep)
        for row, k in enumerate(rows):
            A[row, col[labels[k]]] = 1.0
            if fit_drift:
                A[row, -1] = tv[k]
        sol, *_ = np.linalg.lstsq(A, d[rows], rcond=None)
        slope = float(sol[-1]) if fit_drift else 0.0
        offsets = {r: float(sol[col[r]]) for r in runs}
        pred = np.array([offsets.get(labels[k], np.nan) for k in range(len(tv))]) + slope * tv
        res = d - pred
        mad = np.median(np.abs(res[keep])) * 1.4826
        thr = max(config.outlier_floor_ms / 1000.0, 3.0 * mad)
        new_keep = (labels >= 0) & (np.abs(np.nan_to_num(res, nan=np.inf)) <= thr)
        # A run needs a few pairs of its own: two stray matches that happen to agree must not
        # become a splice.
        for r in runs:
            if (new_keep & (labels == r)).sum() < config.min_run_pairs:
                new_keep &= labels != r
        if new_keep.sum() < config.min_pairs:
            return None
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    inl_sorted[:] = keep
    rms = float(np.sqrt(np.mean(res[keep] ** 2))) * 1000.0
    drift_ppm = float(np.clip(slope * 1e6, -config.max_drift_ppm, config.max_drift_ppm))
    # Neighbouring runs that ended up at the same offset were one run with a stray pair between.
    out: list[WarpRun] = []
    for r in sorted(set(labels[keep])):
        sel = keep & (labels == r)
        run = WarpRun(float(tv[sel].min()), float(tv[sel].max()), offsets[r] * 1000.0, int(sel.sum()))
        if out and abs(out[-1].offset_ms - run.offset_ms) <= config.splice_jump_ms / 2:
            prev = out[-1]
            n = prev.n_pairs + run.n_pairs
            out[-1] = WarpRun(prev.t_video_start_s, run.t_video_end_s,
                              (prev.offset_ms * prev.n_pairs + run.offset_ms * run.n_pairs) / n, n)
        else:
            out.append(run)
    inliers = np.zeros(len(tv), bool)
    inliers[order] = inl_sorted
    return WarpFit(out, drift_ppm, inliers, rms)


def locate_transitions(
    runs: list[WarpRun], drift_ppm: float, video: VideoCues, audio: AudioCues, config: SyncConfig
) -> list[tuple[float, float]]:
    """Narrows where each splice lies, between the last onset of one run and the first of the next.

    Matched pairs only bracket a splice; onsets that were too weak to match (e.g. a small object
    appearing) still sit in the gap and would land on the wrong line if the step were put blindly
    in the middle. Each strong audio onset in the gap is either an event of the earlier run (video
    time ``va`` on its line) or of the later one (``vb``); where only one is inside the gap, or the
    video changes clearly more at one of them, it is assigned and moves the bound: the splice lies
    after every earlier-run event and at/before every later-run event.

    Returns:
        One ``(lo_s, hi_s)`` video-time interval per pair of neighbouring runs.
    """
    scale = 1.0 + drift_ppm * 1e-6
    cc = config.cues
    out = []
    a_t = audio.times_us()
    onsets = pick_events(a_t, audio.rise_db, config.audio_event_min_rise_db, int(config.refractory_ms * 1000))
    u_s = a_t[onsets] / US_PER_S if len(onsets) else np.zeros(0)
    vt_s = video.t_us / US_PER_S
    guard_s = 2.0 * config.search_ms / 1000.0

    def visual_score(t: float) -> float:
        # A video event sits exactly on a frame PTS, and the fitted lines are ~1 ms precise: a
        # candidate with no frame within a few ms cannot be one; otherwise score how much that
        # frame's change stands out from its neighbours'.
        if len(vt_s) == 0:
            return -np.inf
        j = int(np.argmin(np.abs(vt_s - t)))
        if abs(vt_s[j] - t) > config.frame_match_ms / 1000.0:
            return -np.inf
        around = video.novelty[max(0, j - 6) : j + 7]
        return float(video.novelty[j] - np.median(around))

    for a, b in zip(runs[:-1], runs[1:]):
        lo, hi = a.t_video_end_s, b.t_video_start_s
        for u in u_s:
            va = (u - a.offset_ms / 1000.0) / scale
            vb = (u - b.offset_ms / 1000.0) / scale
            if abs(va - a.t_video_end_s) <= guard_s or abs(vb - b.t_video_start_s) <= guard_s:
                continue  # the sound of one of the two bracketing matches
            sa = visual_score(va) if a.t_video_end_s < va < b.t_video_start_s else -np.inf
            sb = visual_score(vb) if a.t_video_end_s < vb < b.t_video_start_s else -np.inf
            if not np.isfinite(max(sa, sb)) or abs(sa - sb) < config.transition_margin:
                continue  # no place for it in the gap, or no visual evidence either way
            in_a, in_b = sa > sb, sb > sa
            if in_a and not in_b:
                lo = max(lo, va)
            elif in_b and not in_a:
                hi = min(hi, vb)
        if hi < lo:  # conflicting evidence: fall back to the bracket the matches give
            lo, hi = a.t_video_end_s, b.t_video_start_s
        out.append((lo, hi))
    return out


def build_warp(
    runs: list[WarpRun],
    drift_ppm: float,
    t_start_s: float,
    t_end_s: float,
    transitions: list[tuple[float, float]] | None = None,
) -> np.ndarray:
    """Piecewise-linear warp rows ``(t_video_s, t_audio_s)`` covering ``[t_start_s, t_end_s]``.

    Inside a run the warp is that run's line. Between runs the change is placed in the middle of
    the interval where the splice lies (``transitions``, default: between the runs' last and first
    onsets). Where the audio jumps later it is a step (two rows 1 ms apart). Where it jumps earlier
    a monotonic warp cannot step back: it holds still for as long as the jump (the audio there is
    heard twice), centred in the interval; if the interval is shorter than the jump, onsets near it
    are off by at most the excess.
    """
    scale = 1.0 + drift_ppm * 1e-6

    def line(run: WarpRun, t: float) -> float:
        return run.offset_ms / 1000.0 + t * scale

    if transitions is None:
        transitions = [(a.t_video_end_s, b.t_video_start_s) for a, b in zip(runs[:-1], runs[1:])]
    t_start_s = min(t_start_s, runs[0].t_video_start_s)
    t_end_s = max(t_end_s, runs[-1].t_video_end_s)
    pts = [(t_start_s, line(runs[0], t_start_s))]
    for (a, b), (lo, hi) in zip(zip(runs[:-1], runs[1:]), transitions):
        if b.offset_ms >= a.offset_ms:
            mid = 0.5 * (lo + hi)
            eps = min(5e-4, 0.25 * max(hi - lo, 1e-6))
            pts += [(mid - eps, line(a, mid - eps)), (mid + eps, line(b, mid + eps))]
        else:
            hold_s = (a.offset_ms - b.offset_ms) / 1000.0 / scale
            p = 0.5 * (lo + hi - hold_s)
            pts += [(p, line(a, p)), (p + hold_s, line(a, p))]
    pts.append((t_end_s, line(runs[-1], t_end_s)))
    w = np.asarray(pts, np.float64)
    # Strictly increasing video times (drop rows that fall behind), non-decreasing audio times.
    keep = np.concatenate([[True], w[1:, 0] > np.maximum.accumulate(w[:, 0])[:-1]])
    w = w[keep]
    w[:, 1] = np.maximum.accumulate(w[:, 1])
    if len(w) == 1:
        w = np.vstack([w, [w[0, 0] + 1.0, w[0, 1] + scale]])
    return w


def _confidence(n_inliers: int, n_looked: int, rms_ms: float, config: SyncConfig) -> float:
    if n_inliers < config.min_pairs or n_looked == 0:
        return 0.0
    support = min(1.0, n_inliers / config.full_support_pairs)
    # Video onsets without a sound (a light switched on) are normal; only when fewer than half of
    # them find a consistent partner does agreement start to count against the estimate.
    agreement = min(1.0, 2.0 * n_inliers / n_looked)
    precision = float(np.exp(-((rms_ms / 10.0) ** 2)))
    return float(np.clip(support * agreement * precision, 0.0, 1.0))


def _no_estimate(t_start_s: float, t_end_s: float, diagnostics: SyncDiagnostics | None) -> SyncEstimate:
    # Without evidence the honest answer is "no measured offset": identity warp, confidence 0.
    t_end_s = max(t_end_s, t_start_s + 1e-3)
    warp = np.array([[t_start_s, t_start_s], [t_end_s, t_end_s]])
    return SyncEstimate(0.0, 0.0, 0.0, warp, [], 0, diagnostics)


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
        video: Video novelty of the clip.
        audio: Audio onset function of the clip.
        config: Parameters.
        t_start_us: Start of the span the warp must cover (default: start of the cues).
        t_end_us: End of that span (default: end of the cues).
        keep_diagnostics: Attach grids, path and pairs to the result.

    Returns:
        The estimate; confidence 0 and an identity warp when there is no usable evidence.
    """
    config = config or SyncConfig()
    config.validate()
    est, _ = _estimate(video, audio, config, t_start_us, t_end_us, None, keep_diagnostics)
    return est


def _estimate(video, audio, config, t_start_us, t_end_us, match_range_us, keep_diagnostics,
              extra_pairs=None):
    """Shared by the offline estimate and the tracker. Returns ``(estimate, new_pairs)``."""
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
    path = np.zeros((0, 2), np.int64)
    tv_p = ta_p = np.zeros(0, np.int64)
    looked = 0
    if lag is not None and n >= 2:
        band = int(round(config.band_ms * cc.cue_rate_hz / 1000.0))
        path = dtw_path(vs, as_, int(round(lag)), band, config.dtw_step_cost)
        tv_p, ta_p, looked = match_onsets(video, audio, path, t0, config, match_range_us)
    new_pairs = (tv_p, ta_p, looked)
    if extra_pairs is not None:
        tv_all, ta_all, looked_all = extra_pairs
    else:
        tv_all, ta_all, looked_all = tv_p, ta_p, looked
    tv_s, ta_s = tv_all / US_PER_S, ta_all / US_PER_S
    fit = fit_pairs(tv_s, ta_s, config)
    diag = None
    if keep_diagnostics:
        diag = SyncDiagnostics(
            t0_s=t0 / US_PER_S, cue_rate_hz=cc.cue_rate_hz, video_cue=vg, audio_cue=ag, dtw_path=path,
            coarse_offset_ms=None if lag is None else lag * 1000.0 / cc.cue_rate_hz,
            pairs_t_video_s=tv_s, pairs_t_audio_s=ta_s,
            inliers=np.zeros(len(tv_s), bool) if fit is None else fit.inliers, n_video_onsets=looked_all,
        )
    if fit is None:
        return _no_estimate(t0 / US_PER_S, t1 / US_PER_S, diag), new_pairs
    n_in = int(fit.inliers.sum())
    conf = _confidence(n_in, looked_all, fit.residual_rms_ms, config)
    transitions = locate_transitions(fit.runs, fit.drift_ppm, video, audio, config)
    warp = build_warp(fit.runs, fit.drift_ppm, t0 / US_PER_S, t1 / US_PER_S, transitions)
    est = SyncEstimate(fit.runs[0].offset_ms, fit.drift_ppm, conf, warp, fit.runs, n_in, diag)
    return est, new_pairs


# ----------------------------------------------------------------------------------------------
# media entry points


def _sync_media_config(segment_s: float = 2.0):
    from engine.media import MediaConfig

    # Cues need change energy, not detail: a 64×48 decode is several times cheaper than full size.
    return MediaConfig(segment_s=segment_s, video_width=64, video_height=48, require_audio=True, require_video=True)


def extract_cues(source: str, config: SyncConfig | None = None, segment_s: float = 2.0) -> tuple[VideoCues, AudioCues, int]:
    """Decodes a source and returns its cues and its end time (µs).

    Raises:
        MediaError: From the media layer; :class:`~engine.errors.MissingStreamError` when the
            source lacks audio or video.
    """
    from engine.media import iter_segments

    config = config or SyncConfig()
    ax = vx = None
    a_chunks, v_chunks = [], []
    end_us = 0
    for seg in iter_segments(source, _sync_media_config(segment_s)):
        if ax is None:
            ax = AudioCueExtractor(seg.audio_rate_hz, config.cues)
            vx = VideoCueExtractor(config.cues)
        a_chunks.append(ax.push(seg.audio, seg.t_start_us))
        v_chunks.append(vx.push(seg.video, seg.video_t_us))
        end_us = seg.t_end_us
    return concat_video(v_chunks), concat_audio(a_chunks), end_us


def estimate_sync(source: str, config: SyncConfig | None = None) -> SyncEstimate:
    """Offline sync estimate of one file (or finite source).

    Args:
        source: Path or URL readable by :mod:`engine.media`.
        config: Parameters.

    Returns:
        The estimate; its warp covers ``[0, end of the source]``.

    Raises:
        MediaError: Unreadable source, or no audio/video stream (MissingStreamError).
    """
    config = config or SyncConfig()
    video, audio, end_us = extract_cues(source, config)
    return estimate_from_cues(video, audio, config, t_start_us=0, t_end_us=end_us)


# ----------------------------------------------------------------------------------------------
# streaming


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
        self.config.validate()
        if window_s * 1000.0 < 4 * (self.config.max_offset_ms + self.config.search_ms):
            raise InvalidInputError("window_s", f"must be >= 4 x (max_offset + search) = "
                                    f"{4 * (self.config.max_offset_ms + self.config.search_ms) / 1000:.1f} s")
        if max_pairs < self.config.full_support_pairs:
            raise InvalidInputError("max_pairs", f"must be >= full_support_pairs ({self.config.full_support_pairs})")
        self.window_us = int(window_s * US_PER_S)
        self.max_pairs = max_pairs
        self._ax: AudioCueExtractor | None = None
        self._vx = VideoCueExtractor(self.config.cues)
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
        """Adds one :class:`~engine.media.Segment` and returns the refined estimate."""
        cc = self.config.cues
        if self._t_start_us is None:
            self._t_start_us = segment.t_start_us
            self._matched_until_us = segment.t_start_us
        self._t_end_us = max(self._t_end_us, segment.t_end_us)
        if segment.audio is not None:
            if self._ax is None:
                self._ax = AudioCueExtractor(segment.audio_rate_hz, cc)
            chunk = self._ax.push(segment.audio, segment.t_start_us)
            self._audio = chunk if self._audio is None else concat_audio([self._audio, chunk])
        if segment.video is not None and len(segment.video_t_us):
            self._video = concat_video([self._video, self._vx.push(segment.video, segment.video_t_us)])
        self._update(final=segment.is_final)
        return self.estimate()

    def estimate(self) -> SyncEstimate:
        """Current estimate (confidence 0 and identity warp before there is evidence)."""
        if self._estimate is None:
            t0 = (self._t_start_us or 0) / US_PER_S
            return _no_estimate(t0, self._t_end_us / US_PER_S, None)
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
            est, (tv, ta, looked) = _estimate(
                self._video, self._audio, cfg, win_t0, self._t_end_us, (self._matched_until_us, ready_us), False,
                extra_pairs=(np.zeros(0, np.int64), np.zeros(0, np.int64), 0),
            )
            self._tv = np.concatenate([self._tv, tv])[-self.max_pairs :]
            self._ta = np.concatenate([self._ta, ta])[-self.max_pairs :]
            self._looked.append((ready_us, looked))
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
            self._estimate = _no_estimate(t0, t1, None)
            return
        n_in = int(fit.inliers.sum())
        conf = _confidence(n_in, looked, fit.residual_rms_ms, cfg)
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
