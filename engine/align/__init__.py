"""Stage 3, align: audio and video cues in, offset / drift / piecewise-linear warp out.

Cue signals are put on one 100 Hz grid. The coarse stage correlates continuous cues (loudness,
RMS, log-energy rise against frame difference, motion, cuts, brightness change and per-region
brightness slopes) at every lag and picks one global lag with a calibrated confidence; it
contains the naive peer of issue #12 (one global cross-correlation) as a special case. Where
that lag is unsure, the splice search compares the lags before and after points of the stream.
Banded DTW around that lag
gives the path, onsets matched along it the pairs, and a robust fit the warp (constant-offset
runs sharing one drift), used only where that evidence is confident and agrees. The tracker runs
the same steps incrementally for live streams and ends on the offline lag curves.

In: segments (or their cues, extracted at the source by ``SegmentCueExtractor``) and a
:class:`~engine.align.config.SyncConfig`.
Out: :class:`~engine.align.sync.SyncEstimate` — ``offset_ms``, ``drift_ppm``, ``confidence``,
``warp`` rows ``(t_video_s, t_audio_s)``; sign convention ``t_audio = offset + t_video·(1+drift)``.

Public names:
    config: SyncConfig, LOW_CONFIDENCE
    coarse: LagCorrelator, GlobalLag, choose_lag, subbin_peak, video_features, audio_features
    cues: CueConfig, AudioCues, VideoCues, SegmentCues, SegmentCueExtractor, AudioCueExtractor,
        VideoCueExtractor
    sync: SyncEstimate, SyncDiagnostics, estimate_sync, estimate_from_cues, estimate_from_segments,
        decode_for_sync, cues_from_segments, extract_cues, global_lag, global_estimate, combine,
        coarse_lag, global_xcorr_offset_ms, dtw_path, confidence_score, no_estimate, new_correlator,
        split_estimate
    splits: SplitLag, choose_split
    warp_fit: WarpRun, WarpFit, fit_pairs, match_onsets, locate_transitions, build_warp
    tracker: SyncTracker
    dtw: DTWConfig, DTWResult, dtw, dtw_distance, dtw_from_cost, unit_rows
    oltw: OLTWConfig, OnlineDTW, online_dtw_path (online DTW; measured beside the banded path)
    kernels.dtw_torch / kernels.dtw_triton: batched_dtw, dtw_triton (GPU DTW)
"""
