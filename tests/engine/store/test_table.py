import pickle

import numpy as np
import pyarrow as pa
import pytest

from engine.errors import InvalidInputError, OmniAlignError
from engine.store.table import (
    SchemaMismatchError,
    SegmentRow,
    SegmentStore,
    StoreConfig,
    StoreError,
    segment_schema,
    sql_quote,
)

SEG_US = 2_000_000
# Small dims keep the tables tiny. video_emb stays >= 10 wide: LanceDB only applies its
# vector-column input checks (which reject null vectors by default) from 10 dims up.
DIMS = dict(audio_emb_dim=8, video_emb_dim=12, text_emb_dim=4, audio_num_quantizers=3,
            video_num_quantizers=2)


def make_row(stream_id: str, i: int, cfg: StoreConfig, seed: int = 0, **overrides) -> SegmentRow:
    """A fully populated synthetic segment whose content depends on (stream, index, seed)."""
    rng = np.random.default_rng([seed, i, len(stream_id)])
    ma, mv, kf = 5 + i % 3, 4 + i % 2, 2
    t0 = i * SEG_US
    row = SegmentRow(
        stream_id=stream_id, segment_index=i, t_start_us=t0, t_end_us=t0 + SEG_US,
        source_uri=f"file:///{stream_id}.mp4",
        audio_codes=rng.integers(0, 1024, (ma, cfg.audio_num_quantizers)),
        audio_t_us=t0 + np.arange(ma, dtype=np.int64) * 20_000,
        audio_dur_us=np.full(ma, 20_000, np.int64),
        video_codes=rng.integers(0, 32767, (mv, cfg.video_num_quantizers)),
        video_t_us=np.full(mv, t0, np.int64), video_row=np.arange(mv) % 4,
        video_col=np.arange(mv) // 4,
        keyframe_t_us=t0 + np.arange(kf, dtype=np.int64) * 1_000_000,
        keyframe_jpeg=[b"\xff\xd8\xff" + bytes([i % 256, k]) for k in range(kf)],
        av_offset_ms=float(i) * 0.5, drift_ppm=-3.0, sync_confidence=0.9,
        warp=np.array([[0.0, 0.01], [1.0, 1.01], [2.0, 2.01]]) + i * 2.0,
        audio_emb=rng.standard_normal(cfg.audio_emb_dim).astype(np.float32),
        video_emb=rng.standard_normal(cfg.video_emb_dim).astype(np.float32),
        text_emb=rng.standard_normal(cfg.text_emb_dim).astype(np.float32),
        transcript=f"segment {i} of {stream_id}", codebook_version="cb-1",
        pipeline_version="0.1.0", ingested_at_us=1_700_000_000_000_000 + i)
    for k, v in overrides.items():
        setattr(row, k, v)
    return row


@pytest.fixture
def cfg(tmp_path):
    return StoreConfig(db_dir=tmp_path / "db", **DIMS)


@pytest.fixture
def store(cfg):
    return SegmentStore(cfg)


def _assert_rows_equal(a: SegmentRow, b: SegmentRow) -> None:
    for name in SegmentRow.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert x is not None and y is not None, name
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)
        elif isinstance(x, float):
            assert x == pytest.approx(y, rel=1e-6), name
        else:
            assert x == y, name


def test_schema_types_are_vector_columns_and_fixed_widths():
    schema = segment_schema(StoreConfig(db_dir="unused"))
    assert schema.field("audio_emb").type == pa.list_(pa.float32(), 128)
    assert schema.field("text_emb").type == pa.list_(pa.float32(), 384)
    assert schema.field("audio_emb").nullable and not schema.field("stream_id").nullable
    assert schema.field("audio_codes").type == pa.list_(pa.list_(pa.int16(), 8))
    assert schema.field("warp").type == pa.list_(pa.list_(pa.float64(), 2))
    assert schema.field("keyframe_jpeg").type == pa.list_(pa.binary())


def test_round_trip_preserves_every_field(store, cfg):
    rows = [make_row("cam-1", i, cfg) for i in range(3)]
    # An audio-only segment with no sync estimate yet: empty video lists, null video embedding.
    rows.append(make_row("cam-1", 3, cfg, video_codes=np.zeros((0, 2), np.int16),
                         video_t_us=np.zeros(0, np.int64), video_row=np.zeros(0, np.int16),
                         video_col=np.zeros(0, np.int16), video_emb=None, av_offset_ms=None,
                         drift_ppm=None, sync_confidence=None, transcript=None))
    assert store.write(rows).inserted == 4
    for r in rows:
        _assert_rows_equal(store.get(r.stream_id, r.segment_index), r)
    assert store.get("cam-1", 99) is None


def test_write_is_idempotent_across_retries_overlaps_and_reopen(store, cfg):
    first = store.write([make_row("s", i, cfg) for i in range(5)])
    assert (first.inserted, first.skipped) == (5, 0)
    again = store.write([make_row("s", i, cfg) for i in range(5)])
    assert (again.inserted, again.skipped) == (0, 5)
    # Overlapping batch, with a key repeated inside the batch (merge_insert alone would insert
    # both copies).
    overlap = store.write([make_row("s", i, cfg) for i in (3, 4, 5, 6, 6)])
    assert (overlap.inserted, overlap.skipped) == (2, 3)
    # A restarted process opens the same table and replays its last batch.
    reopened = SegmentStore(cfg)
    assert reopened.write([make_row("s", i, cfg) for i in (5, 6, 7)]).inserted == 1
    keys = reopened.table.to_arrow().select(["stream_id", "segment_index"]).to_pylist()
    assert sorted((k["stream_id"], k["segment_index"]) for k in keys) == [
        ("s", i) for i in range(8)]
    assert store.write([]).inserted == 0


def test_first_write_wins(store, cfg):
    store.write([make_row("s", 0, cfg, transcript="original")])
    store.write([make_row("s", 0, cfg, transcript="retry with other content")])
    assert store.get("s", 0).transcript == "original"


def test_resume_index_counts_and_gaps(store, cfg):
    assert store.last_committed_index("s") is None and store.committed_indexes("s") == set()
    store.write([make_row("s", i, cfg) for i in (0, 1, 2, 4)])
    store.write([make_row("other", i, cfg) for i in range(7)])
    assert store.last_committed_index("s") == 4
    assert store.committed_indexes("s") == {0, 1, 2, 4}
    assert store.count("s") == 4 and store.count("other") == 7 and store.count() == 11


def test_stream_ids_with_quotes_are_safe(store, cfg):
    nasty = ["it's", "x' OR '1'='1", "back\\slash'", 'dq"']
    for j, sid in enumerate(nasty):
        store.write([make_row(sid, i, cfg) for i in range(j + 1)])
    store.write([make_row("x", 0, cfg)])
    for j, sid in enumerate(nasty):
        assert store.count(sid) == j + 1
        assert store.last_committed_index(sid) == j
        assert store.get(sid, 0).stream_id == sid
    assert sql_quote("it's") == "'it''s'"


def test_streams_summary(store, cfg):
    assert store.streams() == []
    store.write([make_row("b", i, cfg) for i in range(3)])
    store.write([make_row("a", 0, cfg), make_row("a", 1, cfg, av_offset_ms=None, drift_ppm=None,
                                                  sync_confidence=None)])
    a, b = store.streams()
    assert (a.stream_id, a.rows, a.last_segment_index, a.last_t_end_us) == ("a", 2, 1, 2 * SEG_US)
    # Segment 1 of "a" has no sync estimate yet: the summary reports the latest one there is.
    assert (a.av_offset_ms, a.drift_ppm) == (0.0, -3.0)
    assert (b.rows, b.last_segment_index, b.av_offset_ms) == (3, 2, 1.0)
    assert b.sync_confidence == pytest.approx(0.9)


def test_schema_mismatch_is_a_typed_error(cfg, tmp_path):
    SegmentStore(cfg).write([make_row("s", 0, cfg)])
    other = StoreConfig(db_dir=cfg.db_dir, **{**DIMS, "audio_emb_dim": 16})
    with pytest.raises(SchemaMismatchError, match="audio_emb") as ei:
        SegmentStore(other)
    assert isinstance(ei.value, StoreError) and isinstance(ei.value, OmniAlignError)
    assert str(cfg.db_dir) in str(ei.value)
    assert pickle.loads(pickle.dumps(ei.value)).reason == ei.value.reason
    # A second table in the same database with other dims is fine.
    SegmentStore(StoreConfig(db_dir=cfg.db_dir, table="other", **DIMS))


@pytest.mark.parametrize("field,value,match", [
    ("audio_codes", np.zeros((5, 4), np.int64), r"audio_codes: must be \[M, 3\]"),
    ("audio_t_us", np.zeros(2, np.int64), "audio_t_us: must have shape"),
    ("video_codes", np.full((4, 2), 40_000), "fit int16"),
    ("text_emb", np.zeros(5, np.float32), r"text_emb: must have shape \(4,\)"),
    ("audio_emb", np.full(8, np.nan, np.float32), "NaN"),
    ("t_end_us", 0, "must be > t_start_us"),
    ("keyframe_t_us", np.zeros(3, np.int64), "one time per thumbnail"),
    ("sync_confidence", 1.5, r"\[0, 1\]"),
])
def test_invalid_rows_are_rejected_before_writing(store, cfg, field, value, match):
    bad = make_row("s", 1, cfg, **{field: value})
    with pytest.raises(InvalidInputError, match=match) as ei:
        store.write([make_row("s", 0, cfg), bad])
    assert ei.value.input.startswith("s#1.")
    assert store.count() == 0  # the whole batch is refused, nothing half-written


def test_fts_index_created_once_and_new_rows_found(store, cfg):
    store.write([make_row("s", i, cfg, transcript=None) for i in range(3)])
    assert store.ensure_indexes().created == ()  # no transcript yet: nothing to index
    store.write([make_row("s", 3, cfg, transcript="the aurora over the fjord")])
    report = store.ensure_indexes()
    assert report.created == ("transcript",) and "transcript" in report.indexed_columns
    store.write([make_row("s", 4, cfg, transcript="a walrus on the ice floe")])
    assert store.unindexed_rows()["transcript"] == 1

    def fts(text):
        res = (store.table.search(text, query_type="fts", fts_columns="transcript")
               .select(["segment_index", "_score"]).to_arrow())
        return res["segment_index"].to_pylist()

    # Found before the index is refreshed (LanceDB scans unindexed rows) ...
    assert fts("walrus") == [4]
    # One waiting row is below the policy's fold threshold: left to the exact scan ...
    assert store.ensure_indexes().optimized is False
    # ... until an ingest's end folds everything in.
    report = store.ensure_indexes(fold_all=True)
    assert report.optimized and report.created == ()
    # ... and after, from the index itself.
    assert store.unindexed_rows()["transcript"] == 0
    assert fts("walrus") == [4] and fts("fjord") == [3]
    assert store.ensure_indexes().optimized is False  # up to date: nothing to do


def test_vector_index_only_above_threshold_and_new_rows_found(tmp_path):
    cfg = StoreConfig(db_dir=tmp_path / "db", vector_index_min_rows=300, **DIMS)
    store = SegmentStore(cfg)
    store.write([make_row("s", i, cfg, video_emb=None, transcript=None) for i in range(299)])
    assert store.ensure_indexes().created == ()
    store.write([make_row("s", 299, cfg, video_emb=None, transcript=None)])
    report = store.ensure_indexes()
    # audio_emb and text_emb reach 300 vectors; video_emb is all null and stays unindexed.
    assert set(report.created) == {"audio_emb", "text_emb", "stream_id", "t_start_us", "t_end_us"}
    kinds = {c.columns[0]: c.index_type for c in store.table.list_indices()}
    assert kinds == {"audio_emb": "IvfSq", "text_emb": "IvfSq", "stream_id": "Bitmap",
                     "t_start_us": "BTree", "t_end_us": "BTree"}

    late = make_row("s", 300, cfg, video_emb=None, transcript=None)
    store.write([late])

    def nearest(vec):
        res = (store.table.search(vec, vector_column_name="audio_emb").distance_type("cosine")
               .select(["segment_index", "_distance"]).limit(1).to_arrow().to_pylist())
        return res[0]["segment_index"]

    assert nearest(late.audio_emb) == 300
    assert store.ensure_indexes(fold_all=True).optimized
    assert set(store.unindexed_rows().values()) == {0}
    assert nearest(late.audio_emb) == 300
    assert nearest(make_row("s", 17, cfg).audio_emb) == 17


def test_a_v3_table_gains_the_audio_encoder_column_in_place(cfg):
    import lancedb

    from engine.store.schema import ADDED_COLUMNS, STORE_SCHEMA_VERSION

    # A table as v3 wrote it: every column but the ones added since, version 3 in its metadata.
    full = segment_schema(cfg)
    v3 = pa.schema([f for f in full if f.name not in ADDED_COLUMNS],
                   metadata={**full.metadata, b"omnialign.store_schema_version": b"3"})
    rows = [make_row("old", i, cfg) for i in range(3)]
    data = SegmentRow.to_arrow(rows, full).drop_columns(list(ADDED_COLUMNS)).cast(v3)
    lancedb.connect(str(cfg.db_dir)).create_table(cfg.table, data=data, schema=v3, on_bad_vectors="null")

    store = SegmentStore(cfg)
    assert store.table.schema.names == full.names
    assert store.table.schema.metadata[b"omnialign.store_schema_version"] == STORE_SCHEMA_VERSION.encode()
    for r in rows:  # the old rows are all there, the new column null
        got = store.get(r.stream_id, r.segment_index)
        assert got.audio_enc_emb is None and got.transcript == r.transcript
        np.testing.assert_array_equal(got.audio_codes, r.audio_codes)
    new = make_row("new", 0, cfg, audio_enc_emb=np.linspace(0, 1, cfg.audio_enc_emb_dim).astype(np.float32))
    assert store.write([new]).inserted == 1
    np.testing.assert_array_equal(store.get("new", 0).audio_enc_emb, new.audio_enc_emb)
    assert SegmentStore.open(cfg.db_dir).table.count_rows() == 4


def test_a_table_of_another_shape_is_not_migrated(cfg):
    import lancedb

    full = segment_schema(cfg)
    old = pa.schema([f for f in full if f.name not in ("words", "audio_enc_emb")])  # a v2 table
    lancedb.connect(str(cfg.db_dir)).create_table(cfg.table, schema=old)
    with pytest.raises(SchemaMismatchError, match="missing column words"):
        SegmentStore(cfg)
