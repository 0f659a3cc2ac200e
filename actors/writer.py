"""The writer stage: attaches each row's sync estimate and commits the rows to LanceDB, idempotently.

:class:`WriteRows` runs on a Ray Data actor pool (Ray restarts a dead actor and retries its
batch). It first asks the streams' aligners for the estimate in force for each segment (one
round trip per batch; a separate stage for it cost more in Ray Data's per-block overhead than the
lookup itself). Each call commits its whole batch with ``merge_insert`` keyed on
``(stream_id, segment_index)`` *before* returning, so a retry after a crash can never duplicate a
row and a returned batch is never lost. It returns one small summary row per input row, which
the driver turns into progress and metrics.
"""

from __future__ import annotations

import time

import numpy as np

from actors.aligner import attach_alignment
from actors.faults import maybe_fail
from engine.errors import InvalidInputError
from engine.ingest.pipeline import PipelineConfig, record_to_row
from engine.ingest.records import null_to_none
from engine.store.table import SegmentStore, StoreConfig


class WriteRows:
    """Ray Data UDF: token + alignment records in, commit summaries out.

    Args:
        config: The pipeline configuration (DB folder, index refresh cadence, fault hooks).
        store_config: The table's shape (the driver created the table with it).
        aligners: The aligner actors (see :func:`actors.aligner.aligner_for`).
    """

    def __init__(self, config: PipelineConfig, store_config: StoreConfig, aligners: list) -> None:
        self.config = config
        self.aligners = aligners
        self.store = SegmentStore(store_config)
        self._since_index = 0
        self._fts_ready = False

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["segment_index"])
        recs = [{k: v[i] for k, v in batch.items()} for i in range(n)]
        for rec in recs:
            maybe_fail(self.config.fault_injection, "writer", rec["segment_index"])
        for rec in recs:
            rec["error"] = null_to_none(rec.get("error"))
        attach_alignment(recs, self.aligners)
        inserted = self._write([r for r in recs if r["error"] is None])
        now = time.time()
        self._since_index += inserted
        # Build the full-text index as soon as there is text (before it, text search scans
        # without stemming or stop words), then refresh every `index_every_rows`. One writer:
        # indexes are built from one place only.
        has_text = any(isinstance(null_to_none(r.get("transcript")), str) for r in recs if r["error"] is None)
        if inserted and ((has_text and not self._fts_ready) or self._since_index >= self.config.index_every_rows):
            self._fts_ready = "transcript" in self.store.ensure_indexes().indexed_columns
            self._since_index = 0
        return self._summary(recs, inserted, now)

    def _write(self, recs: list[dict]) -> int:
        """Commits the rows in one transaction; a row the store rejects fails alone."""
        if not recs:
            return 0
        try:
            return self.store.write([record_to_row(r, self.store.config) for r in recs]).inserted
        except InvalidInputError:
            inserted = 0
            for r in recs:
                try:
                    inserted += self.store.write([record_to_row(r, self.store.config)]).inserted
                except InvalidInputError as exc:
                    r["error"] = f"{type(exc).__name__}: {exc}"
            return inserted

    @staticmethod
    def _summary(recs: list[dict], inserted: int, now: float) -> dict[str, np.ndarray]:
        n = len(recs)
        return {
            "stream_id": np.array([str(r["stream_id"]) for r in recs], dtype=object),
            "segment_index": np.array([int(r["segment_index"]) for r in recs], np.int64),
            "t_start_us": np.array([int(r["t_start_us"]) for r in recs], np.int64),
            "t_end_us": np.array([int(r["t_end_us"]) for r in recs], np.int64),
            "error": np.array([r["error"] or "" for r in recs], dtype=object),
            "tokens_in": np.array([int(r.get("tokens_in") or 0) for r in recs], np.int64),
            "tokens_out": np.array([int(r.get("tokens_out") or 0) for r in recs], np.int64),
            "wall_decoded": np.array([float(r.get("wall_decoded") or now) for r in recs]),
            "wall_tokenized": np.array([float(r.get("wall_tokenized") or now) for r in recs]),
            "wall_committed": np.full(n, now),
            "inserted_batch": np.full(n, inserted, np.int64),
        }
