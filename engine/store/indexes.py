"""The segment table's indexes: created once a column is big enough, fed appended rows on a
policy, measured on a sample, rebuilt only when measured quality falls below a bound.

LanceDB answers a query over rows appended after an index was built by scanning them exactly
beside the index (measured for FTS and vector indexes: new rows are found before any refresh),
so a new row is searchable the moment its write commits; folding it into the index (a delta
segment of the index) is a speed concern, never a correctness one. The policy itself (which
index, probes, fold and rebuild thresholds) is :mod:`engine.store.index_policy`.

Each vector index's plan and last quality check live in the table's schema metadata
(``omnialign.index.<column>``, JSON), so every process that opens the table (the writer, the
Serve replicas, the CLI) searches with the parameters the index was built for.
"""

from __future__ import annotations

import fcntl
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol

from engine.store.compaction import compact_tiers
from engine.store.index_policy import VectorIndexPlan, needs_fold, needs_quality_check, plan_vector_index
from engine.store.index_quality import tune_nprobes
from engine.store.schema import DISTANCE, EMBEDDING_COLUMNS, StoreConfig

#: Schema metadata key prefix of a vector index's plan and quality record.
META_PREFIX = "omnialign.index."
#: Scalar indexes that make filtered queries cheap at scale: a stream is a low-cardinality
#: label (a bitmap per stream), times are ranges (B-tree). Without them a filter is a full
#: scan of its columns before the vector search (trial at 1M rows, 10 probes: a one-stream
#: filter took 42 ms without them, 10 ms with them).
SCALAR_INDEXES = (("stream_id", "bitmap"), ("t_start_us", "btree"), ("t_end_us", "btree"))
#: Old table versions (and the files only they use) are deleted once this old, as LanceDB's
#: ``optimize()`` does by default; a reader still on an older version is unlikely.
KEEP_VERSIONS = timedelta(days=7)
#: Lock file (in the database directory) held while one process maintains the indexes.
INDEX_LOCK_FILE = ".omnialign-indexes.lock"


class SegmentStore(Protocol):
    """What this module needs of :class:`engine.store.table.SegmentStore` (a Protocol, so the
    table module can delegate here without an import cycle)."""

    config: StoreConfig
    table: Any
    plans: "PlanCache"

    def set_metadata(self, entries: dict[str, str]) -> None: ...

    def dataset(self) -> Any: ...


@dataclass(frozen=True)
class IndexReport:
    """What :func:`ensure_indexes` did.

    Attributes:
        created: Columns that got a new index in this call.
        optimized: Whether unindexed rows were folded into the existing indexes.
        indexed_columns: All columns indexed after the call.
        rebuilt: Vector columns whose index was rebuilt because measured recall fell below
            the policy's bound.
        recall: Vector column -> recall@10 measured in this call (only where a check was due).
        compacted: Whether data files were merged (:mod:`engine.store.compaction`).
    """

    created: tuple[str, ...]
    optimized: bool
    indexed_columns: tuple[str, ...]
    rebuilt: tuple[str, ...] = ()
    recall: dict[str, float] = field(default_factory=dict)
    compacted: bool = False


def index_records(store: SegmentStore) -> dict[str, dict]:
    """Vector column -> its index record (plan fields, ``rows_at_check``, ``recall_at_check``),
    read from the table's schema metadata."""
    return _records(store.table.schema.metadata)


def _records(meta: Optional[dict]) -> dict[str, dict]:
    prefix = META_PREFIX.encode()
    return {k[len(prefix):].decode(): json.loads(v) for k, v in (meta or {}).items() if k.startswith(prefix)}


class PlanCache:
    """A process's copy of the index plans of one table, re-read from the schema metadata of
    the table's dataset whenever its version changes (another process may have built or rebuilt
    an index: the plan comes with the version it was recorded in)."""

    def __init__(self) -> None:
        self._version: Optional[int] = None
        self._plans: dict[str, VectorIndexPlan] = {}

    def get(self, store: SegmentStore, column: str, dataset: Any = None) -> Optional[VectorIndexPlan]:
        """The plan ``column``'s index was built with, or ``None`` (no index, or one built
        before plans were recorded).

        Args:
            store: The segment store.
            column: Embedding column.
            dataset: The Lance dataset the caller is about to search (default: the store's
                latest); the plan is read at its version.
        """
        ds = store.dataset() if dataset is None else dataset
        if ds.version != self._version:
            self._plans = {c: VectorIndexPlan.from_dict(r) for c, r in _records(ds.schema.metadata).items()}
            self._version = ds.version
        return self._plans.get(column)


def _record(store: SegmentStore, column: str, record: dict) -> None:
    store.set_metadata({META_PREFIX + column: json.dumps(record, sort_keys=True)})


def _build_vector_index(store: SegmentStore, column: str, rows: int) -> tuple[VectorIndexPlan, float]:
    """Builds (or rebuilds) ``column``'s index, tunes its probe count on the table's own vectors
    and records the plan. Returns the plan and its sampled recall."""
    from lancedb.index import IvfSq

    policy = store.config.index_policy
    plan = plan_vector_index(rows, store.config.emb_dim(column), policy)
    store.table.create_index(column, config=IvfSq(distance_type=DISTANCE, num_partitions=plan.num_partitions),
                             replace=True)
    plan, recall = tune_nprobes(store, column, plan, policy)
    _record(store, column, {**plan.to_dict(), "rows_at_check": rows, "recall_at_check": round(recall, 4)})
    return plan, recall


def _indexed(store: SegmentStore) -> dict[str, object]:
    return {cfg.columns[0]: cfg for cfg in store.table.list_indices()}


def unindexed_rows(store: SegmentStore) -> dict[str, int]:
    """Indexed column -> rows not yet in its index (searched exactly until folded in)."""
    # list_indices() carries the counts; index_stats() would also load (and warn about) the
    # IVF centroids.
    return {c: int(cfg.num_unindexed_rows or 0) for c, cfg in _indexed(store).items()}


def ensure_indexes(store: SegmentStore, fold_all: bool = False) -> IndexReport:
    """Creates missing indexes, folds appended rows in on the policy, checks vector index
    quality where due and rebuilds an index whose measured recall is below the bound.

    Safe to call repeatedly (after every few writes, on a timer): it does nothing when every
    index is up to date.

    Args:
        store: The segment store.
        fold_all: Fold every unindexed row now (end of an ingest), not only tails past
            ``IndexPolicy.fold_unindexed_rows``.
    """
    with _index_lock(store):
        return _ensure_indexes(store, fold_all)


@contextmanager
def _index_lock(store: SegmentStore) -> Iterator[None]:
    """Serialises index maintenance between processes that share a local table (parallel
    ingests each end with :func:`ensure_indexes`): two compactions or two builds at once would
    conflict at commit, after the rows were written. Object-store tables are not locked here."""
    db_dir = str(store.config.db_dir)
    if "://" in db_dir:
        yield
        return
    path = Path(db_dir) / INDEX_LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ensure_indexes(store: SegmentStore, fold_all: bool) -> IndexReport:
    from lancedb.index import FTS, Bitmap, BTree

    policy = store.config.index_policy
    min_rows = store.config.vector_index_min_rows
    # Files first: an index built next is built over the merged files, and one that exists is
    # remapped by the same commit.
    compaction = compact_tiers(store.table.to_lance(), policy)
    existing = _indexed(store)
    created: list[str] = []
    if "transcript" not in existing and store.table.count_rows("transcript IS NOT NULL"):
        store.table.create_index("transcript", config=FTS())
        created.append("transcript")
    if store.table.count_rows() >= min_rows:
        for column, kind in SCALAR_INDEXES:
            if column not in existing:
                store.table.create_index(column, config=Bitmap() if kind == "bitmap" else BTree())
                created.append(column)
    for column in EMBEDDING_COLUMNS:
        if column in existing:
            continue
        n = store.table.count_rows(f"{column} IS NOT NULL")
        if n >= min_rows:
            _build_vector_index(store, column, n)
            created.append(column)
    waiting = {c: n for c, n in unindexed_rows(store).items() if n > 0 and c not in created}
    fold = bool(waiting) and (fold_all or any(needs_fold(n, policy) for n in waiting.values()))
    if fold:
        # Appended rows are assigned to the existing partitions (no retraining, no data files
        # rewritten). They go into a new delta segment of each index (rewriting a 1M-row index
        # to add 10k rows is most of a fold's time), and the segments are merged once an index
        # has max_index_segments (each is searched on its own). The merge names its segment
        # count: Lance's default merge (num_indices_to_merge=None) re-partitioned a
        # 1000-partition IVF index into 31 partitions (measured on 1M rows); an explicit count
        # keeps the plan's partitions (1.4 s for 1M + 10k rows).
        segments = max([int(getattr(c, "num_segments", 1) or 1) for c in _indexed(store).values()] or [1])
        store.table.to_lance().optimize.optimize_indices(
            num_indices_to_merge=0 if segments < policy.max_index_segments else segments)
    rebuilt, recall = _check_quality(store, skip=created, folded=set(waiting) if fold else set())
    if created or fold or compaction.compacted or rebuilt:
        store.table.to_lance().cleanup_old_versions(older_than=KEEP_VERSIONS)
    return IndexReport(created=tuple(created), optimized=fold, indexed_columns=tuple(sorted(_indexed(store))),
                       rebuilt=tuple(rebuilt), recall=recall, compacted=compaction.compacted)


def _check_quality(store: SegmentStore, skip: list[str], folded: set[str]) -> tuple[list[str], dict[str, float]]:
    """Measures each vector index where due: it grew by ``quality_check_growth`` since its last
    check, or rows were just folded into it (a fold assigns them to centroids trained on other
    data: on 1M rows, 10k appended rows of new content folded in were found at recall 0.47, so a
    fold is checked at once, on a smaller sample half drawn from the folded rows)."""
    policy = store.config.index_policy
    indexed = _indexed(store)
    rebuilt, recall = [], {}
    for column, record in index_records(store).items():
        cfg = indexed.get(column)
        if cfg is None or column in skip:
            continue
        n = int(cfg.num_indexed_rows or 0)
        grown = needs_quality_check(n, int(record["rows_at_check"]), policy)
        if not (grown or column in folded):
            continue
        # Re-tune first (cheap: the probe count, up to twice the current one); rebuild (retrain
        # the centroids and the quantiser on all rows) only when that does not reach the bound.
        plan = VectorIndexPlan.from_dict(record)
        plan, r = tune_nprobes(store, column, plan, policy, sample=policy.quality_sample if grown else
                               policy.fold_check_sample, newest_from=int(record["rows_at_check"]),
                               max_nprobes=2 * plan.nprobes)
        recall[column] = r
        # An index that measured below the bound when it was built is not rebuilt again until
        # it grows: the same rows would give the same index (e.g. many identical vectors).
        built_short = (int(record["rows_at_check"]) == int(record["rows_at_build"])
                       and float(record["recall_at_check"]) < policy.rebuild_min_recall)
        if r < policy.rebuild_min_recall and (grown or not built_short):
            _build_vector_index(store, column, store.table.count_rows(f"{column} IS NOT NULL"))
            rebuilt.append(column)
        else:
            _record(store, column, {**record, **plan.to_dict(), "rows_at_check": n, "recall_at_check": round(r, 4)})
    return rebuilt, recall
