"""The tokenizer UDF on a real Ray Data actor pool equals the engine tokenizer."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from actors.tokenizer import TokenizeSegments, tokenizer_resources
from engine.tokenize.features import RegionConfig
from engine.media.decode import MediaConfig, iter_segments
from engine.ingest.records import SegmentRecord, pack_records, unpack_records
from engine.media.synth import SynthSpec
from engine.tokenize.tokenizer import Tokenizer, TokenizerConfig

pytestmark = pytest.mark.slow

SMALL = TokenizerConfig(
    audio_quantizers=2, audio_codebook_size=16, video_quantizers=2, video_codebook_size=16,
    region=RegionConfig(resize_height_px=32, resize_width_px=48, patch_px=16, dim=8), max_fit_vectors=5_000,
)


def test_actor_pool_tokenizes_like_the_engine(ray_local, clip_factory, tmp_path):
    import ray

    truth = clip_factory(SynthSpec(duration_s=5.0, seed=41), "actor_tok.mp4")
    segs = list(iter_segments(truth.path, MediaConfig(video_width=96, video_height=64)))
    tok = Tokenizer.fit(segs, SMALL)
    folder = str(tok.save(tmp_path / "cb"))
    bad = replace(segs[1], audio=np.full_like(segs[1].audio, np.nan))  # one broken segment
    records = [SegmentRecord(s, truth.path) for s in (segs[0], bad, *segs[2:])]
    ds = ray.data.from_arrow([pack_records([r]) for r in records]).map_batches(
        TokenizeSegments, fn_constructor_kwargs={"codebooks_dir": folder}, batch_size=1,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=2), **tokenizer_resources(num_cpus=0.5),
    )
    rows = sorted(unpack_records(_table(ds)),
                  key=lambda r: r.segment_index)
    assert [r.segment_index for r in rows] == list(range(len(segs)))
    # raw media dropped: what travels on is a small fraction of the decoded segments
    in_bytes = sum(len(b) for b in pack_records(records).column("records").to_pylist())
    out_bytes = sum(len(b) for b in pack_records(rows).column("records").to_pylist())
    assert out_bytes < in_bytes / 10, (out_bytes, in_bytes)
    assert rows[1].error.startswith("InvalidInputError") and rows[1].audio_codes.size == 0
    for seg, row in zip(segs, rows):
        if seg.index == 1:
            continue
        assert row.error is None and row.codebook_version == tok.codebook_version
        ref = tok.encode_segment(seg)
        np.testing.assert_array_equal(row.audio_codes, ref.audio.codes.astype(np.int16))
        np.testing.assert_array_equal(row.video_codes, ref.video.codes.astype(np.int16))
        np.testing.assert_array_equal(row.video_t_us, ref.video.t_us)
        assert len(row.keyframe_jpeg) == min(4, len(ref.video.keyframes)) and bytes(row.keyframe_jpeg[0][:2]) == b"\xff\xd8"


def test_rows_carrying_segment_batches_tokenize_like_one_record_per_row(ray_local, clip_factory, tmp_path):
    """The ingest read task ships whatever one take() returned as one row of records; the UDF
    must give exactly the rows it gives for those records one per row."""
    import ray

    from engine.ingest.records import RECORDS_COLUMN

    truth = clip_factory(SynthSpec(duration_s=5.0, seed=42), "batch_tok.mp4")
    segs = list(iter_segments(truth.path, MediaConfig(video_width=96, video_height=64)))
    folder = str(Tokenizer.fit(segs, SMALL).save(tmp_path / "cb"))
    records = [SegmentRecord(s, truth.path) for s in segs]
    kwargs = {"fn_constructor_kwargs": {"codebooks_dir": folder}, "batch_size": 1,
              "compute": ray.data.ActorPoolStrategy(size=1), **tokenizer_resources(num_cpus=0.5)}
    single = unpack_records(_table(ray.data.from_arrow([pack_records([r]) for r in records]).map_batches(TokenizeSegments, **kwargs)))
    block = pack_records(records[:2])  # two batches: [0, 1] and [2, ...]
    rest = pack_records(records[2:])
    assert block.num_rows == rest.num_rows == 1 and block.column_names == [RECORDS_COLUMN]  # one row per batch
    out = ray.data.from_arrow([block, rest]).map_batches(TokenizeSegments, **kwargs)
    assert out.count() == 2  # one output row per input batch
    batched = unpack_records(_table(out))
    key = lambda r: r.segment_index  # noqa: E731
    assert [key(r) for r in sorted(batched, key=key)] == list(range(len(segs)))
    for a, b in zip(sorted(single, key=key), sorted(batched, key=key)):
        for col in ("audio_codes", "video_codes", "video_t_us", "audio_emb", "video_emb"):
            np.testing.assert_array_equal(getattr(a, col), getattr(b, col))
        assert a.error is b.error is None


def _table(ds):
    import pyarrow as pa
    import ray

    return pa.concat_tables([ray.get(ref) for ref in ds.to_arrow_refs()])
