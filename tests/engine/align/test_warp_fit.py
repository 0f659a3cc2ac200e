"""Warp-fit units: robust run/drift fit of onset pairs and the piecewise-linear warp."""

from __future__ import annotations

import numpy as np
import pytest

from engine.align.config import SyncConfig
from engine.align.sync import SyncEstimate
from engine.align.warp_fit import WarpRun, build_warp, fit_pairs


def test_fit_pairs_recovers_runs_drift_and_rejects_outliers():
    rng = np.random.default_rng(1)
    tv = np.sort(rng.uniform(0.5, 30.0, 30))
    offset = np.where(tv < 15.0, 0.2, -0.1)
    ta = offset + tv * (1 + 700e-6) + rng.normal(0, 0.0005, len(tv))
    ta[[4, 20]] += np.array([0.35, -0.5])  # two stray matches
    fit = fit_pairs(tv, ta, SyncConfig())
    assert fit is not None and len(fit.runs) == 2
    assert abs(fit.drift_ppm - 700) < 60
    assert abs(fit.runs[0].offset_ms - 200) < 1.5 and abs(fit.runs[1].offset_ms + 100) < 1.5
    assert not fit.inliers[4] and not fit.inliers[20] and fit.inliers.sum() >= 26
    assert fit_pairs(tv[:2], ta[:2], SyncConfig()) is None


def test_build_warp_is_monotonic_across_a_backward_jump():
    runs = [WarpRun(0.5, 4.0, 300.0, 5), WarpRun(6.0, 9.0, -100.0, 4)]
    w = build_warp(runs, 0.0, 0.0, 10.0)
    assert w[0, 0] == 0.0 and w[-1, 0] == 10.0
    assert np.all(np.diff(w[:, 0]) > 0) and np.all(np.diff(w[:, 1]) >= 0)
    # Exact on both runs away from the transition.
    est = SyncEstimate(300.0, 0.0, 1.0, w, runs, 9)
    assert est.warp_at(3.0) == pytest.approx(3.3) and est.warp_at(8.0) == pytest.approx(7.9)
