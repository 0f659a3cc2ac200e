"""Typed stage records: one spelling of "none", lossless packing, one conversion to a store row."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InvalidInputError
from engine.ingest.records import (
    SYNC_FALLBACK,
    SYNC_MEASURED,
    SYNC_NONE,
    Alignment,
    TokenRecord,
    pack_records,
    record_to_row,
    unpack_records,
)
from engine.store.schema import SegmentRow, StoreConfig, segment_schema


def _token(**kw) -> TokenRecord:
    base = dict(stream_id="cam", segment_index=3, t_start_us=6_000_000, t_end_us=8_000_000, source_uri="/x.mp4",
                codebook_version="cb1", audio_codes=np.array([[1, 2]], np.int16), audio_t_us=np.array([6_000_000]),
                audio_dur_us=np.array([40_000]), video_codes=np.zeros((0, 2), np.int16),
                audio_emb=np.ones(4, np.float32))
    return TokenRecord(**{**base, **kw})


def test_packing_keeps_none_dtypes_and_shapes():
    recs = [_token(), _token(segment_index=4, transcript=None, error="InvalidInputError: bad")]
    table = pack_records(recs)
    assert table.num_rows == 1
    back = unpack_records(table)
    assert [r.segment_index for r in back] == [3, 4]
    assert back[1].transcript is None and back[1].text_emb is None and back[0].error is None
    assert back[0].audio_codes.dtype == np.int16 and back[0].audio_codes.shape == (1, 2)
    # a map_batches batch (dict of numpy columns) unpacks the same way
    assert [r.segment_index for r in unpack_records({"records": np.array(table.column("records").to_pylist(), object)})] == [3, 4]


def test_alignment_states_are_explicit():
    none = Alignment.from_estimate(None)
    assert none.status == SYNC_NONE and none.offset_ms is None and none.warp.shape == (0, 2)
    # an estimate without evidence (the tracker before its first event) is none, not "measured 0"
    from engine.align.sync import no_estimate

    assert Alignment.from_estimate(no_estimate(0.0, 2.0)) == none
    assert none.as_fallback() is none  # no estimate stays none, never a fake fallback
    measured = Alignment(SYNC_MEASURED, 12.5, 3.0, 0.9, np.array([[0.0, 0.0125], [2.0, 2.0125]]))
    assert measured.as_fallback().status == SYNC_FALLBACK and measured.as_fallback().offset_ms == 12.5
    with pytest.raises(InvalidInputError, match="status"):
        Alignment("guess", 1.0)
    with pytest.raises(InvalidInputError, match="offset_ms"):
        Alignment(SYNC_NONE, 1.0)
    with pytest.raises(InvalidInputError, match="offset_ms"):
        Alignment(SYNC_MEASURED)


def test_record_to_row_is_the_one_conversion_and_the_store_accepts_it():
    align = Alignment(SYNC_FALLBACK, -40.0, 0.0, 0.5, np.array([[0.0, -0.04], [8.0, 7.96]]))
    row = record_to_row(_token(transcript="hello"), align)
    assert isinstance(row, SegmentRow) and row.key == ("cam", 3)
    assert (row.av_offset_ms, row.sync_status, row.transcript) == (-40.0, "fallback", "hello")
    schema = segment_schema(StoreConfig(db_dir="/unused", audio_emb_dim=4, video_emb_dim=4, text_emb_dim=4,
                                        audio_num_quantizers=2, video_num_quantizers=2))
    table = SegmentRow.to_arrow([row, record_to_row(_token(segment_index=4), Alignment())], schema)
    assert table.column("sync_status").to_pylist() == ["fallback", "none"]
    assert table.column("av_offset_ms").to_pylist() == [-40.0, None]
    back = SegmentRow.from_arrow(table)[0]
    assert back.sync_status == "fallback" and back.video_codes.shape == (0, 2)
    bad = record_to_row(_token(), align)
    bad.sync_status = "maybe"
    with pytest.raises(InvalidInputError, match="sync_status"):
        SegmentRow.to_arrow([bad], schema)
