"""Speech recognition as a pipeline stage: real speech, no sidecar, through the Ray pipeline."""

from __future__ import annotations

import pytest

from actors.pipeline import run_ingest
from benchmarks.data.speech import compose_program, speech_set, write_audio
from engine.errors import ModelNotFoundError
from engine.ingest.pipeline import PipelineConfig
from engine.media.decode import MediaConfig, iter_segments
from engine.store.search import SearchQuery, search
from engine.store.table import SegmentStore
from engine.tokenize.tokenizer import Tokenizer, TokenizerConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """The five LibriVox sentences at known times in a 34 s audio-only file (no sidecar)."""
    root = tmp_path_factory.mktemp("asr")
    utts = speech_set(log=lambda *_: None)[:5]
    audio, placed = compose_program(utts, [1.5, 1.0, 2.0, 1.2, 1.0])
    path = write_audio(root / "reading.m4a", audio)
    cfg = TokenizerConfig(audio_quantizers=2, audio_codebook_size=32, video_quantizers=2, video_codebook_size=32)
    Tokenizer.fit(list(iter_segments(str(path), MediaConfig())), cfg).save(root / "codebooks")
    return {"path": str(path), "placed": placed, "codebooks": str(root / "codebooks")}


def test_an_audio_file_without_sidecar_becomes_words_and_a_searchable_transcript(ray_local, recording, tmp_path):
    config = PipelineConfig(db_dir=str(tmp_path / "db"), codebooks_dir=recording["codebooks"], writer_batch_rows=2)
    summary = run_ingest([recording["path"]], config)
    (s,) = summary.streams
    assert s.error is None and s.segments_written == 17
    assert summary.asr_model["name"] == "whisper:tiny.en" and summary.asr_model["compute_type"] == "int8"
    assert s.asr.calls >= 1 and 0.0 < s.asr.skipped_share < 0.6
    store = SegmentStore.open(tmp_path / "db")
    rows = sorted(store.rows_between(s.stream_id, 0, 10**12), key=lambda r: r.segment_index)
    words = [w for r in rows for w in r.words]
    # Every word is stored once, in the segment where it starts, inside its utterance's window.
    for r in rows:
        assert all(r.t_start_us <= w["t_start_us"] < r.t_end_us for w in r.words)
        assert (r.transcript is None) == (not r.words)
    for p in recording["placed"]:
        assert any(p.t_start_us - 150_000 <= w["t_start_us"] < p.t_end_us for w in words), p.text
    # The spoken phrase is found by a text query, in the segment where it was said.
    (dash,) = [w for w in words if w["text"].lower().startswith("dashwood")]
    hits = search(store, SearchQuery(text="John Dashwood", k=3))
    assert hits and any(h.t_start_us <= dash["t_start_us"] < h.t_end_us for h in hits[:2])


def test_no_asr_writes_no_words(ray_local, recording, tmp_path):
    config = PipelineConfig(db_dir=str(tmp_path / "db"), codebooks_dir=recording["codebooks"], asr=None)
    summary = run_ingest([recording["path"]], config)
    store = SegmentStore.open(tmp_path / "db")
    rows = store.rows_between(summary.streams[0].stream_id, 0, 10**12)
    assert len(rows) == 17 and not any(r.words or r.transcript or r.audio_enc_emb is not None for r in rows)
    assert "audio_enc_emb" not in store.encoders()


def test_a_missing_model_is_one_typed_error_naming_it(ray_local, recording, tmp_path):
    from engine.asr.config import AsrConfig

    config = PipelineConfig(db_dir=str(tmp_path / "db"), codebooks_dir=recording["codebooks"],
                            asr=AsrConfig(model_dir=str(tmp_path / "no-model")))
    with pytest.raises(ModelNotFoundError, match="no-model"):
        run_ingest([recording["path"]], config)


def test_each_segment_gets_the_speech_models_audio_embedding_and_an_audio_query_finds_its_sentence(
        ray_local, recording, tmp_path):
    import numpy as np

    from benchmarks.data.media_io import decode_audio
    from benchmarks.data.speech import RATE_HZ
    from engine.encode.audio import query_audio_embedding

    config = PipelineConfig(db_dir=str(tmp_path / "db"), codebooks_dir=recording["codebooks"], writer_batch_rows=4)
    (s,) = run_ingest([recording["path"]], config).streams
    store = SegmentStore.open(tmp_path / "db")
    rows = store.rows_between(s.stream_id, 0, 10**12)
    assert len(rows) == 17 and all(r.audio_enc_emb is not None and r.audio_enc_emb.shape == (384,) for r in rows)
    spec = store.encoders()["audio_enc_emb"]
    assert spec.startswith("whisper-tiny.en@")
    # A sentence's own file, re-encoded and quieter, finds a segment inside that sentence.
    utt, placed = speech_set(log=lambda *_: None)[3], recording["placed"][3]
    query = 0.5 * decode_audio(utt.path, RATE_HZ)[: 2 * RATE_HZ]
    hits = search(store, SearchQuery(vector=query_audio_embedding(spec, query.astype(np.float32)),
                                     vector_column="audio_enc_emb", k=3))
    assert hits and hits[0].t_start_us < placed.t_end_us and hits[0].t_end_us > placed.t_start_us, (hits[0], placed)
