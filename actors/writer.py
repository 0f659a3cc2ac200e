"""The writer stage: attaches each row's sync estimate and commits the rows to LanceDB, idempotently.

:class:`WriteRows` runs on a Ray Data actor pool (Ray restarts a dead actor and retries its
batch). It first asks the streams' aligners for the estimate in force for each segment and their ASR
actors for its words (one round trip each per batch; a separate stage for it cost more in Ray Data's per-block overhead than the
lookup itself). Each call commits its whole batch with ``merge_insert`` keyed on
``(stream_id, segment_index)`` *before* returning, so a retry after a crash can never duplicate a
row and a returned batch is never lost. It returns a :class:`~engine.ingest.records.CommitRecord`
per segment (packed like its input), which the driver turns into progress and metrics.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from actors.aligner import alignments_for
from actors.asr import speech_for
from actors.faults import maybe_fail
from engine.errors import InvalidInputError
from engine.ingest.config import PipelineConfig
from engine.ingest.records import (
    Alignment,
    CommitRecord,
    TokenRecord,
    pack_records,
    record_to_row,
    unpack_records,
    with_speech,
)
from engine.store.table import SegmentStore, StoreConfig


class WriteRows:
    """Ray Data UDF: packed :class:`TokenRecord` rows in, packed :class:`CommitRecord` rows out.

    Args:
        config: The pipeline configuration (DB folder, index refresh cadence, fault hooks).
        store_config: The table's shape (the driver created the table with it).
        aligners: The aligner actors (see :func:`actors.aligner.aligner_for`).
        asr_actors: The ASR actors (see :func:`actors.asr.asr_for`); None when ASR is off.
        anchor_modalities: The DB's installed adapters to embed committed rows with (see
            :func:`engine.ingest.pipeline.install_anchor_adapters`).
    """

    def __init__(self, config: PipelineConfig, store_config: StoreConfig, aligners: list,
                 asr_actors: list | None = None, anchor_modalities: tuple[str, ...] = ()) -> None:
        self.config = config
        self.aligners = aligners
        self.asr_actors = asr_actors
        self.store = SegmentStore(store_config)
        self.anchors = None
        if anchor_modalities:
            from engine.store.anchors import AnchorWriter

            self.anchors = AnchorWriter(store_config.db_dir, anchor_modalities)
        self._since_index = 0
        self._fts_ready = False

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        toks: list[TokenRecord] = unpack_records(batch)
        for tok in toks:
            maybe_fail(self.config.fault_injection, "writer", tok.segment_index)
        alignments = alignments_for([t.key for t in toks], self.aligners, self.config.aligner_wait_s)
        speech = speech_for([t.key for t in toks], self.asr_actors, self.config.asr_wait_s)
        toks = [with_speech(t, s) for t, s in zip(toks, speech)]
        good = [(t, a) for t, a in zip(toks, alignments) if t.error is None]
        inserted, errors = 0, {}
        step = self.config.writer_batch_rows
        for i in range(0, len(good), step):  # one LanceDB commit (table version) per chunk
            n, errs = self._write(good[i:i + step])
            inserted += n
            errors.update(errs)
        self._since_index += inserted
        # Build the full-text index as soon as there is text (before it, text search scans
        # without stemming or stop words), then refresh every `index_every_rows`. One writer:
        # indexes are built from one place only.
        has_text = any(t.transcript for t in toks if t.error is None)
        if inserted and ((has_text and not self._fts_ready) or self._since_index >= self.config.index_every_rows):
            self._fts_ready = "transcript" in self.store.ensure_indexes().indexed_columns
            self._since_index = 0
        now = time.time()
        return pack_records([
            CommitRecord(t.stream_id, t.segment_index, t.t_start_us, t.t_end_us, t.error or errors.get(t.key),
                         a.status, t.tokens_in, t.tokens_out, t.wall_decoded_s, t.wall_tokenized_s, now,
                         a.offset_ms, a.drift_ppm, a.confidence)
            for t, a in zip(toks, alignments)])

    def _write(self, pairs: list[tuple[TokenRecord, Alignment]]) -> tuple[int, dict[tuple[str, int], str]]:
        """Commits the rows in one transaction; a row the store rejects fails alone.

        Returns:
            Rows newly inserted (a retried batch inserts none twice), and the rejected rows'
            reasons by key.
        """
        if not pairs:
            return 0, {}
        rows = [record_to_row(t, a) for t, a in pairs]
        try:
            inserted, errors = self.store.write(rows).inserted, {}
        except InvalidInputError:
            inserted, errors = 0, {}
            for (t, _), row in zip(pairs, rows):
                try:
                    inserted += self.store.write([row]).inserted
                except InvalidInputError as exc:
                    errors[t.key] = f"{type(exc).__name__}: {exc}"
        if self.anchors is not None:
            # After the rows' commit, and for every committed row even when a retry inserted none
            # (the crash may have fallen between the two writes); merge-insert keeps one vector.
            self.anchors.write([row for (t, _), row in zip(pairs, rows) if t.key not in errors])
        return inserted, errors
