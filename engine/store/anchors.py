"""The anchor-space table: stored rows embedded by the alignment adapters, and any-to-any search.

A table ``anchors`` beside ``segments`` holds one 384-d vector per (row, modality): an image
adapter embeds a row's ``image_emb``, an audio adapter its ``audio_enc_emb``, each into the frozen
MiniLM space where ``text_emb`` already lives. Any query that can reach the space (text through
MiniLM, a picture or a sound through its adapter) then ranks rows by any target modality's
vectors — text→image, audio→image, image→audio — and every hit says which modality matched.
Keeping the vectors in their own table means adding an adapter never rewrites the segments
table, and re-embedding with a new adapter replaces only that modality's vectors (merge-insert
on ``(stream_id, segment_index, modality)``).

The adapter's input is the stored column as ingest wrote it (L2-normalised pooled features); the
head's input LayerNorm makes it indifferent to that scale, so the pairs' raw features and the
stored ones map alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from engine.errors import InvalidInputError
from engine.train.config import ANCHOR_DIM

TABLE = "anchors"
#: The stored column each adapter modality reads.
SOURCE_COLUMN = {"image": "image_emb", "audio": "audio_enc_emb"}
#: Rows from which an approximate index is built (below it a flat scan is exact and fast).
INDEX_MIN_ROWS = 10_000


@dataclass(frozen=True)
class AnchorHit:
    """One row found in the anchor space.

    Attributes:
        stream_id: The row's stream.
        segment_index: The row's segment.
        t_start_us: Segment start.
        t_end_us: Segment end.
        modality: Which modality's vector matched (``image``, ``audio``).
        score: Cosine similarity in the anchor space.
        adapter: The adapter (modality@hash) that made the vector.
    """

    stream_id: str
    segment_index: int
    t_start_us: int
    t_end_us: int
    modality: str
    score: float
    adapter: str


def _schema() -> pa.Schema:
    return pa.schema([("key", pa.string()), ("stream_id", pa.string()), ("segment_index", pa.int64()),
                      ("t_start_us", pa.int64()), ("t_end_us", pa.int64()), ("modality", pa.string()),
                      ("adapter", pa.string()), ("vector", pa.list_(pa.float32(), ANCHOR_DIM))])


def _open(db_dir, create: bool):
    import lancedb

    db = lancedb.connect(str(db_dir))
    if TABLE in list(db.list_tables().tables):
        return db.open_table(TABLE)
    return db.create_table(TABLE, schema=_schema()) if create else None


def adapter_dir(db_dir, modality: str):
    """Where a DB keeps the adapter its ``modality`` vectors were made by (queries need it)."""
    from pathlib import Path

    return Path(db_dir) / "adapters" / modality


def install_adapter(db_dir, folder) -> "object":
    """Copies an adapter folder into the DB (so the DB answers queries on its own) and loads it."""
    import shutil

    from engine.train.adapter import CONFIG_FILE, WEIGHTS_FILE, load_adapter

    ad = load_adapter(folder)
    dest = adapter_dir(db_dir, ad.config.modality)
    dest.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        shutil.copyfile(f"{folder}/{name}", dest / name)
    return load_adapter(dest)


def anchor_query_vector(db_dir, modality: str, vector: np.ndarray) -> np.ndarray:
    """A picture's ``image_emb`` or a sound's ``audio_enc_emb`` (as the table's encoder makes
    them) through the DB's adapter of that modality: the query in the anchor space.

    Raises:
        InvalidInputError: The DB has no adapter of that modality.
    """
    from engine.train.adapter import load_adapter

    folder = adapter_dir(db_dir, modality)
    if not folder.is_dir():
        raise InvalidInputError("target", f"{modality} queries need a {modality} adapter in the DB "
                                          "(`omnialign embed --adapter`)")
    return load_adapter(folder).embed(np.asarray(vector, np.float32)[None])[0]


def check_adapter(adapter, encoders: dict[str, str]) -> str:
    """The stored column ``adapter`` reads; checks the table's encoder of it is the adapter's.

    Args:
        adapter: A loaded :class:`~engine.train.adapter.Adapter`.
        encoders: The table's ``{column: encoder}`` (:meth:`SegmentStore.encoders`).

    Raises:
        InvalidInputError: The adapter's modality has no stored column, or the column is filled
            by another encoder than the one the adapter was trained on.
    """
    modality = adapter.config.modality
    column = SOURCE_COLUMN.get(modality)
    if column is None:
        raise InvalidInputError("adapter", f"no stored column for {modality} adapters; known: {sorted(SOURCE_COLUMN)}")
    filled_by = encoders.get(column)
    if filled_by != adapter.config.encoder:
        raise InvalidInputError(column, f"filled by {filled_by or 'nothing'}, but adapter {adapter.name} was trained "
                                        f"on {adapter.config.encoder}")
    return column


def write_vectors(db_dir, adapter, keys: list[tuple[str, int, int, int]], features: np.ndarray) -> int:
    """Embeds ``features`` (one row per ``(stream_id, segment_index, t_start_us, t_end_us)`` key)
    and merges them into the anchors table (idempotent: a retried write replaces, never adds)."""
    if not keys:
        return 0
    modality = adapter.config.modality
    vecs = adapter.embed(np.asarray(features, np.float32))
    sids, segs, t0s, t1s = (list(x) for x in zip(*keys))
    data = pa.table({
        "key": [f"{s}\0{i}\0{modality}" for s, i in zip(sids, segs)], "stream_id": sids, "segment_index": segs,
        "t_start_us": t0s, "t_end_us": t1s, "modality": [modality] * len(sids), "adapter": [adapter.name] * len(sids),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), ANCHOR_DIM)}, schema=_schema())
    table = _open(db_dir, create=True)
    table.merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(data)
    return len(keys)


def embed_store(store, adapter, batch_rows: int = 1024) -> int:
    """Embeds every stored row that has the adapter's source column; returns the rows embedded.

    Args:
        store: A :class:`~engine.store.table.SegmentStore`.
        adapter: A loaded :class:`~engine.train.adapter.Adapter`.
        batch_rows: Rows per read and write.

    Raises:
        InvalidInputError: See :func:`check_adapter`.
    """
    column = check_adapter(adapter, store.encoders())
    cols = ["stream_id", "segment_index", "t_start_us", "t_end_us", column]
    rows = store.dataset().to_table(columns=cols, filter=f"{column} IS NOT NULL")
    done = 0
    for start in range(0, rows.num_rows, batch_rows):
        part = rows.slice(start, batch_rows)
        keys = list(zip(*(part.column(c).to_pylist() for c in cols[:4])))
        feats = np.stack(part.column(column).to_numpy(zero_copy_only=False))
        done += write_vectors(store.config.db_dir, adapter, keys, feats)
    ensure_anchor_index(store.config.db_dir)
    return done


def ensure_anchor_index(db_dir) -> None:
    """Builds the approximate index once the table is large enough to need one."""
    table = _open(db_dir, create=False)
    if table is not None and table.count_rows() >= INDEX_MIN_ROWS:
        from lancedb.index import IvfHnswSq

        table.create_index("vector", config=IvfHnswSq(distance_type="cosine"), replace=True)


class AnchorWriter:
    """Ingest's side of the anchor space: the vectors of rows as they are committed.

    Args:
        db_dir: The LanceDB folder; its installed adapters (see :func:`install_adapter`) of
            ``modalities`` are loaded, so every writer process embeds with the same weights.
        modalities: Which installed adapters to apply.
    """

    def __init__(self, db_dir, modalities: tuple[str, ...]) -> None:
        from engine.train.adapter import load_adapter

        self.db_dir = db_dir
        self.adapters = [load_adapter(adapter_dir(db_dir, m)) for m in modalities]

    def write(self, rows) -> int:
        """Embeds the rows (:class:`~engine.store.schema.SegmentRow`) that have each adapter's
        column; returns the vectors written."""
        done = 0
        for ad in self.adapters:
            column = SOURCE_COLUMN[ad.config.modality]
            have = [r for r in rows if getattr(r, column) is not None]
            if have:
                done += write_vectors(self.db_dir, ad, [(r.stream_id, r.segment_index, r.t_start_us, r.t_end_us)
                                                        for r in have], np.stack([getattr(r, column) for r in have]))
        return done


def anchored_modalities(db_dir) -> dict[str, str]:
    """``{modality: adapter}`` of the vectors stored (empty without an anchors table)."""
    table = _open(db_dir, create=False)
    if table is None:
        return {}
    t = table.search().select(["modality", "adapter"]).limit(None).to_arrow()
    return dict(zip(t.column("modality").to_pylist(), t.column("adapter").to_pylist()))


def anchor_count(db_dir, modality: str) -> int:
    """Vectors of ``modality`` stored (0 without an anchors table)."""
    from engine.store.table import sql_quote

    table = _open(db_dir, create=False)
    return 0 if table is None else table.count_rows(f"modality = {sql_quote(modality)}")


def anchor_search(db_dir, vector: np.ndarray, targets: tuple[str, ...] | None = None, k: int = 10,
                  stream_id: str | None = None) -> list[AnchorHit]:
    """Rows whose ``targets`` vectors are nearest to ``vector`` (a 384-d anchor-space query).

    Args:
        db_dir: The LanceDB folder.
        vector: The query, already in the anchor space.
        targets: Modalities to rank by; ``None``: every modality with stored vectors.
        k: Hits wanted.
        stream_id: Only this stream.

    Raises:
        InvalidInputError: Bad vector, ``k``, or a target with no stored vectors.
    """
    from engine.store.table import sql_quote

    v = np.asarray(vector, np.float32)
    if v.shape != (ANCHOR_DIM,) or not np.isfinite(v).all() or not np.any(v):
        raise InvalidInputError("vector", f"needs a finite non-zero ({ANCHOR_DIM},) anchor-space vector, got {v.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise InvalidInputError("k", f"must be a positive integer, got {k!r}")
    stored = anchored_modalities(db_dir)
    if targets is None:
        targets = tuple(sorted(stored))
    missing = [t for t in targets if t not in stored]
    if missing or not targets:
        raise InvalidInputError("target", f"no {', '.join(missing) or 'stored'} vectors in the anchor space (run `omnialign "
                                          f"embed` with an adapter of that modality); stored: {sorted(stored) or 'none'}")
    where = "modality IN (" + ", ".join(sql_quote(t) for t in targets) + ")"
    if stream_id is not None:
        where += f" AND stream_id = {sql_quote(stream_id)}"
    t = (_open(db_dir, create=False).search(v, vector_column_name="vector").distance_type("cosine")
         .where(where, prefilter=True).limit(k).to_arrow())
    return [AnchorHit(r["stream_id"], int(r["segment_index"]), int(r["t_start_us"]), int(r["t_end_us"]),
                      r["modality"], 1.0 - float(r["_distance"]), r["adapter"]) for r in t.to_pylist()]
