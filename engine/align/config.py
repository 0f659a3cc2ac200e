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
        drift_min_t: A fitted drift is kept only this many standard errors away from 0.
        drift_min_effect_ms: ... and only if it moves the warp by more than this over the span of
            the pairs (otherwise it lowers no residual that matters) ...
        drift_min_scatter_ratio: ... and by more than this many times the pairs' scatter.
        peak_exclusion_ms: A rival correlation peak must lie farther than this from the main one.
        pair_min_peak: A single feature pair's curve replaces the naive one only with a peak of at
            least this correlation ...
        pair_margin: ... and this much above the curve it replaces ...
        pair_min_prominence: ... and this prominence over its own rival peaks.
        conf_peak_floor: Global confidence is 0 at/below this peak correlation ...
        conf_peak_span: ... and reaches its peak factor 1 this much above it.
        conf_prominence_full: Prominence at which the global confidence's prominence factor is 1.
        halves_agree_ms: The two interleaved halves of the stream agree when their peaks on the
            chosen curve are within this of the whole stream's ...
        half_min_peak_ratio: ... and each half's own peak is at least this share of the whole's;
        conf_disagree_factor: otherwise the global confidence is multiplied by this.
        onset_agree_ms: The onset path's main run must be within this of the global lag to be
            used (otherwise the onsets matched something else: speech syllables, not cuts).
        onset_override_margin: ... unless its confidence exceeds the global one by this much.
        complex_min_confidence: An onset fit with splices or drift needs at least this confidence
            to replace the global lag.
        split_snapshot_s: Spacing of the points where a splice is looked for on the continuous
            cues (doubling on long streams, see :class:`~engine.align.coarse.LagCorrelator`).
        split_max_snapshots: Those points kept per stream (memory: ~1 MB each at the default
            features and ±600 ms, so ~16 MB per tracked stream).
        split_min_side_s: Stream on each side of a splice: a shorter side's lag is one event.
        split_min_confidence: Each side's own global confidence needed to report a splice ...
        split_margin: ... and this much above the whole stream's single lag ...
        split_min_jump_ms: ... and the two lags this far apart.
        split_max_whole_confidence: No splice is looked for when the single lag is this sure (a
            splice would have split its peak).
    """

    cues: CueConfig = field(default_factory=CueConfig)
    max_offset_ms: float = 600.0
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
    max_drift_ppm: float = 1500.0
    drift_min_t: float = 4.0
    drift_min_effect_ms: float = 4.0
    drift_min_scatter_ratio: float = 3.0
    peak_exclusion_ms: float = 100.0
    pair_min_peak: float = 0.35
    pair_margin: float = 0.1
    pair_min_prominence: float = 0.15
    conf_peak_floor: float = 0.1
    conf_peak_span: float = 0.3
    conf_prominence_full: float = 0.1
    halves_agree_ms: float = 40.0
    half_min_peak_ratio: float = 0.5
    conf_disagree_factor: float = 0.2
    onset_agree_ms: float = 80.0
    onset_override_margin: float = 0.3
    complex_min_confidence: float = 0.7
    split_snapshot_s: float = 1.0
    split_max_snapshots: int = 16
    split_min_side_s: float = 4.0
    split_min_confidence: float = 0.5
    split_margin: float = 0.3
    split_min_jump_ms: float = 40.0
    split_max_whole_confidence: float = 0.5

    def __post_init__(self) -> None:
        for name in ("max_offset_ms", "band_ms", "search_ms", "splice_jump_ms", "refractory_ms"):
            if getattr(self, name) <= 0:
                raise InvalidInputError(name, f"must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.complex_min_confidence <= 1.0:
            raise InvalidInputError("complex_min_confidence", f"must be in [0, 1], got {self.complex_min_confidence}")
        for name in ("conf_peak_span", "conf_prominence_full", "peak_exclusion_ms", "onset_agree_ms"):
            if getattr(self, name) <= 0:
                raise InvalidInputError(name, f"must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.pair_min_peak <= 1.0:
            raise InvalidInputError("pair_min_peak", f"must be in [0, 1], got {self.pair_min_peak}")
        for name in ("split_snapshot_s", "split_min_side_s", "split_min_jump_ms"):
            if getattr(self, name) <= 0:
                raise InvalidInputError(name, f"must be positive, got {getattr(self, name)}")
        if self.split_max_snapshots < 1:
            raise InvalidInputError("split_max_snapshots", f"must be >= 1, got {self.split_max_snapshots}")
        if self.min_pairs < 2:
            raise InvalidInputError("min_pairs", f"must be >= 2, got {self.min_pairs}")
