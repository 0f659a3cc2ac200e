"""A folder of pictures through the Ray pipeline: one stream per picture, searchable by image."""

from __future__ import annotations

import pytest

from actors.pipeline import run_ingest
from engine.ingest.pipeline import PipelineConfig
from engine.media.sources import default_stream_id
from engine.store.search import SearchQuery, search
from engine.store.table import SegmentStore

pytestmark = pytest.mark.slow

NAMES = ("motorcycle_left", "motorcycle_right", "chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field", "brick")


@pytest.fixture(scope="module")
def folder(tmp_path_factory, picture_folder):
    return picture_folder(tmp_path_factory.mktemp("pictures"), NAMES, video_size=(160, 120))


def test_each_picture_is_one_row_with_a_keyframe_and_an_encoder_embedding(ray_local, folder, tmp_path):
    config = PipelineConfig(db_dir=str(tmp_path / "db"), codebooks_dir=str(folder / "codebooks"), asr=None)
    summary = run_ingest([str(folder / "pics")], config)
    assert len(summary.streams) == len(NAMES) and not any(s.error for s in summary.streams)
    store = SegmentStore.open(tmp_path / "db")
    assert store.encoders()["image_emb"].startswith("efficientnet-lite0@")
    rows = {}
    for p in sorted((folder / "pics").iterdir()):
        (row,) = store.rows_between(default_stream_id(str(p)), 0, 1 << 62)
        assert len(row.keyframe_jpeg) == 1 and row.image_emb is not None and row.image_emb.shape == (1280,)
        rows[p.stem] = row
    # An image query finds the *other* photograph of the motorcycle first.
    hits = search(store, SearchQuery(vector=rows["motorcycle_left"].image_emb, vector_column="image_emb", k=3))
    others = [h.stream_id for h in hits if h.stream_id != rows["motorcycle_left"].stream_id]
    assert others[0] == rows["motorcycle_right"].stream_id


def test_the_writer_embeds_rows_with_the_shipped_adapter_and_text_finds_unseen_photographs(ray_local, folder, tmp_path):
    # The shipped image adapter was trained on clip-art drawings only: these photographs are new to it.
    from engine.store.anchors import anchor_count, anchor_search
    from engine.store.text_embed import get_text_embedder
    from omnialign.demo import SHIPPED_ADAPTERS

    config = PipelineConfig(db_dir=str(tmp_path / "db"), codebooks_dir=str(folder / "codebooks"), asr=None,
                            anchor_adapters=(str(SHIPPED_ADAPTERS / "image"),))
    summary = run_ingest([str(folder / "pics")], config)
    assert not any(s.error for s in summary.streams)
    assert anchor_count(tmp_path / "db", "image") == len(NAMES)
    sid = {p.stem: default_stream_id(str(p)) for p in (folder / "pics").iterdir()}
    for text, want in (("a cat", {"chelsea"}), ("a motorcycle", {"motorcycle_left", "motorcycle_right"})):
        (hit,) = anchor_search(tmp_path / "db", get_text_embedder().embed([text])[0], ("image",), k=1)
        assert hit.stream_id in {sid[w] for w in want}, (text, hit)
