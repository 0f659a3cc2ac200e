"""Stage 4, ingest: what one segment becomes between the stages, and the pipeline's settings.

The typed record that flows from the source through the tokenizer and the aligner to the
writer, its conversion to a store row (exactly one place), and :class:`PipelineConfig`, the one
configuration the Ray pipeline (:mod:`actors.pipeline`) and the single-process reference loop
share.

In: :class:`~engine.media.decode.Segment`, :class:`~engine.tokenize.tokenizer.SegmentTokens`,
:class:`~engine.align.sync.SyncEstimate`.
Out: :class:`~engine.store.schema.SegmentRow` rows for the store.

Public names:
    pipeline: PipelineConfig, StreamResult, run_local (the benchmark's reference loop),
        expand_sources, store_config_for, alignment_columns, PIPELINE_VERSION
    records: segment_to_record, tokenize_record, tokenize_records, record_to_row, null_to_none
"""
