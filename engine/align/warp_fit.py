"""Onset matching and warp fitting: from a DTW path and the cues to a piecewise-linear warp.

Steps 4–5 of the sync pipeline (:mod:`engine.align.sync`, whose sign convention this follows):

* **Event matching** (:func:`match_onsets`): every video onset (a frame PTS, exact) is paired with
  the strongest audio onset within ``search_ms`` of where the DTW path puts it, located on the
  1 ms onset function — so pairs are precise to ~1 ms even though the grid is 10 ms and video is
  frame-quantised.
* **Robust fit** (:func:`fit_pairs`): pairs are split into runs of constant offset (a jump of more
  than ``splice_jump_ms`` between neighbouring pairs that is confirmed by the next pair starts a
  new run; unconfirmed pairs are outliers), then one shared drift and one offset per run are fit
  by least squares with iterative outlier rejection.
* **Warp** (:func:`locate_transitions`, :func:`build_warp`): the runs become the warp: linear
  inside a run, a step (audio jumps later) or a ramp (audio jumps earlier, so the warp stays
  monotonic) between runs, placed where weaker onsets in the gap say the splice lies.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from engine.align.config import SyncConfig
from engine.align.cues import AudioCues, VideoCues, normalize_video, pick_events
from engine.media.timeline import US_PER_S



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


# ----------------------------------------------------------------------------------------------
# matching


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

    Drift is kept only where it is significant: the pairs span ``min_drift_span_s``, the slope is
    ``drift_min_t`` standard errors from 0, and over the span it moves the line by more than
    ``drift_min_effect_ms`` and by more than ``drift_min_scatter_ratio`` times the pairs' own
    scatter (so a 10 s clip with tens of ms of scatter never gets thousands of ppm).

    Args:
        t_video_s: Video onset times, any order.
        t_audio_s: Matching audio onset times.
        config: Parameters (``splice_jump_ms``, ``outlier_floor_ms``, ``min_pairs``, ...).

    Returns:
        The fit, or None when fewer than ``config.min_pairs`` pairs are consistent.
    """
    fit = _fit_pairs(t_video_s, t_audio_s, config, allow_drift=True)
    if fit is None or fit.drift_ppm == 0.0:
        return fit
    tv = np.asarray(t_video_s, np.float64)[fit.inliers]
    span = float(tv.max() - tv.min())
    n = len(tv)
    se = (fit.residual_rms_ms / 1000.0) / max(np.sqrt(n) * tv.std(), 1e-9)
    slope = fit.drift_ppm * 1e-6
    # Pair-to-pair scatter, from differences of neighbouring pairs (a real drift moves neighbours
    # by well under a millisecond, and the median ignores the few jumps at real splices): a slope
    # whose effect over the span is not well above it is the scatter, not a clock.
    order = np.argsort(t_video_s, kind="stable")
    steps = np.diff((np.asarray(t_audio_s, np.float64) - np.asarray(t_video_s, np.float64))[order])
    scatter_ms = 1.4826 * float(np.median(np.abs(steps))) / np.sqrt(2.0) * 1000.0 if len(steps) else 0.0
    effect_ms = abs(slope) * span * 1000.0
    if (abs(slope) < config.drift_min_t * se or effect_ms < config.drift_min_effect_ms
            or effect_ms < config.drift_min_scatter_ratio * scatter_ms):
        return _fit_pairs(t_video_s, t_audio_s, config, allow_drift=False) or fit
    return fit


def _fit_pairs(t_video_s: np.ndarray, t_audio_s: np.ndarray, config: SyncConfig, allow_drift: bool) -> WarpFit | None:
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
    fit_drift = allow_drift and span >= config.min_drift_span_s
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
