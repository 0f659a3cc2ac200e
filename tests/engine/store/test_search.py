import numpy as np
import pytest

from engine.store.search import (
    RETRIEVAL_BOTH,
    RETRIEVAL_FTS,
    RETRIEVAL_TIME,
    QueryError,
    SearchQuery,
    search,
)
from engine.store.table import SegmentStore, StoreConfig
from engine.store.text_embed import get_text_embedder
from tests.engine.store.test_table import SEG_US, make_row

SENTENCES = [
    "The chef slices fresh tomatoes and basil for the pasta sauce.",
    "A striker scores a late goal and the stadium erupts.",
    "Heavy rain floods the streets of the old town tonight.",
    "The orchestra tunes up before the symphony begins.",
    "Engineers inspect the cracked bridge with a drone.",
    "A toddler laughs while chasing bubbles in the park.",
    "The astronaut floats inside the space station module.",
    "Farmers harvest wheat before the storm arrives.",
    "The stock exchange closes lower after weak earnings reports.",
    "A cat knocks a glass of water off the kitchen table.",
]
# Stream "b" carries the same sentences in another order: b's segment j says SENTENCES[(j+3)%10].
SHIFT_B = 3
N = len(SENTENCES)
# Paraphrases SENTENCES[1] without sharing a keyword with it.
PARAPHRASE_1 = "a footballer finds the net in the dying minutes and fans go wild"


@pytest.fixture(scope="module")
def embedder():
    return get_text_embedder()


@pytest.fixture(scope="module")
def populated(tmp_path_factory, embedder):
    cfg = StoreConfig(db_dir=tmp_path_factory.mktemp("search") / "db", audio_emb_dim=8,
                      video_emb_dim=6, audio_num_quantizers=3, video_num_quantizers=2)
    store = SegmentStore(cfg)
    emb = embedder.embed(SENTENCES)
    rows = []
    for sid, shift in (("a", 0), ("b", SHIFT_B)):
        for j in range(N):
            s = (j + shift) % N
            rows.append(make_row(sid, j, cfg, seed=1 if sid == "b" else 0,
                                 transcript=SENTENCES[s], text_emb=emb[s]))
    # A segment with a transcript but no text embedding: only full-text search can find it.
    rows.append(make_row("c", 50, cfg, transcript="Telemetry checksum mismatch on relay seven.",
                         text_emb=None))
    assert store.write(rows).inserted == 2 * N + 1
    store.ensure_indexes()
    return store, rows


def _keys(hits):
    return [(h.stream_id, h.segment_index) for h in hits]


def test_text_query_finds_paraphrased_segment(populated, embedder):
    store, _ = populated
    hits = search(store, SearchQuery(text=PARAPHRASE_1, stream_id="a", k=3), embedder)
    assert hits[0].segment_index == 1 and hits[0].transcript == SENTENCES[1]
    # No keyword of the paraphrase occurs in the transcript: the semantic leg found it.
    assert hits[0].retrieval == "text_emb"
    assert len(hits) == 3 and hits[0].score > hits[1].score >= hits[2].score


def test_hybrid_fuses_semantic_and_keyword(populated, embedder):
    store, _ = populated
    hits = search(store, SearchQuery(text="drone bridge inspection", stream_id="a", k=5),
                  embedder)
    assert hits[0].segment_index == 4 and hits[0].retrieval == RETRIEVAL_BOTH
    # A row found by both lists outranks any row found by one.
    assert all(h.retrieval != RETRIEVAL_BOTH for h in hits[1:])
    assert hits[0].score == pytest.approx(2 / 61)  # rank 1 in both lists
    # A row without a text embedding is still found through the FTS leg.
    kw = search(store, SearchQuery(text="checksum of the telemetry", k=3), embedder)
    found = {(h.stream_id, h.segment_index): h for h in kw}
    assert found[("c", 50)].retrieval == RETRIEVAL_FTS
    assert found[("c", 50)].score == pytest.approx(1 / 61)  # rank 1 of the keyword list only
    assert sorted(h.retrieval for h in kw) == [RETRIEVAL_FTS, "text_emb", "text_emb"]


def test_stream_filter_is_a_prefilter(populated, embedder):
    store, _ = populated
    q = PARAPHRASE_1
    hits = search(store, SearchQuery(text=q, stream_id="b", k=N), embedder)
    assert {h.stream_id for h in hits} == {"b"} and len(hits) == N
    assert hits[0].segment_index == (1 - SHIFT_B) % N
    both = search(store, SearchQuery(text=q, k=2), embedder)
    assert set(_keys(both)) == {("a", 1), ("b", (1 - SHIFT_B) % N)}


def test_time_range_filter_selects_overlapping_segments(populated, embedder):
    store, _ = populated
    # [4.5 s-seg, 7 s-seg): overlaps segments 4, 5 and 6 of each stream, not 7.
    q = SearchQuery(text="a footballer finds the net", stream_id="a", from_us=4 * SEG_US + 1,
                    to_us=7 * SEG_US, k=10)
    hits = search(store, q, embedder)
    assert sorted(h.segment_index for h in hits) == [4, 5, 6]
    assert all(h.t_end_us > q.from_us and h.t_start_us < q.to_us for h in hits)


def test_vector_query_on_audio_and_video_embeddings(populated):
    store, rows = populated
    rng = np.random.default_rng(5)
    for target in (rows[3], rows[N + 7]):
        for column in ("audio_emb", "video_emb"):
            vec = getattr(target, column)
            noise = rng.standard_normal(vec.size) * np.linalg.norm(vec) / np.sqrt(vec.size)
            noisy = vec + 0.05 * noise
            hits = search(store, SearchQuery(vector=noisy, vector_column=column, k=4))
            assert (hits[0].stream_id, hits[0].segment_index) == target.key
            assert hits[0].retrieval == column and hits[0].score > 0.95
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # Restricted to the other stream, the target cannot be returned.
    hits = search(store, SearchQuery(vector=rows[3].audio_emb, vector_column="audio_emb",
                                     stream_id="b", k=N))
    assert len(hits) == N and all(h.stream_id == "b" for h in hits)


def test_time_query_orders_by_time_and_limits(populated):
    store, _ = populated
    hits = search(store, SearchQuery(stream_id="b", from_us=2 * SEG_US, k=3))
    assert [h.segment_index for h in hits] == [2, 3, 4]
    assert {h.retrieval for h in hits} == {RETRIEVAL_TIME}
    all_b = search(store, SearchQuery(stream_id="b", k=100))
    assert [h.segment_index for h in all_b] == list(range(N))
    cross = search(store, SearchQuery(from_us=0, to_us=SEG_US, k=10))
    assert _keys(cross) == [("a", 0), ("b", 0)]
    assert search(store, SearchQuery(stream_id="nobody's stream")) == []


@pytest.mark.parametrize("query,field", [
    (SearchQuery(), "query"),
    (SearchQuery(stream_id="a", k=0), "k"),
    (SearchQuery(stream_id="a", k=-3), "k"),
    (SearchQuery(vector=np.ones(7), vector_column="audio_emb"), "vector"),
    (SearchQuery(vector=np.ones(8), vector_column="audio_vec"), "vector_column"),
    (SearchQuery(vector=np.ones(8)), "vector_column"),
    (SearchQuery(vector=np.zeros(8), vector_column="audio_emb"), "vector"),
    (SearchQuery(vector_column="audio_emb", stream_id="a"), "vector_column"),
    (SearchQuery(text="x", vector=np.ones(8), vector_column="audio_emb"), "vector"),
    (SearchQuery(text="   "), "text"),
    (SearchQuery(stream_id="a", from_us=10, to_us=10), "to_us"),
    (SearchQuery(stream_id="a", from_us=1.5), "from_us"),
])
def test_bad_queries_raise_typed_errors(populated, query, field):
    store, _ = populated
    with pytest.raises(QueryError) as ei:
        search(store, query)
    assert ei.value.input == field
    assert isinstance(ei.value, ValueError)


def test_appended_rows_are_searchable_after_ensure_indexes(tmp_path, embedder):
    cfg = StoreConfig(db_dir=tmp_path / "db", audio_emb_dim=8, video_emb_dim=6,
                      audio_num_quantizers=3, video_num_quantizers=2, vector_index_min_rows=64)
    store = SegmentStore(cfg)
    filler = [f"Filler sentence number {i} about nothing in particular." for i in range(70)]
    emb = embedder.embed(filler)
    store.write([make_row("live", i, cfg, transcript=t, text_emb=e)
                 for i, (t, e) in enumerate(zip(filler, emb))])
    assert set(store.ensure_indexes().created) == {"transcript", "audio_emb", "video_emb",
                                                   "text_emb", "stream_id", "t_start_us", "t_end_us"}
    late = "A volcano erupts and lava reaches the coastal village."
    store.write([make_row("live", 70, cfg, transcript=late, text_emb=embedder.embed([late])[0])])
    assert store.ensure_indexes(fold_all=True).optimized
    assert all(n == 0 for n in store.unindexed_rows().values())
    hits = search(store, SearchQuery(text="molten rock from the volcano hits a town", k=3),
                  embedder)
    assert (hits[0].segment_index, hits[0].retrieval) == (70, RETRIEVAL_BOTH)
