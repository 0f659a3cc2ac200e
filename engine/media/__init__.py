"""Stage 1, media: sources in, segments on the unified timeline out.

Opens files, folders' files and live URLs (rtsp/rtmp/http/udp/srt/tcp) through PyAV, and cuts
them into fixed-length segments whose every timestamp is an integer of microseconds derived from
PTS × time_base (never from counting frames or samples).

In: a path or URL and a :class:`~engine.media.decode.MediaConfig`.
Out: :class:`~engine.media.decode.Segment` objects (16 kHz mono audio sliced by sample time,
RGB frames with their own ``t_us``, reported discontinuities), transcript text from sidecar
``.srt``/``.vtt`` files, and the per-stage views of a segment that actors ship.

Public names:
    decode: MediaConfig, StreamInfo, Segment, SegmentReader, iter_segments
    sources: SourceRef, classify, default_stream_id, open_container, LIVE_SCHEMES
    timeline: US_PER_S, pts_to_us, us_to_pts, sample_to_us, us_to_sample, samples_per_span,
        us_to_tick, tick_to_us, Discontinuity, PtsMonitor
    transcripts: TranscriptSidecar, TranscriptError, load_transcript, find_sidecar, text_for_span
    segment_views: token_view, token_frame_indices
    synth: SynthSpec, synthesize, GroundTruth (deterministic clips with ground truth, for tests)

Submodules are imported explicitly (``from engine.media.decode import SegmentReader``) so a
process that needs the timeline does not pay for PyAV.
"""
