"""Compaction of the segment table's data files in size tiers.

Every write commits at least one data file (fragment). A vector search reads each hit, and
each candidate it re-ranks, from the file that holds it, so query latency grows with the number
of files (on 1M x 256-d rows: 50 files 7.6 ms, one file 4.8 ms per query, trial). Merging
everything into one file on every call would instead rewrite the whole table for each handful of
appends, so files are merged in two tiers, as log-structured stores do:

* **small** (below ``IndexPolicy.compact_small_rows``, what appends leave): once
  ``compact_min_fragments`` of them exist they are merged among themselves; the big files are
  left alone.
* **medium** (from ``compact_small_rows`` to below ``compact_target_rows``, what earlier merges
  made): once ``compact_min_fragments`` of them exist they are merged, with any small ones,
  into files of about the target size.

A row is rewritten a few times in the small tier (until its merged file reaches
``compact_small_rows``) and about once in the medium tier, rather than at every compaction.

Lance remaps every index (vector, scalar, full-text) onto the merged files as part of the same
commit, and merges only files covered by the same indexes, so rows not yet in an index stay
searchable (exact scan) and are folded in by :func:`engine.store.indexes.ensure_indexes` as
before. pylance's ``compact_files`` is used rather than LanceDB's ``Table.optimize()``: the
latter also merges the index segments with Lance's default settings, which re-partitioned a
1000-partition IVF index into 31 partitions (measured on 1M rows), undoing the index plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.store.index_policy import IndexPolicy


@dataclass(frozen=True)
class CompactionResult:
    """What :func:`compact_tiers` merged.

    Attributes:
        tier: ``"small"``, ``"medium"`` or ``""`` (nothing was due).
        fragments_removed: Data files merged away.
        fragments_added: Data files written.
    """

    tier: str = ""
    fragments_removed: int = 0
    fragments_added: int = 0

    @property
    def compacted(self) -> bool:
        """Whether any files were merged."""
        return self.fragments_removed > 0


def _rows(fragment: Any) -> int:
    return int(fragment.metadata.physical_rows or 0)


def compact_tiers(dataset: Any, policy: IndexPolicy) -> CompactionResult:
    """Merges the data files of the first tier that is due (small before medium).

    Args:
        dataset: The table's Lance dataset at its latest version.
        policy: Tier bounds and the file count that makes a tier due.

    Returns:
        What was merged (``CompactionResult()`` when no tier was due).
    """
    fragments = dataset.get_fragments()
    tiers = (("small", 0, policy.compact_small_rows), ("medium", policy.compact_small_rows, policy.compact_target_rows))
    for tier, low, bound in tiers:
        if sum(low <= _rows(f) < bound for f in fragments) < policy.compact_min_fragments:
            continue
        # Files at or above the tier's bound are excluded, so a small-tier merge never
        # rewrites a big file just because it sits next to the new ones (a medium-tier merge
        # takes the small files along).
        excluded = [f.fragment_id for f in fragments if _rows(f) >= bound]
        metrics = dataset.optimize.compact_files(target_rows_per_fragment=policy.compact_target_rows,
                                                 excluded_fragment_ids=excluded or None)
        if metrics.fragments_removed:
            return CompactionResult(tier=tier, fragments_removed=int(metrics.fragments_removed),
                                    fragments_added=int(metrics.fragments_added))
        # Nothing mergeable in this tier (its files are not adjacent, or sit under different
        # index coverage): the next tier may still be.
    return CompactionResult()
