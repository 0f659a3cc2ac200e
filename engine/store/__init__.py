"""Stage 5, store: segment rows in, a searchable LanceDB table out.

One row per segment, keyed on ``(stream_id, segment_index)`` and written with ``merge_insert``
so a retried write never duplicates a row; full-text and vector indexes follow the data.

In: :class:`~engine.store.schema.SegmentRow` values (built from a pipeline record in exactly one
place, :func:`engine.ingest.records.record_to_row`).
Out: the ``segments`` table; :class:`~engine.store.search.SearchHit` lists for text (hybrid
MiniLM vectors + FTS fused by RRF), vector, time-range and stream queries.

Public names:
    schema: StoreConfig, SegmentRow, segment_schema, KEY_COLUMNS, EMBEDDING_COLUMNS, DISTANCE
    table: SegmentStore, WriteResult, StreamSummary, IndexReport, SchemaMismatchError, sql_quote
    search: SearchQuery, SearchHit, QueryError, search
    text_embed: TextEmbedder, get_text_embedder, TEXT_EMB_DIM
"""
