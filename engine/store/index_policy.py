"""Which vector index a column gets, how it is searched, and when it is folded or rebuilt.

Arithmetic over table size and dimension (nothing here opens a table), so the choice can be
read and tested on its own; :mod:`engine.store.indexes` applies it, :mod:`engine.store.index_quality`
measures it, :func:`nearest_query` sets a query to it.

Why IVF_SQ (trials on 1M x 256-d clustered vectors, 2 cores, through LanceDB's query API; the
committed run of ``benchmarks/search.py`` is in ``benchmarks/results/search.json``):

* IVF_HNSW_SQ with LanceDB's defaults (m 20, ef_construction 300) took 939 s to build and gave
  recall@10 0.805 (the issue's measurement): building an HNSW graph per partition is the cost,
  and the graph's misses are not undone by refining.
* IVF_PQ (32 sub-vectors x 8 bits) built in 62 s, but its codes are too coarse for neighbours
  that differ by a few per cent in distance: recall 0.56 / 0.84 with 10x / 40x refine.
  IVF_RQ (RaBitQ, 1 bit per dimension) built in 13 s, recall 0.94 with 40x refine (~10 ms).
* IVF_SQ (8 bits per dimension) built in 12 s (the index alone); its distance error is small
  enough that re-ranking 2x k candidates with the stored float vectors restores the exact
  order (recall 0.95 without, 1.0 with). Its codes cost ``dim`` bytes per row (256 MB at
  1M x 256), a fair price up to tens of millions of rows on one node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.errors import InvalidInputError

#: The index type this policy builds (LanceDB's name).
INDEX_TYPE = "IVF_SQ"


@dataclass(frozen=True)
class IndexPolicy:
    """Knobs of the index policy (defaults measured, see the module docstring).

    Attributes:
        min_probe_fraction: Share of the partitions a query probes at first ...
        min_nprobes: ... and at least this many (10 of 1,000 partitions at 1M rows).
        max_probe_fraction: The probe count is then tuned on the table's own vectors
            (doubling, up to this share of the partitions) until the sampled recall reaches
            ``target_recall``. How many partitions hold a query's neighbours depends on the
            data, not on its size: on 1M clustered vectors 10 probes gave recall 0.81, 20 gave
            1.0 at +1 ms (benchmarks/search.py), so it is measured, not guessed.
        target_recall: Sampled recall@10 the tuning aims for (above the rebuild bound, so a
            freshly tuned index is not rebuilt at its next check).
        refine_factor: Candidates re-ranked with the exact vectors, as a multiple of ``k``; 2
            undoes the 8-bit quantisation's swaps among near-ties.
        fold_unindexed_rows: Rows appended after the index was built are searched exactly
            beside it (they are searchable at once); they are folded into the index (a delta
            segment, :func:`engine.store.indexes.ensure_indexes`) once this many are waiting.
            The bound keeps the exact tail's cost per query small: 4,096 x 256-d float vectors
            is ~4 MB, ~1.5 ms of scanning.
        max_index_segments: A fold adds a delta segment to each index; at this many segments
            the next fold merges them (every segment is searched on its own).
        compact_min_fragments: Data files (fragments) of one size tier at which the tier is
            merged (:mod:`engine.store.compaction`). Every write adds a file, and each hit and
            each re-ranked candidate is read from its own file: on 1M x 256-d rows in 50 files a
            query took 7.6 ms, in one file 4.8 ms (trial, /tmp profiling script), so a few
            files per tier at most.
        compact_small_rows: Files below this many rows are the small tier (what appends
            leave); they are merged among themselves, so a live table does not rewrite its big
            files for every handful of writes.
        compact_target_rows: Files below this many rows are the medium tier (earlier merges);
            they are merged into files of about this size (Lance's own default target).
        quality_check_growth: The index's recall is measured again once its rows grew by this
            share since it was built or last measured ...
        quality_sample: ... on this many query vectors drawn from stored rows (half from the
            newest rows, where appended data differs from the data the centroids were trained
            on), each checked against an exact search ...
        fold_check_sample: Query vectors of the check that follows every fold (half of them
            from the folded rows).
        rebuild_min_recall: ... and the index is rebuilt (centroids retrained on the current
            rows) only when that recall@10 falls below this bound.
    """

    min_probe_fraction: float = 0.01
    min_nprobes: int = 8
    max_probe_fraction: float = 0.1
    target_recall: float = 0.98
    refine_factor: int = 2
    fold_unindexed_rows: int = 4096
    max_index_segments: int = 8
    compact_min_fragments: int = 8
    compact_small_rows: int = 100_000
    compact_target_rows: int = 1_048_576
    quality_check_growth: float = 0.25
    quality_sample: int = 16
    fold_check_sample: int = 8
    rebuild_min_recall: float = 0.9

    def __post_init__(self) -> None:
        for name in ("min_probe_fraction", "max_probe_fraction", "target_recall"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise InvalidInputError(name, f"must be in (0, 1], got {getattr(self, name)}")
        if self.max_probe_fraction < self.min_probe_fraction:
            raise InvalidInputError("max_probe_fraction", f"must be >= min_probe_fraction ({self.min_probe_fraction})")
        for name in ("min_nprobes", "refine_factor", "fold_unindexed_rows", "max_index_segments", "compact_min_fragments",
                     "compact_small_rows", "compact_target_rows", "quality_sample", "fold_check_sample"):
            if int(getattr(self, name)) < 1:
                raise InvalidInputError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.compact_target_rows < self.compact_small_rows:
            raise InvalidInputError("compact_target_rows", f"must be >= compact_small_rows ({self.compact_small_rows})")
        if self.quality_check_growth <= 0:
            raise InvalidInputError("quality_check_growth", f"must be positive, got {self.quality_check_growth}")
        if not 0.0 <= self.rebuild_min_recall <= self.target_recall:
            # A bound above the tuning target would rebuild a freshly tuned index at every check.
            raise InvalidInputError("rebuild_min_recall",
                                    f"must be in [0, target_recall={self.target_recall}], got {self.rebuild_min_recall}")


@dataclass(frozen=True)
class VectorIndexPlan:
    """How one embedding column is indexed and searched.

    Attributes:
        index_type: LanceDB index type (``IVF_SQ``).
        num_partitions: IVF partitions (k-means centroids) at build time.
        nprobes: Partitions a query probes.
        refine_factor: Candidates re-ranked exactly, as a multiple of ``k``.
        rows_at_build: Indexed rows when the index was built.
    """

    index_type: str
    num_partitions: int
    nprobes: int
    refine_factor: int
    rows_at_build: int

    def to_dict(self) -> dict:
        return {"index_type": self.index_type, "num_partitions": self.num_partitions,
                "nprobes": self.nprobes, "refine_factor": self.refine_factor,
                "rows_at_build": self.rows_at_build}

    @classmethod
    def from_dict(cls, d: dict) -> "VectorIndexPlan":
        return cls(index_type=str(d["index_type"]), num_partitions=int(d["num_partitions"]),
                   nprobes=int(d["nprobes"]), refine_factor=int(d["refine_factor"]),
                   rows_at_build=int(d["rows_at_build"]))


def plan_vector_index(rows: int, dim: int, policy: IndexPolicy = IndexPolicy()) -> VectorIndexPlan:
    """The index for a column of ``rows`` vectors of ``dim`` floats.

    A query costs ~``partitions`` centroid distances plus ~``nprobes * rows / partitions`` code
    distances; ``sqrt(rows)`` partitions balance the two at a fixed probe share (1,000 at 1M
    rows, ~1,000 rows each). The dimension scales both terms alike, so it does not move the
    balance; it is checked so a plan is never made for an empty vector.

    Raises:
        InvalidInputError: ``rows`` or ``dim`` is not positive.
    """
    if rows < 1:
        raise InvalidInputError("rows", f"must be >= 1, got {rows}")
    if dim < 1:
        raise InvalidInputError("dim", f"must be >= 1, got {dim}")
    partitions = max(1, int(round(math.sqrt(rows))))
    nprobes = min(partitions, max(policy.min_nprobes, math.ceil(partitions * policy.min_probe_fraction)))
    return VectorIndexPlan(index_type=INDEX_TYPE, num_partitions=partitions, nprobes=nprobes,
                           refine_factor=policy.refine_factor, rows_at_build=rows)


def probe_ladder(plan: VectorIndexPlan, policy: IndexPolicy = IndexPolicy()) -> list[int]:
    """Probe counts the tuning tries, cheapest first: the plan's, doubling, up to
    ``max_probe_fraction`` of the partitions (never fewer than the plan's)."""
    top = max(plan.nprobes, min(plan.num_partitions, math.ceil(plan.num_partitions * policy.max_probe_fraction)))
    ladder, n = [], plan.nprobes
    while n < top:
        ladder.append(n)
        n *= 2
    return ladder + [top]


def needs_fold(unindexed_rows: int, policy: IndexPolicy = IndexPolicy()) -> bool:
    """Whether an index's unindexed tail is long enough to fold it in (see ``fold_unindexed_rows``)."""
    return unindexed_rows >= policy.fold_unindexed_rows


def needs_quality_check(indexed_rows: int, rows_at_check: int, policy: IndexPolicy = IndexPolicy()) -> bool:
    """Whether an index grew enough since its last recall measurement to measure it again."""
    return indexed_rows >= rows_at_check * (1.0 + policy.quality_check_growth)


#: Matching rows a filtered index search should meet in the partitions it probes, per hit wanted.
FILTER_CANDIDATES_PER_HIT = 10


def exact_filter_max_rows(plan: VectorIndexPlan, k: int) -> int:
    """Below this many matching rows a filtered query is answered exactly (a flat scan of just
    those rows) instead of through the index.

    The probed partitions hold about ``nprobes / partitions`` of the matching rows; a filter
    search whose probes meet fewer than ~10 per hit stops at the first k it finds, which are
    not the nearest (measured: one stream of 1,000 at 30k rows, 30 matching rows, recall 0.72
    through the index). Scanning that few rows exactly is cheap, and exact.
    """
    return FILTER_CANDIDATES_PER_HIT * k * max(1, plan.num_partitions) // max(1, plan.nprobes)


def nearest_query(plan: VectorIndexPlan, column: str, vector, k: int) -> dict:
    """The ``nearest`` argument of a Lance scan that searches an index built with ``plan``.

    The scan starts at the plan's probe count (``search_effort`` 0: Lance's default effort
    starts between the minimum and the maximum) and probes more partitions, up to all, only
    while fewer than k rows were found. That matters for a filtered query, whose rows may lie
    outside the nearest partitions (measured: one stream of 40, 8 of 20 partitions probed gave
    6 of 10 hits with a fixed probe count), and for a large k or skewed partitions unfiltered;
    otherwise the plan's probes find k at once and nothing more is read (same latency at 1M
    rows, trial).
    """
    return {"column": column, "q": vector, "k": k, "metric": "cosine", "minimum_nprobes": plan.nprobes,
            "maximum_nprobes": max(plan.nprobes, plan.num_partitions), "search_effort": 0.0,
            "refine_factor": plan.refine_factor}
