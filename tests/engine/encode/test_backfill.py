"""Filling image_emb of stored rows from their keyframes, without re-ingesting."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from benchmarks.data.pictures import skimage_pictures
from engine.encode.backfill import backfill_image_emb
from engine.encode.registry import build_image_encoder
from engine.store.schema import SegmentRow, StoreConfig
from engine.store.table import SegmentStore


def _jpeg(path) -> bytes:
    img = Image.open(path).convert("RGB")
    img.thumbnail((160, 160))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


@pytest.fixture(scope="module")
def encoder():
    return build_image_encoder("efficientnet-lite0")


def test_backfill_fills_missing_rows_once_records_the_encoder_and_force_redoes_all(tmp_path, encoder):
    pics = skimage_pictures(log=lambda *_: None)
    store = SegmentStore(StoreConfig(db_dir=tmp_path / "db"))
    rows = [SegmentRow("pics", i, i * 40_000, (i + 1) * 40_000, keyframe_t_us=np.array([i * 40_000]),
                       keyframe_jpeg=[_jpeg(pics[n])]) for i, n in enumerate(("motorcycle_left", "motorcycle_right", "coffee"))]
    rows.append(SegmentRow("talk", 0, 0, 2_000_000))  # audio only: nothing to embed
    store.write(rows)
    assert "image_emb" not in store.encoders()

    res = backfill_image_emb(store, encoder, batch_rows=2)
    assert (res.updated, res.without_keyframes) == (3, 1)
    assert store.encoders()["image_emb"] == f"efficientnet-lite0@{encoder.weights_hash}"
    got = {r.segment_index: r for r in store.rows_between("pics", 0, 1 << 62)}
    assert len(got) == 3 and all(r.image_emb is not None and r.image_emb.shape == (1280,) for r in got.values())
    assert store.get("talk", 0).image_emb is None
    # the two views of the motorcycle are each other's nearest neighbour
    e = {i: got[i].image_emb for i in got}
    assert float(e[0] @ e[1]) > float(e[0] @ e[2])
    # nothing else changed, and a second run has nothing to do
    assert [bytes(b) for b in got[0].keyframe_jpeg] == rows[0].keyframe_jpeg
    assert backfill_image_emb(store, encoder).updated == 0
    assert backfill_image_emb(store, encoder, force=True).updated == 3
    assert store.table.count_rows() == 4


def test_an_encoder_of_another_width_is_refused(tmp_path, encoder):
    from engine.errors import InvalidInputError

    store = SegmentStore(StoreConfig(db_dir=tmp_path / "db", image_emb_dim=512))
    with pytest.raises(InvalidInputError, match="1280"):
        backfill_image_emb(store, encoder)


def test_audio_enc_emb_is_backfilled_from_the_sources_audio_as_ingest_made_it(tmp_path):
    from benchmarks.data.speech import compose_program, speech_set, write_audio
    from engine.asr.config import AsrConfig
    from engine.encode.audio import build_audio_encoder
    from engine.encode.backfill import backfill_audio_enc_emb
    from engine.ingest.pipeline import PipelineConfig, run_local
    from engine.media.decode import MediaConfig, iter_segments
    from engine.tokenize.tokenizer import Tokenizer, TokenizerConfig

    audio, _ = compose_program(speech_set(log=lambda *_: None)[1:3], [1.0, 1.0])
    path = str(write_audio(tmp_path / "talk.m4a", audio))
    cfg = TokenizerConfig(audio_quantizers=2, audio_codebook_size=16, video_quantizers=2, video_codebook_size=16)
    Tokenizer.fit(list(iter_segments(path, MediaConfig())), cfg).save(tmp_path / "cb")
    # Ingested with ASR (and its audio embedding) and without: the backfill makes the same vectors.
    with_emb = tmp_path / "with"
    (res_with,) = run_local([path], PipelineConfig(db_dir=str(with_emb), codebooks_dir=str(tmp_path / "cb"), image_encoder=None))
    sid = res_with.stream_id
    assert res_with.error is None
    without = tmp_path / "without"
    run_local([path], PipelineConfig(db_dir=str(without), codebooks_dir=str(tmp_path / "cb"), image_encoder=None, asr=None))
    want = {r.segment_index: r.audio_enc_emb for r in SegmentStore.open(with_emb).rows_between(sid, 0, 1 << 62)}
    store = SegmentStore.open(without)
    assert "audio_enc_emb" not in store.encoders()
    assert all(r.audio_enc_emb is None for r in store.rows_between(sid, 0, 1 << 62))

    encoder = build_audio_encoder()
    res = backfill_audio_enc_emb(store, encoder, batch_rows=3)
    assert (res.updated, res.unavailable) == (len(want), 0) and len(want) >= 4
    assert store.encoders()["audio_enc_emb"] == f"whisper-tiny.en@{encoder.weights_hash}"
    for r in store.rows_between(sid, 0, 1 << 62):
        np.testing.assert_allclose(r.audio_enc_emb, want[r.segment_index], atol=1e-5)
    assert backfill_audio_enc_emb(store, encoder).updated == 0
