"""Tiered compaction on real LanceDB tables: small files merged among themselves without
rewriting big ones, medium files merged towards the target size, rows kept."""

import numpy as np
import pytest

from engine.errors import InvalidInputError
from engine.store.compaction import compact_tiers
from engine.store.index_policy import IndexPolicy
from engine.store.table import SegmentRow, SegmentStore, StoreConfig

DIM = 8


def write(store: SegmentStore, start: int, n: int) -> None:
    vecs = np.random.default_rng(start).standard_normal((n, DIM)).astype(np.float32)
    store.write([SegmentRow(stream_id="s", segment_index=start + i, t_start_us=(start + i) * 1000,
                            t_end_us=(start + i + 1) * 1000, audio_emb=v) for i, v in enumerate(vecs)])


def sizes(store: SegmentStore) -> list[int]:
    return [f.metadata.physical_rows for f in store.table.to_lance().get_fragments()]


@pytest.fixture
def store(tmp_path):
    return SegmentStore(StoreConfig(db_dir=tmp_path / "db", audio_emb_dim=DIM))


POLICY = IndexPolicy(compact_min_fragments=3, compact_small_rows=100, compact_target_rows=1000)


def test_small_files_merge_without_rewriting_the_big_one(store):
    write(store, 0, 500)
    big = store.table.to_lance().get_fragments()[0].fragment_id
    write(store, 500, 10)
    write(store, 510, 10)
    assert not compact_tiers(store.table.to_lance(), POLICY).compacted  # two small: not due
    write(store, 520, 10)
    result = compact_tiers(store.table.to_lance(), POLICY)
    assert result.tier == "small" and result.fragments_removed == 3 and result.fragments_added == 1
    frags = store.table.to_lance().get_fragments()
    assert [f.fragment_id for f in frags][0] == big and sizes(store) == [500, 30]
    assert store.count() == 530
    assert sorted(store.table.to_arrow()["segment_index"].to_pylist()) == list(range(530))


def test_medium_files_merge_towards_the_target(store):
    for s in range(0, 600, 200):
        write(store, s, 200)
    write(store, 600, 2000)  # at or above the target: never rewritten
    result = compact_tiers(store.table.to_lance(), POLICY)
    assert result.tier == "medium" and result.fragments_removed == 3
    assert sorted(sizes(store)) == [600, 2000] and store.count() == 2600


def test_nothing_due_is_a_no_op(store):
    write(store, 0, 50)
    version = store.table.version
    assert compact_tiers(store.table.to_lance(), POLICY) == compact_tiers(store.table.to_lance(), POLICY)
    assert not compact_tiers(store.table.to_lance(), POLICY).compacted and store.table.version == version


def test_tier_bounds_are_validated():
    with pytest.raises(InvalidInputError, match="compact_target_rows"):
        IndexPolicy(compact_small_rows=1000, compact_target_rows=10)
