"""The LanceDB store of aligned segments: idempotent writer, resume, indexes.

One LanceDB table (default ``segments`` in ``StoreConfig.db_dir``) holds one row per fixed-length
segment of a stream. Its schema, the row type :class:`SegmentRow` and :class:`StoreConfig` live
in :mod:`engine.store.schema` (re-exported here); this module opens, writes and reads the table.

Writes are idempotent: :meth:`SegmentStore.write` is one ``merge_insert`` transaction keyed on
``(stream_id, segment_index)`` that only inserts keys not yet present, so a retried batch or a
restarted ingest never duplicates a segment. ``merge_insert`` does *not* deduplicate keys within
its own source batch (measured: two source rows with one key both get inserted), so the batch is
deduplicated first. Every write is a new table version: write batches, not single rows.

Indexes (:meth:`SegmentStore.ensure_indexes`) are :mod:`engine.store.indexes`: created once a
column is big enough, fed appended rows on the policy of :mod:`engine.store.index_policy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Optional, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import StoreError
from engine.store.indexes import IndexReport, PlanCache  # noqa: F401 - IndexReport re-exported
from engine.store import indexes as index_ops
from engine.store.schema import (  # noqa: F401 - re-exported: callers import them from here
    DISTANCE,
    ADDED_COLUMNS,
    EMBEDDING_COLUMNS,
    KEY_COLUMNS,
    STORE_SCHEMA_VERSION,
    SegmentRow,
    StoreConfig,
    segment_schema,
)


class SchemaMismatchError(StoreError):
    """An existing table's schema differs from the one the config asks for (e.g. other dims)."""



def sql_quote(value: str) -> str:
    """Quotes ``value`` as a LanceDB (DataFusion) SQL string literal.

    Doubling single quotes is the only escape: the parser takes backslashes literally
    (measured: ``'a\\'b'`` is an unterminated literal, ``'a\\''b'`` matches ``a\\'b``).
    """
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class WriteResult:
    """Outcome of :meth:`SegmentStore.write`.

    Attributes:
        inserted: Rows newly added.
        skipped: Rows not added because their key was already stored (or repeated in the batch).
    """

    inserted: int
    skipped: int


@dataclass(frozen=True)
class StreamSummary:
    """Per-stream summary from :meth:`SegmentStore.streams`.

    Attributes:
        stream_id: The stream.
        rows: Stored segments.
        last_segment_index: Highest stored segment index.
        last_t_end_us: End of the latest stored segment.
        av_offset_ms: Offset of the latest segment that has a sync estimate (``None`` if none).
        drift_ppm: Drift of that segment.
        sync_confidence: Confidence of that segment's estimate.
    """

    stream_id: str
    rows: int
    last_segment_index: int
    last_t_end_us: int
    av_offset_ms: Optional[float]
    drift_ppm: Optional[float]
    sync_confidence: Optional[float]


class SegmentStore:
    """Opens (or creates) the segment table and reads and writes it.

    Args:
        config: Location and shape of the table.

    Raises:
        SchemaMismatchError: The table exists with a different schema (e.g. other dims).
    """

    def __init__(self, config: StoreConfig) -> None:
        import lancedb  # imported here so `import engine.store.table` does not load LanceDB

        self.config = config
        self.schema = segment_schema(config)
        #: This handle's copy of the vector index plans (what queries probe and refine).
        self.plans = PlanCache()
        self._dataset = None
        Path(config.db_dir).mkdir(parents=True, exist_ok=True)
        # Strong consistency: every read sees commits made by other processes (the writer actor),
        # not the version this handle first opened.
        self._db = lancedb.connect(str(config.db_dir), read_consistency_interval=timedelta(0))
        self._where = f"{config.db_dir}/{config.table}"
        try:
            self.table = self._db.open_table(config.table)
        except (FileNotFoundError, ValueError):
            try:
                self.table = self._db.create_table(config.table, schema=self.schema,
                                                   exist_ok=True)
            except ValueError as exc:  # lost a creation race to a writer with another schema
                raise SchemaMismatchError(self._where, str(exc)) from None
        self._add_new_columns(self.table.schema)
        self._check_schema(self.table.schema)

    def _add_new_columns(self, actual: pa.Schema) -> None:
        """A table written before :data:`ADDED_COLUMNS` existed gains them in place, all null
        (a metadata-only change of the table: its rows are not rewritten)."""
        missing = [n for n in ADDED_COLUMNS if n not in actual.names]
        if not missing or actual.names != [n for n in self.schema.names if n not in missing]:
            return  # nothing to add, or a table of another shape: the check below says how
        self.table.add_columns([self.schema.field(n) for n in missing])
        self.set_metadata({"omnialign.store_schema_version": STORE_SCHEMA_VERSION})

    def encoders(self) -> dict[str, str]:
        """``{column: "name@weights hash"}`` of the encoders recorded in the table's metadata."""
        meta = self.table.schema.metadata or {}
        prefix = b"omnialign.encoder."
        return {k[len(prefix):].decode(): v.decode() for k, v in meta.items() if k.startswith(prefix)}

    @classmethod
    def open(cls, db_dir: str | Path, table: str = "segments") -> "SegmentStore":
        """Opens an existing table, reading its shape (dims, code widths) from its schema.

        Raises:
            StoreError: There is no such table (nothing was ingested there yet).
        """
        import lancedb

        if not Path(db_dir).is_dir():
            raise StoreError(str(db_dir), "no such database folder (ingest something first)")
        db = lancedb.connect(str(db_dir))
        try:
            schema = db.open_table(table).schema
        except (FileNotFoundError, ValueError):
            raise StoreError(f"{db_dir}/{table}", "no such table (ingest something first)") from None

        def width(name: str) -> int:
            t = schema.field(name).type
            return t.value_type.list_size if pa.types.is_list(t) else t.list_size

        return cls(StoreConfig(db_dir=db_dir, table=table, audio_emb_dim=width("audio_emb"),
                               video_emb_dim=width("video_emb"), image_emb_dim=width("image_emb"),
                               text_emb_dim=width("text_emb"),
                               **({"audio_enc_emb_dim": width("audio_enc_emb")} if "audio_enc_emb" in schema.names else {}),
                               audio_num_quantizers=width("audio_codes"), video_num_quantizers=width("video_codes")))

    def _check_schema(self, actual: pa.Schema) -> None:
        if actual.equals(self.schema, check_metadata=False):
            return
        diffs = []
        expected_names = set(self.schema.names)
        for f in self.schema:
            if f.name not in actual.names:
                diffs.append(f"missing column {f.name}")
            elif not actual.field(f.name).equals(f):
                diffs.append(f"{f.name}: table has {actual.field(f.name).type}"
                             f"{'' if actual.field(f.name).nullable else ' not null'}, config "
                             f"expects {f.type}{'' if f.nullable else ' not null'}")
        diffs += [f"unexpected column {n}" for n in actual.names if n not in expected_names]
        if "sync_status" not in actual.names:
            diffs.append(f"a table of store schema v1 (this is v{STORE_SCHEMA_VERSION}, which adds sync_status): "
                         "ingest into a new folder")
        elif "words" not in actual.names:
            diffs.append(f"a table of store schema v2 (this is v{STORE_SCHEMA_VERSION}, which adds words and image_emb): "
                         "ingest into a new folder")
        raise SchemaMismatchError(self._where, "schema differs from the config: "
                                  + "; ".join(diffs or ["column order differs"]))

    # ------------------------------------------------------------------ writing

    def write(self, rows: Sequence[SegmentRow]) -> WriteResult:
        """Inserts the rows whose ``(stream_id, segment_index)`` is not stored yet.

        One transaction per call (LanceDB retries it on a concurrent commit), so the call can be
        retried or repeated after a restart without duplicating a segment. Stored rows are never
        overwritten: the first write of a key wins.

        Returns:
            How many rows were inserted and how many were skipped as already present.
        """
        rows = list(rows)
        if not rows:
            return WriteResult(0, 0)
        unique: dict[tuple[str, int], SegmentRow] = {}
        for r in rows:
            unique.setdefault(r.key, r)
        data = SegmentRow.to_arrow(list(unique.values()), self.schema)
        # LanceDB's input check counts a *null* vector as a "bad vector" and by default fails the
        # write (only for float fixed-size lists of >= 10 dims, so small test dims hide it).
        # Rows were validated above (dims, NaN), so the only "bad" vectors left are the
        # intentional nulls of absent modalities: keep them null.
        result = (self.table.merge_insert(list(KEY_COLUMNS))
                  .when_not_matched_insert_all()
                  .execute(data, on_bad_vectors="null"))
        inserted = int(result.num_inserted_rows)
        return WriteResult(inserted=inserted, skipped=len(rows) - inserted)

    # ------------------------------------------------------------------ reading

    def _scan(self, columns: list[str], where: Optional[str] = None) -> pa.Table:
        query = self.table.search().select(columns)
        if where is not None:
            query = query.where(where)
        # A plain (non-vector) query without a limit returns every matching row.
        return query.to_arrow()

    def committed_indexes(self, stream_id: str) -> set[int]:
        """Segment indexes of ``stream_id`` already stored (to find gaps when resuming)."""
        tbl = self._scan(["segment_index"], f"stream_id = {sql_quote(stream_id)}")
        return set(tbl["segment_index"].to_pylist())

    def last_committed_index(self, stream_id: str) -> Optional[int]:
        """Highest stored segment index of ``stream_id``, or ``None`` if it has no rows.

        Resume from ``last + 1``; with parallel writers, segments below it may still be
        missing -- :meth:`committed_indexes` lists exactly which are stored.
        """
        tbl = self._scan(["segment_index"], f"stream_id = {sql_quote(stream_id)}")
        if tbl.num_rows == 0:
            return None
        return int(pc.max(tbl["segment_index"]).as_py())

    def source_of(self, stream_id: str) -> Optional[str]:
        """The ``source_uri`` of a stored stream's rows (its first row's), or ``None`` if it has none."""
        if self.table.count_rows() == 0:
            return None
        tbl = self.table.search().where(f"stream_id = {sql_quote(stream_id)}").select(["source_uri"]).limit(1).to_arrow()
        return tbl["source_uri"][0].as_py() if tbl.num_rows else None

    def count(self, stream_id: Optional[str] = None) -> int:
        """Number of stored segments, of one stream or of all."""
        if stream_id is None:
            return int(self.table.count_rows())
        return int(self.table.count_rows(f"stream_id = {sql_quote(stream_id)}"))

    def get(self, stream_id: str, segment_index: int) -> Optional[SegmentRow]:
        """The stored row for a key, or ``None``."""
        tbl = self.table.search().where(
            f"stream_id = {sql_quote(stream_id)} AND segment_index = {int(segment_index)}"
        ).to_arrow()
        rows = SegmentRow.from_arrow(tbl)
        return rows[0] if rows else None

    def replace_rows(self, rows: Sequence[SegmentRow]) -> int:
        """Overwrites stored rows (matched on their key) with these, in one transaction: for
        jobs that fill a column of rows already stored (a backfill). Rows not stored yet are not
        inserted. Returns how many rows were updated."""
        rows = list(rows)
        if not rows:
            return 0
        data = SegmentRow.to_arrow(rows, self.schema)
        result = self.table.merge_insert(list(KEY_COLUMNS)).when_matched_update_all().execute(data, on_bad_vectors="null")
        return int(getattr(result, "num_updated_rows", len(rows)))

    def set_metadata(self, entries: dict[str, str]) -> None:
        """Adds or replaces entries of the table's schema metadata (e.g. which encoder filled a
        column, ``omnialign.encoder.<column>``)."""
        self.table.to_lance().update_schema_metadata(dict(entries))

    def keys_where(self, where: str) -> list[tuple[str, int]]:
        """Keys of the rows matching the SQL filter ``where`` (only the key columns are read)."""
        n = self.table.count_rows()
        if n == 0:
            return []
        tbl = self.table.search().where(where).select(list(KEY_COLUMNS)).limit(n).to_arrow()
        return list(zip(tbl.column("stream_id").to_pylist(), tbl.column("segment_index").to_pylist()))

    def rows_for(self, keys: Sequence[tuple[str, int]]) -> list[SegmentRow]:
        """The stored rows of these keys (missing ones are left out)."""
        by_stream: dict[str, list[int]] = {}
        for sid, idx in keys:
            by_stream.setdefault(sid, []).append(int(idx))
        out = []
        for sid, idxs in by_stream.items():
            where = f"stream_id = {sql_quote(sid)} AND segment_index IN ({', '.join(map(str, idxs))})"
            out += SegmentRow.from_arrow(self.table.search().where(where).limit(len(idxs)).to_arrow())
        return out

    def rows_between(self, stream_id: str, from_us: int, to_us: int) -> list[SegmentRow]:
        """Rows of ``stream_id`` overlapping ``[from_us, to_us)``, in segment order."""
        where = (f"stream_id = {sql_quote(stream_id)} AND t_end_us > {int(from_us)} "
                 f"AND t_start_us < {int(to_us)}")
        rows = SegmentRow.from_arrow(self.table.search().where(where).to_arrow())
        return sorted(rows, key=lambda r: r.segment_index)

    def streams(self) -> list[StreamSummary]:
        """One summary per stored stream, sorted by ``stream_id``."""
        tbl = self._scan(["stream_id", "segment_index", "t_end_us", "av_offset_ms",
                          "drift_ppm", "sync_confidence"])
        if tbl.num_rows == 0:
            return []
        tbl = tbl.sort_by([("stream_id", "ascending"), ("segment_index", "ascending")])
        recs = tbl.to_pylist()
        out: list[StreamSummary] = []
        start = 0
        for i in range(1, len(recs) + 1):
            if i < len(recs) and recs[i]["stream_id"] == recs[start]["stream_id"]:
                continue
            group = recs[start:i]
            last = group[-1]
            synced = next((r for r in reversed(group) if r["av_offset_ms"] is not None), None)
            out.append(StreamSummary(
                stream_id=last["stream_id"], rows=len(group),
                last_segment_index=last["segment_index"], last_t_end_us=last["t_end_us"],
                av_offset_ms=synced and synced["av_offset_ms"],
                drift_ppm=synced and synced["drift_ppm"],
                sync_confidence=synced and synced["sync_confidence"]))
            start = i
        return out

    def dataset(self):
        """The table's Lance dataset at its latest version, for index searches.

        One handle is kept and moved to each new version (``checkout_version`` shares its
        session), so the index caches stay warm: a fresh ``to_lance()`` per query costs ~10 ms
        of index loading at 300k rows (measured).
        """
        version = self.table.version  # with read_consistency_interval=0: the latest commit
        if self._dataset is None:
            self._dataset = self.table.to_lance()
        if self._dataset.version != version:
            self._dataset = self._dataset.checkout_version(version)
        return self._dataset

    # ------------------------------------------------------------------ indexes

    def ensure_indexes(self, fold_all: bool = False) -> IndexReport:
        """Creates missing indexes and folds appended rows in on the policy; see
        :func:`engine.store.indexes.ensure_indexes`."""
        return index_ops.ensure_indexes(self, fold_all=fold_all)

    def unindexed_rows(self) -> dict[str, int]:
        """Indexed column -> rows not yet in its index (searched exactly until folded in)."""
        return index_ops.unindexed_rows(self)
