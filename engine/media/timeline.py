"""The unified timeline: integer microseconds derived from presentation timestamps.

Every timestamp in omnialign is an ``int`` number of microseconds on one per-stream timeline
whose zero is the earliest ``start_time`` among the container's selected streams. Times always
come from PTS × time_base (exact rational arithmetic), never from counting frames or samples, so
variable frame rate, dropped frames and A/V start offsets survive intact.

Models see time as integer *ticks* (TMRoPE-style temporal position ids): a tick is a fixed
duration (default 40 ms = one 25 fps frame) shared by every modality, so a video frame at
1.000 s and the audio frames around it get the same temporal id whatever their native rates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from engine.errors import InvalidInputError

US_PER_S = 1_000_000

#: Default tick used for temporal position ids (40 ms, as in Qwen2.5-Omni's TMRoPE).
DEFAULT_TICK_US = 40_000


def _round_half_even(x: Fraction) -> int:
    # Python's round() on a Fraction is exact and rounds half to even: no float error creeps in
    # even for 90 kHz or 1/48000 time bases over days of media.
    return int(round(x))


def _div_round_half_even(num: int, den: int) -> int:
    """``round(num / den)`` for ints (den > 0), exact and half-to-even like ``round(Fraction)``.

    Integer-only: called for every decoded frame, where building Fractions was measurable.
    """
    q, r = divmod(num, den)
    twice = 2 * r
    if twice > den or (twice == den and q % 2 == 1):
        q += 1
    return q


def pts_to_us(pts: int, time_base: Fraction) -> int:
    """Converts a PTS in ``time_base`` units to integer microseconds (exact, half-to-even).

    Args:
        pts: Presentation timestamp in stream time-base units.
        time_base: The stream's time base, e.g. ``Fraction(1, 90000)``.

    Returns:
        The time in microseconds.
    """
    tb = Fraction(time_base)
    return _div_round_half_even(int(pts) * tb.numerator * US_PER_S, tb.denominator)


def us_to_pts(t_us: int, time_base: Fraction) -> int:
    """Converts integer microseconds to the nearest PTS in ``time_base`` units."""
    return _round_half_even(Fraction(t_us, US_PER_S) / Fraction(time_base))


def sample_to_us(sample_index: int, sample_rate_hz: int) -> int:
    """Time in microseconds of sample ``sample_index`` of a stream starting at 0."""
    return _div_round_half_even(int(sample_index) * US_PER_S, int(sample_rate_hz))


def us_to_sample(t_us: int, sample_rate_hz: int) -> int:
    """Index of the sample at (or nearest to) ``t_us`` for a stream starting at 0."""
    return _div_round_half_even(int(t_us) * int(sample_rate_hz), US_PER_S)


def samples_per_span(span_us: int, sample_rate_hz: int) -> int:
    """Exact number of samples in a span; raises if the span is not a whole number of samples.

    Segment lengths must map to whole samples so that consecutive segments tile the sample grid
    with no remainder drifting from one segment to the next.
    """
    n = Fraction(span_us * sample_rate_hz, US_PER_S)
    if n.denominator != 1:
        raise InvalidInputError(
            "segment_s", f"{span_us} us is not a whole number of samples at {sample_rate_hz} Hz"
        )
    return int(n)


def us_to_tick(t_us: int | np.ndarray, tick_us: int = DEFAULT_TICK_US) -> int | np.ndarray:
    """Maps microseconds to the tick that contains them (floor), for scalars or int arrays."""
    if tick_us <= 0:
        raise InvalidInputError("tick_us", f"must be positive, got {tick_us}")
    if isinstance(t_us, np.ndarray):
        return np.floor_divide(t_us.astype(np.int64), tick_us)
    return int(t_us) // tick_us


def tick_to_us(tick: int | np.ndarray, tick_us: int = DEFAULT_TICK_US) -> int | np.ndarray:
    """Start time in microseconds of a tick."""
    if isinstance(tick, np.ndarray):
        return tick.astype(np.int64) * tick_us
    return int(tick) * tick_us


def rate_to_ticks(n_items: int, rate_hz: float, t0_us: int = 0, tick_us: int = DEFAULT_TICK_US) -> np.ndarray:
    """Temporal ids for ``n_items`` items of a regular-rate stream (e.g. 100 Hz mel frames).

    Args:
        n_items: Number of items.
        rate_hz: Their rate (items per second); may be fractional (29.97).
        t0_us: Time of item 0.
        tick_us: Tick length.

    Returns:
        int64 array of tick ids, one per item.
    """
    rate = Fraction(rate_hz).limit_denominator(1_000_000)
    t_us = np.array([t0_us + _round_half_even(Fraction(i * US_PER_S) / rate) for i in range(n_items)], dtype=np.int64)
    return np.floor_divide(t_us, tick_us)


@dataclass(frozen=True)
class Discontinuity:
    """A PTS discontinuity found in one stream (reported, never silently hidden).

    Attributes:
        stream: ``"audio"`` or ``"video"``.
        kind: ``"gap"`` (time jumped forward more than expected) or ``"backward"`` (time went
            back or repeated).
        expected_us: Where the next item was expected on the timeline.
        actual_us: Where it actually was.
    """

    stream: str
    kind: str
    expected_us: int
    actual_us: int

    @property
    def jump_us(self) -> int:
        """Signed size of the jump (actual − expected)."""
        return self.actual_us - self.expected_us


@dataclass
class PtsMonitor:
    """Watches one stream's timestamps for gaps and backward jumps.

    Attributes:
        stream: Name used in reports (``"audio"`` / ``"video"``).
        gap_tolerance_us: A forward jump larger than the expected step by more than this is a gap.
            Video uses a multiple of the nominal frame duration so VFR jitter is not reported.
        discontinuities: Every discontinuity seen, in order.
    """

    stream: str
    gap_tolerance_us: int
    discontinuities: list[Discontinuity] = field(default_factory=list)
    _expected_us: int | None = None

    def observe(self, t_us: int, duration_us: int) -> Discontinuity | None:
        """Records an item at ``t_us`` lasting ``duration_us``; returns a discontinuity if any."""
        found = None
        if self._expected_us is not None:
            jump = t_us - self._expected_us
            if jump > self.gap_tolerance_us:
                found = Discontinuity(self.stream, "gap", self._expected_us, t_us)
            elif jump < -self.gap_tolerance_us:
                found = Discontinuity(self.stream, "backward", self._expected_us, t_us)
        if found is not None:
            self.discontinuities.append(found)
        self._expected_us = t_us + duration_us
        return found
