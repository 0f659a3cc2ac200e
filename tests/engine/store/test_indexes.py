"""The index policy on real LanceDB tables: plans recorded and shared, appended rows searchable
before they are folded in, folding on the threshold, quality checks and rebuilds."""

import fcntl
import json
import threading

import numpy as np
import pytest

from engine.store.index_policy import IndexPolicy
from engine.store.index_quality import ExactAnswer, exact_neighbours, measure_recall, recall_with
from engine.store.indexes import INDEX_LOCK_FILE, META_PREFIX, index_records
from engine.store.search import SearchQuery, search
from engine.store.table import SegmentRow, SegmentStore, StoreConfig

DIM = 16
SEG_US = 2_000_000


def rows(vectors: np.ndarray, start: int = 0, stream: str = "s") -> list[SegmentRow]:
    return [SegmentRow(stream_id=stream, segment_index=start + i, t_start_us=(start + i) * SEG_US,
                       t_end_us=(start + i + 1) * SEG_US, audio_emb=v) for i, v in enumerate(vectors)]


def make_store(tmp_path, **policy) -> SegmentStore:
    return SegmentStore(StoreConfig(db_dir=tmp_path / "db", audio_emb_dim=DIM, vector_index_min_rows=256,
                                    index_policy=IndexPolicy(**policy)))


def nearest(store, vec, k=1, **filters):
    return [h.segment_index for h in search(store, SearchQuery(vector=vec, vector_column="audio_emb", k=k, **filters))]


def test_plan_is_recorded_and_read_by_another_handle(tmp_path):
    store = make_store(tmp_path)
    store.write(rows(np.random.default_rng(0).standard_normal((400, DIM)).astype(np.float32)))
    assert "audio_emb" in store.ensure_indexes().created
    rec = index_records(store)["audio_emb"]
    assert rec["index_type"] == "IVF_SQ" and rec["num_partitions"] == 20 and rec["rows_at_build"] == 400
    other = SegmentStore.open(tmp_path / "db")
    assert other.plans.get(other, "audio_emb").num_partitions == 20


def test_appended_rows_are_found_before_and_after_folding(tmp_path):
    store = make_store(tmp_path, fold_unindexed_rows=50)
    rng = np.random.default_rng(1)
    store.write(rows(rng.standard_normal((300, DIM)).astype(np.float32)))
    store.ensure_indexes()
    late = rng.standard_normal((49, DIM)).astype(np.float32)
    store.write(rows(late, start=300))
    # Searchable at once: the unindexed tail is scanned exactly beside the index.
    assert [nearest(store, v)[0] for v in late[:5]] == [300, 301, 302, 303, 304]
    report = store.ensure_indexes()
    assert not report.optimized and store.unindexed_rows()["audio_emb"] == 49  # below the threshold
    store.write(rows(rng.standard_normal((1, DIM)).astype(np.float32), start=349))
    assert store.ensure_indexes().optimized and store.unindexed_rows()["audio_emb"] == 0
    assert [nearest(store, v)[0] for v in late[:5]] == [300, 301, 302, 303, 304]


@pytest.mark.parametrize("through_index", [False, True])
def test_rare_filter_returns_k_hits_from_the_index(tmp_path, monkeypatch, through_index):
    if through_index:  # no exact shortcut for rare filters: the index's own probing must find k
        monkeypatch.setattr("engine.store.search.exact_filter_max_rows", lambda plan, k: 0)
    store = make_store(tmp_path)
    rng = np.random.default_rng(2)
    for s in range(40):  # 40 streams x 12 segments; a query for one stream matches 12 rows
        store.write(rows(rng.standard_normal((12, DIM)).astype(np.float32), stream=f"cam{s:02d}"))
    store.ensure_indexes()
    q = rng.standard_normal(DIM).astype(np.float32)
    hits = search(store, SearchQuery(vector=q, vector_column="audio_emb", k=10, stream_id="cam07"))
    assert len(hits) == 10 and {h.stream_id for h in hits} == {"cam07"}
    window = search(store, SearchQuery(vector=q, vector_column="audio_emb", k=10, from_us=4 * SEG_US,
                                       to_us=6 * SEG_US))
    assert len(window) == 10 and all(h.segment_index in (4, 5) for h in window)
    # A k larger than the plan's probes hold: more partitions are probed until k are found.
    assert len(search(store, SearchQuery(vector=q, vector_column="audio_emb", k=300))) == 300


def test_drifted_appends_trigger_a_rebuild_that_restores_recall(tmp_path):
    """The 8-bit quantiser's range is learned at build time: rows appended far outside it are
    clipped, which the sampled recall check sees, and the rebuild retrains on all rows."""
    store = make_store(tmp_path, quality_sample=16, rebuild_min_recall=0.9)
    rng = np.random.default_rng(3)
    store.write(rows(np.abs(rng.standard_normal((300, DIM))).astype(np.float32)))  # positive orthant
    store.ensure_indexes()
    store.write(rows(-np.abs(rng.standard_normal((300, DIM))).astype(np.float32), start=300))
    report = store.ensure_indexes(fold_all=True)
    assert report.rebuilt == ("audio_emb",) and report.recall["audio_emb"] < 0.9
    rec = index_records(store)["audio_emb"]
    assert rec["rows_at_build"] == 600
    plan = store.plans.get(store, "audio_emb")
    assert measure_recall(store, "audio_emb", plan, 16, seed=1) >= 0.9


def partitions(store) -> list[int]:
    stats = store.table.to_lance().stats.index_stats("audio_emb_idx")
    return [seg["num_partitions"] for seg in stats["segments"]]


def test_many_small_writes_are_compacted_and_rows_kept(tmp_path):
    store = make_store(tmp_path, compact_min_fragments=4)
    rng = np.random.default_rng(4)
    vecs = rng.standard_normal((300, DIM)).astype(np.float32)
    for s in range(0, 300, 100):
        store.write(rows(vecs[s:s + 100], start=s))
    assert not store.ensure_indexes().compacted
    assert len(store.table.to_lance().get_fragments()) == 3  # below the threshold: left alone
    before = partitions(store)
    store.write(rows(vecs[:1] + 1.0, start=300))
    assert len(store.table.to_lance().get_fragments()) == 4
    report = store.ensure_indexes()
    assert report.compacted and len(store.table.to_lance().get_fragments()) < 4
    # The index was remapped onto the merged files, not rebuilt or re-partitioned; the new
    # row (not in the index: one row is below the fold threshold) is found by the exact scan.
    assert partitions(store) == before == [store.plans.get(store, "audio_emb").num_partitions]
    assert store.count() == 301 and store.unindexed_rows()["audio_emb"] == 1
    assert nearest(store, vecs[123])[0] == 123 and nearest(store, vecs[0] + 1.0)[0] == 300


def test_folds_add_delta_segments_that_are_merged_at_the_cap(tmp_path):
    # No rebuilds here (a rebuild also leaves one segment): this test is about the merges.
    store = make_store(tmp_path, fold_unindexed_rows=10, max_index_segments=3, rebuild_min_recall=0.0)
    rng = np.random.default_rng(5)
    vecs = rng.standard_normal((340, DIM)).astype(np.float32)
    store.write(rows(vecs[:300]))
    store.ensure_indexes()

    def segments():
        return next(c.num_segments for c in store.table.list_indices() if c.columns[0] == "audio_emb")

    seen = []
    for s in range(300, 340, 10):
        store.write(rows(vecs[s:s + 10], start=s))
        assert store.ensure_indexes().optimized
        seen.append(segments())
    assert seen[:2] == [2, 3] and max(seen) <= 3 and seen[2] < 3  # the third fold merged them
    # Merged with the plan's partitions (Lance's default merge re-partitions the index).
    assert set(partitions(store)) == {store.plans.get(store, "audio_emb").num_partitions}
    assert store.unindexed_rows()["audio_emb"] == 0
    assert [nearest(store, vecs[i])[0] for i in (5, 305, 335)] == [5, 305, 335]


def test_identical_vectors_count_as_found_and_are_not_rebuilt(tmp_path):
    """Repeated embeddings (silent audio, black frames) tie: the index and the exact scan may
    keep different rows among equals, which is not a recall loss."""
    store = make_store(tmp_path)
    rng = np.random.default_rng(6)
    # 15 copies each: more than k, so which 10 of them a search keeps is arbitrary.
    vecs = np.repeat(rng.standard_normal((20, DIM)).astype(np.float32), 15, axis=0)
    store.write(rows(vecs))
    store.ensure_indexes()
    plan = store.plans.get(store, "audio_emb")
    (exact,) = exact_neighbours(store.table, "audio_emb", vecs[:1])
    assert exact.row_ids <= set(range(15)) and exact.kth_distance < 1e-5
    # The exact scan could as well have kept the five copies it left out.
    other = ExactAnswer(frozenset(set(range(15)) - set(exact.row_ids)) | set(sorted(exact.row_ids)[:5]),
                        exact.kth_distance)
    assert recall_with(store.table, "audio_emb", plan, vecs[:1], [other]) == 1.0
    assert measure_recall(store, "audio_emb", plan, 16) >= 0.98
    store.write(rows(vecs[:20], start=300))
    assert store.ensure_indexes(fold_all=True).rebuilt == ()


def test_a_plan_recorded_by_another_process_is_used_at_its_version(tmp_path):
    store = make_store(tmp_path)
    store.write(rows(np.random.default_rng(7).standard_normal((400, DIM)).astype(np.float32)))
    store.ensure_indexes()
    reader = SegmentStore.open(tmp_path / "db")
    assert reader.plans.get(reader, "audio_emb").nprobes == store.plans.get(store, "audio_emb").nprobes
    rec = index_records(store)["audio_emb"]
    store.set_metadata({META_PREFIX + "audio_emb": json.dumps({**rec, "nprobes": rec["nprobes"] + 3})})
    assert reader.plans.get(reader, "audio_emb").nprobes == rec["nprobes"] + 3  # no waiting period


def test_index_maintenance_waits_for_another_process(tmp_path):
    store = make_store(tmp_path)
    store.write(rows(np.random.default_rng(8).standard_normal((300, DIM)).astype(np.float32)))
    done = threading.Event()
    with open(tmp_path / "db" / INDEX_LOCK_FILE, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # as another ingest process holding it would
        worker = threading.Thread(target=lambda: (store.ensure_indexes(), done.set()))
        worker.start()
        assert not done.wait(3.0) and "audio_emb" not in store.unindexed_rows()
        fcntl.flock(fh, fcntl.LOCK_UN)
    worker.join(60)
    assert done.is_set() and store.unindexed_rows()["audio_emb"] == 0
