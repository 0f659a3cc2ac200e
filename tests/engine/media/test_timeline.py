from fractions import Fraction

import numpy as np
import pytest

from engine.errors import InvalidInputError
from engine.media.timeline import (
    PtsMonitor,
    pts_to_us,
    rate_to_ticks,
    sample_to_us,
    samples_per_span,
    tick_to_us,
    us_to_pts,
    us_to_sample,
    us_to_tick,
)


def test_pts_to_us_is_exact_for_common_time_bases():
    assert pts_to_us(90_000, Fraction(1, 90_000)) == 1_000_000
    assert pts_to_us(1001, Fraction(1, 30_000)) == 33_367  # 33366.67 rounds to nearest
    # 48 kHz sample 1: 20.8333 us; three days of 90 kHz ticks stay exact (no float error).
    assert pts_to_us(1, Fraction(1, 48_000)) == 21
    three_days = 3 * 24 * 3600
    assert pts_to_us(three_days * 90_000 + 9, Fraction(1, 90_000)) == three_days * 1_000_000 + 100


@pytest.mark.parametrize("tb", [Fraction(1, 90_000), Fraction(1, 1000), Fraction(1, 12_800)])
def test_us_pts_round_trip(tb):
    rng = np.random.default_rng(0)
    for pts in rng.integers(0, 10**10, size=200):
        assert us_to_pts(pts_to_us(int(pts), tb), tb) == int(pts)


def test_sample_grid_round_trip_and_exact_spans():
    for i in [0, 1, 15_999, 16_000, 10**9 + 7]:
        assert us_to_sample(sample_to_us(i, 16_000), 16_000) == i
    assert samples_per_span(2_000_000, 16_000) == 32_000
    with pytest.raises(InvalidInputError, match="segment_s"):
        samples_per_span(1_000_030, 16_000)  # 16000.48 samples


def test_ticks_map_all_rates_onto_one_axis():
    # 25 fps video, 100 Hz mel frames and 29.97 fps video all land on the 40 ms tick of their time.
    assert us_to_tick(1_000_000) == 25
    assert tick_to_us(25) == 1_000_000
    mel = rate_to_ticks(200, 100.0)  # 2 s of 10 ms frames
    assert mel[0] == 0 and mel[4] == 1 and mel[-1] == 49
    ntsc = rate_to_ticks(60, 30_000 / 1001)
    assert ntsc[30] == us_to_tick(pts_to_us(30 * 1001, Fraction(1, 30_000)))
    arr = us_to_tick(np.array([0, 39_999, 40_000, 80_001]))
    assert arr.tolist() == [0, 0, 1, 2]
    with pytest.raises(InvalidInputError):
        us_to_tick(5, tick_us=0)


def test_pts_monitor_reports_gaps_and_backward_jumps_not_jitter():
    mon = PtsMonitor("video", gap_tolerance_us=20_000)
    for t in [0, 40_000, 85_000, 118_000]:  # jitter within tolerance
        assert mon.observe(t, 40_000) is None
    gap = mon.observe(240_000, 40_000)  # two frames missing
    assert gap is not None and gap.kind == "gap" and gap.jump_us == 240_000 - 158_000
    back = mon.observe(100_000, 40_000)
    assert back is not None and back.kind == "backward"
    assert len(mon.discontinuities) == 2
