"""Stage 3, align: audio and video cues in, offset / drift / piecewise-linear warp out.

Cue signals (audio onset strength, video novelty) are put on one grid; a coarse global
cross-correlation gives the lag, banded DTW the path, onsets matched along it the pairs, and a
robust fit the warp (constant-offset runs sharing one drift). The tracker runs the same steps
over a sliding window for live streams.

In: segments (or their cues, extracted at the source by ``SegmentCueExtractor``) and a
:class:`~engine.align.config.SyncConfig`.
Out: :class:`~engine.align.sync.SyncEstimate` — ``offset_ms``, ``drift_ppm``, ``confidence``,
``warp`` rows ``(t_video_s, t_audio_s)``; sign convention ``t_audio = offset + t_video·(1+drift)``.

Public names:
    config: SyncConfig, LOW_CONFIDENCE
    cues: CueConfig, AudioCues, VideoCues, SegmentCues, SegmentCueExtractor, AudioCueExtractor,
        VideoCueExtractor
    sync: SyncEstimate, SyncDiagnostics, estimate_sync, estimate_from_cues, estimate_window,
        extract_cues, coarse_lag, global_xcorr_offset_ms, dtw_path, confidence_score, no_estimate
    warp_fit: WarpRun, WarpFit, fit_pairs, match_onsets, locate_transitions, build_warp
    tracker: SyncTracker
    dtw: DTWConfig, DTWResult, dtw, dtw_distance, dtw_from_cost, unit_rows
    oltw: OLTWConfig, OnlineDTW, online_dtw_path (online DTW; measured beside the banded path)
    kernels.dtw_torch / kernels.dtw_triton: batched_dtw, dtw_triton (GPU DTW)
"""
