"""Coarse global lag from continuous cues: lag-correlation curves of many video/audio feature
pairs, accumulated incrementally, and the choice of one global lag with a calibrated confidence.

Why continuous cues: real footage rarely has impulsive, perfectly coincident events. A speaker's
mouth opens as the voice gets louder, a scene brightens with the music; these couple *levels*,
not onsets. So, on the common 100 Hz grid (bin ``k`` centred at ``t0 + (k + ½)/rate``):

* audio features: log-energy rise, RMS, loudness (dB, floored at -60 dBFS), spectral flux;
* video features: frame difference, |d brightness/dt|, brightness, and for every region of a
  ``coupling_regions`` grid its brightness and |d brightness/dt| (the region most correlated with
  the audio — a talking mouth — wins on its own curve).

:class:`LagCorrelator` accumulates, for every (video feature, audio feature, lag), the sums a
Pearson correlation needs over the pairs ``(k, k + lag)`` seen so far. It is fed bins in order,
holds only ``2 × max_lag`` bins of audio and the video bins still waiting for their audio, so the
streaming tracker and the offline estimate, fed the same bins, end with the same curves.

:func:`choose_lag` contains the naive peer of issue #12 as a special case: its curve (z(frame
diff) + z(|dB/dt|) against z(rise) + z(RMS)) is computed exactly from the sums, and another
feature pair's peak replaces it only when it is clearly stronger.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from engine.align.config import LOW_CONFIDENCE, SyncConfig
from engine.align.cues import AudioCues, VideoCues
from engine.media.timeline import US_PER_S

#: Global video features first (their indices are used by the naive combination), then regions.
VIDEO_GLOBAL = ("frame_diff", "abs_dbright", "dbright", "motion", "cuts")
AUDIO_FEATURES = ("rise", "rms", "dloud", "flux")
#: Indices of the naive peer's signals among the features.
NAIVE_VIDEO = (0, 1)
NAIVE_AUDIO = (0, 1)


def _interp(t: np.ndarray, tp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Column-wise ``np.interp`` of ``fp [F, C]`` at ``t``."""
    if fp.ndim == 1:
        return np.interp(t, tp, fp)
    return np.stack([np.interp(t, tp, fp[:, c]) for c in range(fp.shape[1])], axis=1)


#: Bins of context a feature of bin ``k`` needs on each side (the centred 40 ms slopes).
CONTEXT_BINS = 2
#: Novelty (grey levels, the cue extractor's ``video_full``) from which a frame counts as a cut.
CUT_NOVELTY = 20.0
#: The (video, audio) feature pairs searched besides the naive combination. Impulsive video
#: changes go with onsets, motion with loudness, signed brightness slopes with loudness slopes
#: (both signs: a dark mouth opening darkens its region). |dB/dt| against RMS is a level pair
#: for flicker that follows the sound's level.
MAGNITUDE_PAIRS = {("frame_diff", "rise"), ("abs_dbright", "rise"), ("cuts", "rise"), ("motion", "rms"),
                   ("abs_dbright", "rms"), ("frame_diff", "flux"), ("cuts", "flux")}


def video_features(video: VideoCues, t0_us: int, k0: int, k1: int, rate_hz: float) -> np.ndarray:
    """Video features ``[k1 - k0, 3 + R + 1]`` of grid bins ``k0 .. k1-1`` (from the frames' PTS).

    Features: frame difference, |d brightness/dt| (the naive peer's pair), the signed slope of
    the mean brightness, *motion* (the frame difference with cut frames held at the frame
    before: how much moves, not how often the shot changes), *cuts* (the frames' novelty: sudden
    whole-picture or region changes), then the signed slope of every region's brightness over
    ±20 ms. Slopes, not levels: two slowly varying levels correlate by chance at almost any lag;
    their changes do not. Changes are stamped at the PTS of the frame that shows them; levels are
    interpolated at bin centres. The last column is the product of the first two (the naive
    combination's variance needs it).
    """
    n = k1 - k0
    rows = video.region_mean.shape[1] if video.region_mean is not None else 0
    g = len(VIDEO_GLOBAL)
    out = np.zeros((max(0, n), g + rows + 1))
    if n <= 0 or len(video.t_us) < 2 or video.frame_diff is None or video.region_mean is None:
        return out
    t = video.t_us / US_PER_S
    cb = CONTEXT_BINS
    c = t0_us / US_PER_S + (np.arange(k0 - cb, k1 + cb) + 0.5) / rate_hz
    # A frame's change is seen when the frame is shown: at its PTS (as the naive peer has it).
    reg_f = video.region_mean.astype(np.float64)
    bright_f = reg_f.mean(axis=1)
    dbdt = np.concatenate([[0.0], np.abs(np.diff(bright_f)) / np.maximum(np.diff(t), 1e-3)])
    # The naive pair is sampled where the naive peer samples it (bin starts), so that when it
    # wins, the answer is the peer's own (issue #12: the coarse stage contains the peer).
    starts = c[cb:cb + n] - 0.5 / rate_hz
    out[:, 0] = np.interp(starts, t, video.frame_diff)
    out[:, 1] = np.interp(starts, t, dbdt)
    reg = _interp(c, t, reg_f)
    bright = reg.mean(axis=1)
    slope = rate_hz / (2 * cb)
    out[:, 2] = (bright[2 * cb:] - bright[:n]) * slope
    # A cut's frame difference is an impulse, not motion: paired with a level (loudness) it
    # peaks where the sound's energy is centred, hundreds of ms after its onset. Held instead.
    cut = video.novelty >= CUT_NOVELTY
    last_ok = np.maximum.accumulate(np.where(~cut, np.arange(len(cut)), 0))
    out[:, 3] = np.interp(starts, t, video.frame_diff[last_ok])
    out[:, 4] = np.interp(starts, t, video.novelty)
    out[:, g:g + rows] = (reg[2 * cb:] - reg[:n]) * slope
    out[:, -1] = out[:, 0] * out[:, 1]  # product of the naive pair: its per-lag covariance term
    return out


def naive_frame_pair(video: VideoCues, prev: tuple[int, float] | None = None) -> np.ndarray:
    """The naive peer's video pair per frame, ``[F, 2]``: frame difference and |d brightness/dt|
    (``prev``: time and mean brightness of the frame before ``video``'s first; None at the start
    of the stream, where the first frame's change is 0 as the peer has it)."""
    if len(video.t_us) == 0 or video.frame_diff is None or video.region_mean is None:
        return np.zeros((0, 2))
    bright = video.region_mean.astype(np.float64).mean(axis=1)
    t = video.t_us / US_PER_S
    if prev is None:
        db = np.concatenate([[0.0], np.abs(np.diff(bright)) / np.maximum(np.diff(t), 1e-3)])
    else:
        b0, t0 = prev[1], prev[0] / US_PER_S
        db = np.abs(np.diff(np.concatenate([[b0], bright]))) / np.maximum(np.diff(np.concatenate([[t0], t])), 1e-3)
    return np.stack([video.frame_diff.astype(np.float64), db], axis=1)


def audio_features(audio: AudioCues, t0_us: int, k0: int, k1: int, rate_hz: float,
                   floor_energy: float = 1e-8) -> np.ndarray:
    """Audio features ``[k1 - k0, 5]`` of grid bins ``k0 .. k1-1``: log-energy rise and RMS (the
    naive peer's pair), the signed loudness slope over ±20 ms, the spectral flux (0 without it),
    and the product of the first two.
    Beyond the audio's ends the edge bin is repeated. ``floor_energy`` is the extractor's energy
    floor (``10 ** (audio_floor_dbfs / 10)``), taken off again."""
    n = k1 - k0
    out = np.zeros((max(0, n), len(AUDIO_FEATURES) + 1))
    if n <= 0 or audio.energy is None or len(audio.energy) == 0:
        return out
    cb = CONTEXT_BINS
    hop = int(round(audio.rate_hz / rate_hz))
    n_bins = len(audio.energy) // hop
    first = int(round((t0_us - audio.t0_us) * audio.rate_hz / US_PER_S)) // hop  # audio bin of grid bin 0
    if n_bins == 0:
        return out
    e_all = np.asarray(audio.energy[: n_bins * hop], np.float64).reshape(n_bins, hop).mean(axis=1)
    idx = np.clip(np.arange(k0 - cb, k1 + cb) + first, 0, n_bins - 1)
    # The extractor's energies carry its -80 dBFS floor; the naive peer takes log10(energy +
    # 1e-10) of the plain energy, and the coarse stage must contain the peer exactly.
    e = np.maximum(e_all[idx] - floor_energy, 0.0)
    loge = np.log10(e + 1e-10)
    loud = np.maximum(10.0 * loge, -60.0)
    out[:, 0] = np.maximum(0.0, loge[cb:cb + n] - loge[cb - 1:cb - 1 + n])
    out[:, 1] = np.sqrt(e[cb:cb + n])
    out[:, 2] = (loud[2 * cb:] - loud[:n]) / (2 * cb)
    if audio.flux is not None and len(audio.flux):
        out[:, 3] = audio.flux[np.clip(idx[cb:cb + n], 0, len(audio.flux) - 1)]
    out[:, 4] = out[:, 0] * out[:, 1]  # product of the naive pair
    return out


class LagCorrelator:
    """Incremental lagged correlation of every video feature with every audio feature.

    The sums are kept apart for two interleaved halves of the stream (even and odd blocks of
    ``block_bins``): the same lag found in both halves is what makes a peak trustworthy, and
    interleaving (unlike first/second half) needs no knowledge of where the stream ends.

    It also keeps *snapshots* of its per-lag sums at every ``snapshot_bins`` video bins (at most
    ``max_snapshots``; when full, every other one is dropped and the spacing doubles): the sums
    of the stream before a snapshot, and (by difference) after it, are what the splice search
    (:mod:`engine.align.splits`) compares. They are taken at fixed bin counts, so a stream fed in
    any chunking (the tracker, the offline estimate) has the same snapshots.

    Args:
        n_video: Video features per bin.
        n_audio: Audio features per bin.
        max_lag_bins: Lags ``-max_lag .. +max_lag`` (positive = audio later).
        block_bins: Length of the interleaved blocks.
        snapshot_bins: Spacing of the snapshots (0: none).
        max_snapshots: Snapshots kept (each holds the per-lag sums, ~1 MB at the default
            features and ±600 ms).
    """

    def __init__(self, n_video: int, n_audio: int, max_lag_bins: int, block_bins: int = 200,
                 snapshot_bins: int = 0, max_snapshots: int = 12) -> None:
        self.m = int(max_lag_bins)
        self.block = int(block_bins)
        self.snapshot_every = int(snapshot_bins)
        self.max_snapshots = int(max_snapshots)
        self.snapshots: list[tuple[int, dict[str, np.ndarray]]] = []
        lags = 2 * self.m + 1
        self.n_video, self.n_audio = n_video, n_audio
        self.s_fg = np.zeros((2, n_video, n_audio, lags))
        self.s_f = np.zeros((2, n_video, lags))
        self.s_ff = np.zeros((2, n_video, lags))
        self.s_g = np.zeros((2, n_audio, lags))
        self.s_gg = np.zeros((2, n_audio, lags))
        self.n = np.zeros((2, lags))
        # Lag-0 Gram sums of the naive signals, for the exact combination.
        self.v_sum = np.zeros(2)
        self.v_gram = np.zeros((2, 2))
        self.v_n = 0
        self.a_sum = np.zeros(2)
        self.a_gram = np.zeros((2, 2))
        self.a_n = 0
        # Per-frame sums of the naive video pair: the peer standardises them over frames.
        self.f_sum = np.zeros(2)
        self.f_sq = np.zeros(2)
        self.f_n = 0
        self._v = np.zeros((0, n_video))  # video bins from self._k_done on
        self._a = np.zeros((0, n_audio))  # audio bins from self._a_start on
        self._a_start = 0
        self._k_done = 0
        self.n_video_bins = 0
        self.n_audio_bins = 0

    def add(self, video_rows: np.ndarray, audio_rows: np.ndarray) -> None:
        """Appends the next video and audio bins (each stream contiguous from bin 0)."""
        if len(video_rows):
            self._v = np.concatenate([self._v, video_rows])
            x = video_rows[:, list(NAIVE_VIDEO)]
            self.v_sum += x.sum(0)
            self.v_gram += x.T @ x
            self.v_n += len(x)
            self.n_video_bins += len(video_rows)
        if len(audio_rows):
            self._a = np.concatenate([self._a, audio_rows])
            x = audio_rows[:, list(NAIVE_AUDIO)]
            self.a_sum += x.sum(0)
            self.a_gram += x.T @ x
            self.a_n += len(x)
            self.n_audio_bins += len(audio_rows)

    def add_frames(self, pairs: np.ndarray) -> None:
        """Adds the naive video pair of new frames (``[F, 2]``, see :func:`naive_frame_pair`),
        each frame once: the naive weights are the peer's, standardised over frames."""
        if len(pairs):
            self.f_sum += pairs.sum(0)
            self.f_sq += (pairs * pairs).sum(0)
            self.f_n += len(pairs)

    def advance(self, final: bool = False) -> None:
        """Accumulates every video bin whose audio window is complete (at the end: every video
        bin the audio reaches; the naive peer has no video past the audio's end either)."""
        if final:
            k_end = min(self.n_video_bins, self.n_audio_bins)
        else:
            k_end = min(self.n_video_bins, self.n_audio_bins - self.m)
        while k_end > self._k_done:
            stop = k_end
            if self.snapshot_every > 0:
                stop = min(k_end, (self._k_done // self.snapshot_every + 1) * self.snapshot_every)
            self._accumulate(stop)
            if self.snapshot_every > 0 and stop % self.snapshot_every == 0:
                self._snapshot(stop)

    #: The per-lag sums a snapshot holds.
    SUMS = ("s_fg", "s_f", "s_ff", "s_g", "s_gg", "n")

    def _snapshot(self, k: int) -> None:
        self.snapshots.append((k, {name: getattr(self, name).copy() for name in self.SUMS}))
        if len(self.snapshots) > self.max_snapshots:
            # Thin deterministically (by bin count, not by arrival), so any chunking agrees.
            self.snapshot_every *= 2
            self.snapshots = [(kk, sn) for kk, sn in self.snapshots if kk % self.snapshot_every == 0]

    @property
    def bins_done(self) -> int:
        """Video bins accumulated so far."""
        return self._k_done

    def span(self, k: int, before: bool) -> "LagCorrelator":
        """A correlator over the video bins before snapshot ``k`` (``before``) or from it on
        (the lag-0 grams of the naive weights stay the whole stream's)."""
        snap = dict(self.snapshots)[k]
        view = copy.copy(self)
        for name in self.SUMS:
            setattr(view, name, snap[name].copy() if before else getattr(self, name) - snap[name])
        view.snapshots = []
        return view

    def _accumulate(self, k_end: int) -> None:
        m = self.m
        k0 = self._k_done
        v = self._v[: k_end - k0]
        # Audio bins k0 - m .. k_end + m - 1, zero (and masked) where none exist.
        lo, hi = k0 - m, k_end + m
        g = np.zeros((hi - lo, self.n_audio))
        mask = np.zeros(hi - lo)
        a_lo, a_hi = max(lo, self._a_start), min(hi, self.n_audio_bins)
        if a_hi > a_lo:
            g[a_lo - lo:a_hi - lo] = self._a[a_lo - self._a_start:a_hi - self._a_start]
            mask[a_lo - lo:a_hi - lo] = 1.0
        w = np.lib.stride_tricks.sliding_window_view(g, 2 * m + 1, axis=0)  # [K, A, L]
        mw = np.lib.stride_tricks.sliding_window_view(mask, 2 * m + 1)  # [K, L]
        part = (np.arange(k0, k_end) // self.block) % 2
        for p in (0, 1):
            sel = part == p
            if not sel.any():
                continue
            vp, wp, mp = v[sel], w[sel], mw[sel]
            self.s_fg[p] += np.einsum("kv,kal->val", vp, wp, optimize=True)
            self.s_f[p] += vp.T @ mp
            self.s_ff[p] += (vp * vp).T @ mp
            self.s_g[p] += wp.sum(axis=0)
            self.s_gg[p] += (wp * wp).sum(axis=0)
            self.n[p] += mp.sum(axis=0)
        self._k_done = k_end
        self._v = self._v[k_end - k0:]
        keep_from = max(self._a_start, k_end - m)
        self._a = self._a[keep_from - self._a_start:]
        self._a_start = keep_from

    def curves(self, part: int | None = None) -> np.ndarray:
        """Pearson correlation ``[V, A, lags]`` (0 where undefined), of the whole stream or of
        one interleaved half (``part`` 0 or 1)."""
        sel = slice(None) if part is None else slice(part, part + 1)
        cnt = self.n[sel].sum(0)
        n = np.maximum(cnt, 1.0)
        mf, mg = self.s_f[sel].sum(0) / n, self.s_g[sel].sum(0) / n
        cov = self.s_fg[sel].sum(0) / n - mf[:, None, :] * mg[None, :, :]
        mff, mgg = self.s_ff[sel].sum(0) / n, self.s_gg[sel].sum(0) / n
        vf = np.maximum(mff - mf ** 2, 0.0)
        vg = np.maximum(mgg - mg ** 2, 0.0)
        den = np.sqrt(vf[:, None, :] * vg[None, :, :])
        # A constant signal (digital silence: loudness pinned at the floor) has zero variance up
        # to rounding of its large mean square: relative, not absolute, variance decides.
        live_f = vf > 1e-9 * mff + 1e-12
        live_g = vg > 1e-9 * mgg + 1e-12
        ok = live_f[:, None, :] & live_g[None, :, :] & (cnt >= 10)[None, None, :]
        return np.where(ok, cov / np.where(ok, den, 1.0), 0.0)

    def naive_curve(self) -> np.ndarray:
        """The naive peer's curve, exactly: at every lag the Pearson correlation, over the
        overlapping bins, of ``z(v1) + z(v2)`` with ``z(a1) + z(a2)`` (``z`` with the whole
        stream's mean and deviation), from the per-lag sums of the features and their products."""
        n = np.maximum(self.n.sum(0), 1.0)
        s_f, s_ff, s_g, s_gg = self.s_f.sum(0), self.s_ff.sum(0), self.s_g.sum(0), self.s_gg.sum(0)
        s_fg = self.s_fg.sum(0)

        def weights(s, gram, cnt):
            if cnt < 2:
                return np.zeros(2)
            var = np.diag(gram) / cnt - (s / cnt) ** 2
            return np.where(var > 1e-12, 1.0 / np.sqrt(np.maximum(var, 1e-12)), 0.0)

        if self.f_n >= 2:
            var = self.f_sq / self.f_n - (self.f_sum / self.f_n) ** 2
            wv = np.where(var > 1e-12, 1.0 / np.sqrt(np.maximum(var, 1e-12)), 0.0)
        else:
            wv = weights(self.v_sum, self.v_gram, self.v_n)
        wa = weights(self.a_sum, self.a_gram, self.a_n)
        (v1, v2), (a1, a2) = NAIVE_VIDEO, NAIVE_AUDIO
        pv, pa = self.n_video - 1, self.n_audio - 1  # the product columns
        cov = sum(wv[x] * wa[y] * (s_fg[i, j] / n - s_f[i] * s_g[j] / n ** 2)
                  for x, i in enumerate((v1, v2)) for y, j in enumerate((a1, a2)))

        def var(w, s, ss, prod, i1, i2):
            v_1 = ss[i1] / n - (s[i1] / n) ** 2
            v_2 = ss[i2] / n - (s[i2] / n) ** 2
            c12 = s[prod] / n - s[i1] * s[i2] / n ** 2
            return w[0] ** 2 * v_1 + w[1] ** 2 * v_2 + 2 * w[0] * w[1] * c12

        den = np.sqrt(np.maximum(var(wv, s_f, s_ff, pv, v1, v2), 0) * np.maximum(var(wa, s_g, s_gg, pa, a1, a2), 0))
        ok = (den > 1e-12) & (self.n.sum(0) >= 10)
        return np.where(ok, cov / np.where(ok, den, 1.0), 0.0)

    def half_naive_curve(self, part: int) -> np.ndarray:
        """:meth:`naive_curve` of one interleaved half (weights of the whole stream)."""
        # On a shallow copy with zeroed copies of the other half: the arrays themselves may be
        # shared (a snapshot behind a span view) and must not change.
        view = copy.copy(self)
        for k in self.SUMS:
            arr = getattr(self, k).copy()
            arr[1 - part] = 0.0
            setattr(view, k, arr)
        return view.naive_curve()


@dataclass(frozen=True)
class GlobalLag:
    """The coarse stage's answer.

    Attributes:
        lag_ms: Global lag (positive = audio late), sub-bin by parabolic interpolation.
        peak: Correlation at the peak (signed curves flipped so the peak is positive).
        prominence: Peak minus the best other peak more than ``peak_exclusion_ms`` away.
        confidence: Calibrated confidence of the lag in [0, 1].
        source: Which curve won (``"naive"`` or ``"<video feature>~<audio feature>"``).
        curve: That curve over the lags (for plots), lags ``-max .. +max`` bins.
        naive_lag_ms: The naive peer's lag (for diagnostics).
        half_lags_ms: The same curve's peak in each interleaved half of the stream.
        pair: ``(video feature, audio feature, sign)`` indices of the winning pair, None for naive.
    """

    lag_ms: float
    peak: float
    prominence: float
    confidence: float
    source: str
    curve: np.ndarray
    naive_lag_ms: float
    half_lags_ms: tuple[float, ...] = ()
    pair: tuple[int, int, float] | None = None


def feature_names(n_video: int) -> list[str]:
    """Names of the video features (globals, then ``dr<k>``: region ``k``'s brightness slope)."""
    return list(VIDEO_GLOBAL) + [f"dr{k}" for k in range(n_video - len(VIDEO_GLOBAL))]


def subbin_peak(curve: np.ndarray) -> tuple[int, float]:
    """Index of a curve's maximum and its sub-bin offset in [-0.5, 0.5] (parabola through the
    peak and its neighbours; 0 at the ends or on a flat top)."""
    k = int(np.argmax(curve))
    frac = 0.0
    if 0 < k < len(curve) - 1:
        y0, y1, y2 = curve[k - 1], curve[k], curve[k + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            frac = float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5))
    return k, frac


def _peak(curve: np.ndarray, excl: int) -> tuple[int, float, float, float]:
    """``(index, value, sub-bin fraction, prominence)`` of a curve's maximum."""
    k, frac = subbin_peak(curve)
    p = float(curve[k])
    away = np.ones(len(curve), bool)
    away[max(0, k - excl):k + excl + 1] = False
    # Only other local maxima count as rivals (the slope of the main peak is not a rival).
    local = np.zeros(len(curve), bool)
    local[1:-1] = (curve[1:-1] >= curve[:-2]) & (curve[1:-1] >= curve[2:])
    rivals = curve[away & local]
    second = float(rivals.max()) if len(rivals) else float(curve[away].min() if away.any() else 0.0)
    return k, p, frac, p - second


def _repeated(half_curves: list[np.ndarray], k: int, peak: float, rate_hz: float, config: SyncConfig) -> bool:
    """Both halves peak within ``halves_agree_ms`` of bin ``k``, each with a real peak (at least
    ``half_min_peak_ratio`` of the whole stream's): one event in one half is not two agreeing
    measurements, and a flat half's argmax means nothing."""
    tol = config.halves_agree_ms * rate_hz / 1000.0
    return all(abs(int(np.argmax(h)) - k) <= tol and float(h.max()) >= config.half_min_peak_ratio * peak
               for h in half_curves)


def choose_lag(corr: LagCorrelator, rate_hz: float, config: SyncConfig) -> GlobalLag | None:
    """The global lag: the naive curve's peak unless one feature pair's is clearly stronger.

    Confidence is the product of three factors: peak height, prominence over rival peaks, and
    agreement of the two interleaved halves of the stream on the same curve's peak (a chance
    peak of one half is rarely repeated by the other).

    Returns:
        None when no curve has any evidence (all correlations 0: silent audio, static picture).
    """
    curves = corr.curves()
    halves = (corr.curves(0), corr.curves(1))
    m = corr.m
    excl = int(round(config.peak_exclusion_ms * rate_hz / 1000.0))
    bin_ms = 1000.0 / rate_hz
    if not np.any(np.abs(curves) > 1e-9):
        return None
    naive = corr.naive_curve()
    k0, p0, f0, prom0 = _peak(naive, excl)
    best = ("naive", naive, k0, p0, f0, prom0, None)
    names = feature_names(curves.shape[0] - 1)
    # Brightness may follow loudness either way (a dark mouth opening lowers its region's
    # brightness), so signed slopes are searched with both signs; magnitudes only positively.
    for i, vname in enumerate(names):
        for j, aname in enumerate(AUDIO_FEATURES):  # the product columns are not searched
            signed = vname.startswith("d") and aname == "dloud"
            if not signed and (vname, aname) not in MAGNITUDE_PAIRS:
                continue  # a signed slope against a magnitude means nothing
            for sign in ((1.0, -1.0) if signed else (1.0,)):
                c = sign * curves[i, j]
                k = int(np.argmax(c))
                if c[k] < max(config.pair_min_peak, best[3] + config.pair_margin):
                    continue
                kk, p, f, prom = _peak(c, excl)
                # A single pair out of hundreds wins only if both halves of the stream repeat
                # its peak: the best of many chance curves is high, but not twice in one place.
                repeated = _repeated([sign * h[i, j] for h in halves], kk, p, rate_hz, config)
                if prom >= config.pair_min_prominence and repeated and 0 < kk < len(c) - 1:
                    best = (f"{vname}~{aname}{'-' if sign < 0 else ''}", c, kk, p, f, prom, (i, j, sign))
    source, curve, k, p, f, prom, key = best
    if key is None:
        half_curves = [corr.half_naive_curve(part) for part in (0, 1)]
    else:
        i, j, sign = key
        half_curves = [sign * h[i, j] for h in halves]
    half_peaks = [int(np.argmax(h)) for h in half_curves]
    # A maximum on the edge of the search range is not a peak: the true one may lie beyond.
    agree = _repeated(half_curves, k, p, rate_hz, config) and 0 < k < len(curve) - 1
    conf = float(np.clip((p - config.conf_peak_floor) / config.conf_peak_span, 0.0, 1.0)
                 * np.clip(prom / config.conf_prominence_full, 0.0, 1.0)
                 * (1.0 if agree else config.conf_disagree_factor))
    if key is None and conf < LOW_CONFIDENCE:
        # An unsure answer is the peer's own, bin for bin: a parabola through a flat or noisy
        # top moves it by up to half a bin for no reason.
        f = f0 = 0.0
    return GlobalLag((k - m + f) * bin_ms, p, prom, conf, source, curve, (k0 - m + f0) * bin_ms,
                     tuple((hp - m) * bin_ms for hp in half_peaks), key)
