"""Splice search on the continuous cues: one offset before a point of the stream, another after.

A splice (an edit that drops or repeats audio) splits the global lag curve's peak in two, so
the whole stream's lag has low confidence even where each side is clearly coupled (a talking
mouth before and after the edit). :func:`choose_split` compares, at every snapshot of the
:class:`~engine.align.coarse.LagCorrelator`, the global lag of the bins before it with the lag of
the bins after it, and reports a splice only with evidence on both sides: each side confident
on its own, the two lags a real jump apart, and together clearly surer than the single lag.
The location is the snapshot where the two sides' peaks, weighted by their lengths, are highest
(a split placed off the true point mixes the two lags and lowers both), refined between the
neighbouring snapshots by a parabola.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.align.coarse import GlobalLag, LagCorrelator, choose_lag
from engine.align.config import SyncConfig


@dataclass(frozen=True)
class SplitLag:
    """A splice found on the continuous cues.

    Attributes:
        t_split_s: Video time of the splice, seconds from the grid's bin 0.
        before: Global lag of the bins before it.
        after: Global lag of the bins from it on.
        confidence: The weaker side's confidence.
    """

    t_split_s: float
    before: GlobalLag
    after: GlobalLag
    confidence: float


def choose_split(corr: LagCorrelator, rate_hz: float, config: SyncConfig, whole: GlobalLag | None) -> SplitLag | None:
    """The best supported splice, or None (see the module docstring for the tests applied).

    Args:
        corr: The stream's correlator, with snapshots (``snapshot_bins > 0``).
        rate_hz: Grid rate.
        config: ``split_*`` settings.
        whole: The whole stream's global lag (a split must be surer than it).
    """
    if whole is None or whole.confidence >= config.split_max_whole_confidence:
        return None
    n = corr.bins_done
    side = config.split_min_side_s * rate_hz
    cands = []
    for k, _ in corr.snapshots:
        if k < side or n - k < side:
            continue
        before = choose_lag(corr.span(k, before=True), rate_hz, config)
        after = choose_lag(corr.span(k, before=False), rate_hz, config)
        if before is None or after is None:
            continue
        conf = min(before.confidence, after.confidence)
        ok = (conf >= config.split_min_confidence and conf >= whole.confidence + config.split_margin
              and abs(before.lag_ms - after.lag_ms) >= config.split_min_jump_ms)
        cands.append((k, ok, k * before.peak + (n - k) * after.peak, before, after, conf))
    good = [c for c in cands if c[1]]
    if not good:
        return None
    best = max(good, key=lambda c: c[2])
    k, t = best[0], float(best[0])
    # Refine between the neighbouring snapshots (equally spaced, both candidates).
    i = [c[0] for c in cands].index(k)
    if 0 < i < len(cands) - 1 and cands[i - 1][1] and cands[i + 1][1]:
        y0, y1, y2 = cands[i - 1][2], cands[i][2], cands[i + 1][2]
        step = cands[i + 1][0] - k
        den = y0 - 2 * y1 + y2
        if den < 0 and cands[i - 1][0] == k - step:
            t = k + step * float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5))
    return SplitLag(t / rate_hz, best[3], best[4], best[5])
