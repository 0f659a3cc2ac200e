"""Settings of audio–video sync estimation, shared by the offline estimate, the warp fit and the
streaming tracker (one module, so every stage reads the same settings and nothing imports back)."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.align.cues import CueConfig
from engine.errors import InvalidInputError

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
            video time needs a frame within this of it (see
            :func:`~engine.align.warp_fit.locate_transitions`).
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

    def __post_init__(self) -> None:
        for name in ("max_offset_ms", "band_ms", "search_ms", "splice_jump_ms", "refractory_ms"):
            if getattr(self, name) <= 0:
                raise InvalidInputError(name, f"must be positive, got {getattr(self, name)}")
        if self.min_pairs < 2:
            raise InvalidInputError("min_pairs", f"must be >= 2, got {self.min_pairs}")
