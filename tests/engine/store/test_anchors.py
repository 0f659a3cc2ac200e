"""The anchor space of a stored table: rows embedded by a trained adapter, searched from text
and from a picture. The adapter here is trained on these same pictures (the mechanics of the
path, end to end on real photographs and real encoders); generalisation to unseen pictures is
what ``benchmarks/retrieval.py`` measures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.data.pictures import skimage_pictures
from engine.errors import InvalidInputError
from engine.ingest.pipeline import PipelineConfig, run_local
from engine.media.sources import default_stream_id
from engine.store.anchors import anchor_search, anchored_modalities, embed_store, install_adapter
from engine.store.table import SegmentStore
from engine.train.adapter import save_adapter
from engine.train.builders import PairItem, build_pairs
from engine.train.config import HeadConfig, Stage1Config
from engine.train.loop import Stage1State, shuffled_batches, train_epoch
from omnialign.cli import main

TITLES = {"chelsea": "a cat", "coffee": "a cup of coffee", "rocket": "a rocket launch", "astronaut": "an astronaut",
          "motorcycle_left": "a motorcycle", "brick": "a brick wall"}


@pytest.fixture(scope="module")
def db(tmp_path_factory, picture_folder):
    root = picture_folder(tmp_path_factory.mktemp("anchors"), TITLES)
    pics = skimage_pictures(log=lambda *_: None)
    run_local([str(root / "pics")], PipelineConfig(db_dir=str(root / "db"), codebooks_dir=str(root / "codebooks"),
                                                   asr=None))
    pairs, _ = build_pairs([PairItem(str(pics[n]), t) for n, t in TITLES.items()], "image")
    s1 = Stage1Config(epochs=60, batch_size=8)
    state = Stage1State.create(HeadConfig("image", pairs.encoder, 1280, hidden_dim=64, dropout=0.0), s1)
    for e in range(s1.epochs):
        train_epoch(state, shuffled_batches(pairs.features, pairs.anchors, None, 8, 0, e))
    save_adapter(root / "adapter", state.head.eval())
    return root, {n: default_stream_id(str(root / "pics" / pics[n].name)) for n in TITLES}, pics


def test_text_and_picture_queries_find_rows_by_their_image_vectors(db, capsys):
    root, sid, pics = db
    assert main(["embed", "--db", str(root / "db"), "--adapter", str(root / "adapter")]) == 0
    assert "image: 6 rows embedded" in capsys.readouterr().out
    assert set(anchored_modalities(root / "db")) == {"image"}
    # Stored image_emb (normalised, ingest's decode) goes through the adapter trained on raw features.
    for name, text in (("chelsea", "a cat"), ("rocket", "a rocket launch")):
        assert main(["search", "--db", str(root / "db"), "--text", text, "--target", "image", "--json", "-k", "3"]) == 0
        hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert hits[0]["stream_id"] == sid[name] and hits[0]["matched"] == "image" and hits[0]["query"] == "text"
    assert main(["search", "--db", str(root / "db"), "--image", str(pics["coffee"]), "--target", "any", "--json"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert hits[0]["stream_id"] == sid["coffee"] and hits[0]["query"] == "image"
    # Embedding again replaces the vectors: still one per row.
    assert main(["embed", "--db", str(root / "db"), "--adapter", str(root / "adapter")]) == 0
    capsys.readouterr()
    assert len(anchor_search(root / "db", np.ones(384, np.float32), ("image",), k=50)) == 6


def test_targets_without_vectors_and_foreign_adapters_are_refused(db, tmp_path):
    root, _, _ = db
    with pytest.raises(InvalidInputError, match="no audio vectors"):
        anchor_search(root / "db", np.ones(384, np.float32), ("audio",))
    with pytest.raises(InvalidInputError, match="384"):
        anchor_search(root / "db", np.ones(3, np.float32), ("image",))
    from engine.train.heads import ProjectionHead

    save_adapter(tmp_path / "other", ProjectionHead(HeadConfig("image", "another-encoder@1", 1280)))
    with pytest.raises(InvalidInputError, match="another-encoder@1"):
        embed_store(SegmentStore.open(root / "db"), install_adapter(tmp_path / "copy", tmp_path / "other"))


def test_ingest_with_adapters_fills_the_anchor_space_as_rows_are_written(db, tmp_path):
    root, sid, _ = db
    config = PipelineConfig(db_dir=str(tmp_path / "db"), codebooks_dir=str(root / "codebooks"), asr=None,
                            anchor_adapters=(str(root / "adapter"),))
    results = run_local([str(root / "pics")], config)
    assert not any(r.error for r in results)
    assert anchored_modalities(tmp_path / "db") == {"image": install_adapter(tmp_path / "x", root / "adapter").name}
    # The vectors ingest wrote are the embed job's over the same stored rows (one code path).
    q = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    at_ingest = anchor_search(tmp_path / "db", q, ("image",), k=50)
    embed_store(SegmentStore.open(tmp_path / "db"), install_adapter(tmp_path / "db", root / "adapter"))
    after = anchor_search(tmp_path / "db", q, ("image",), k=50)
    assert len(at_ingest) == len(TITLES) and [(h.stream_id, h.segment_index) for h in at_ingest] == \
        [(h.stream_id, h.segment_index) for h in after]
    assert np.allclose([h.score for h in at_ingest], [h.score for h in after], atol=1e-5)
    # A re-run writes no row twice and no vector twice.
    run_local([str(root / "pics")], config)
    assert len(anchor_search(tmp_path / "db", q, ("image",), k=50)) == len(TITLES)


def test_an_adapter_that_does_not_fit_the_table_stops_ingest_before_any_row(db, tmp_path):
    from engine.train.heads import ProjectionHead

    root, _, _ = db
    save_adapter(tmp_path / "audio", ProjectionHead(HeadConfig("audio", "whisper-encoder:tiny.en@0", 384)))
    config = PipelineConfig(db_dir=str(tmp_path / "db"), codebooks_dir=str(root / "codebooks"), asr=None,
                            anchor_adapters=(str(tmp_path / "audio"),))
    with pytest.raises(InvalidInputError, match="audio_enc_emb"):  # this table has no audio encoder column
        run_local([str(root / "pics")], config)
    assert SegmentStore.open(tmp_path / "db").count() == 0 and anchored_modalities(tmp_path / "db") == {}
    with pytest.raises(InvalidInputError, match="anchor_adapters"):
        PipelineConfig(db_dir="x", codebooks_dir="y", anchor_adapters=["a"])
