"""Stage 4, ingest: what one segment becomes between the stages, and the pipeline's settings.

The typed record that flows from the source through the tokenizer and the aligner to the
writer, its conversion to a store row (exactly one place), and :class:`PipelineConfig`, the one
configuration the Ray pipeline (:mod:`actors.pipeline`) and the single-process reference loop
share.

In: :class:`~engine.media.decode.Segment`, :class:`~engine.tokenize.tokenizer.SegmentTokens`,
:class:`~engine.align.sync.SyncEstimate`.
Out: :class:`~engine.store.schema.SegmentRow` rows for the store.

Public names:
    config: PipelineConfig
    records: SegmentRecord, TokenRecord, Alignment, CommitRecord, pack_records, unpack_records,
        record_to_row, PIPELINE_VERSION, SYNC_MEASURED, SYNC_FALLBACK, SYNC_NONE, SpeechRecord,
        with_speech
    tokenize_stage: tokenize_records, tokenize_record, jpeg_thumbnails
    asr_stage: speech_records, recognize_audio, recognize_segment
    pipeline: run_local (the benchmarks' reference loop), StreamResult, expand_sources,
        store_config_for
"""
