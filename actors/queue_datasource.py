"""The streaming Ray Data source of the ingest pipeline: takes the source actors' segments.

Ray Data has no unbounded source. :class:`SegmentQueueDatasource` has a single read task that
takes the segments the :class:`~actors.source.SourceActor` streams have queued (a batch per
call, one call in flight per source actor) and yields one block per take — one row holding the
taken :class:`~engine.ingest.records.SegmentRecord` list (:func:`engine.ingest.records.pack_records`)
— so rows flow downstream while the sources are still producing. Adaptive batching: under load a
take returns many segments and they travel, and are tokenized, as one block and one task (Ray
Data's per-block cost is paid once); a lone live segment still goes alone, at once. It ends once
every stream has ended — by its end marker, or, for a source actor that died, by its run having
finished without one.
"""

from __future__ import annotations

import ray
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from actors.source import END_MARKER
from engine.ingest.records import pack_records

#: Segments one take() call may return (bounds a reply's size; about 0.7 MB each at defaults).
_TAKE_MAX = 16


class SegmentQueueDatasource(Datasource):
    """A one-task datasource yielding one block per batch of segments taken from the source actors.

    Args:
        sources: ``{source actor: [stream ids it runs]}``.
        runs: ``{stream_id: ObjectRef}`` of each stream's ``run``: a run that finished (or whose
            actor died) with nothing left to take has ended even without its marker.
    """

    def __init__(self, sources: dict, runs: dict) -> None:
        super().__init__()
        self._sources = sources
        self._runs = runs

    def estimate_inmemory_data_size(self) -> int | None:
        return None  # unbounded by design

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None) -> list[ReadTask]:
        sources, runs = dict(self._sources), dict(self._runs)

        def read():
            ended: set[str] = set()
            seen_done: set[str] = set()  # runs that returned (or died) without a marker seen yet

            def issue(actor) -> None:
                # A take issued after a run was seen done and answering empty proves nothing of
                # that run is left queued: only then has it ended.
                pending[actor.take.remote(_TAKE_MAX, 1.0)] = (actor, seen_done & set(sources[actor]))

            pending: dict = {}
            for actor in sources:
                issue(actor)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                actor, done_before = pending.pop(ready[0])
                try:
                    items = ray.get(ready[0])
                except ray.exceptions.ActorDiedError:  # its streams' runs say how they ended
                    items = []
                    ended |= set(sources[actor])
                except ray.exceptions.RayError:  # transient (e.g. ActorUnavailableError): ask again
                    issue(actor)
                    continue
                segments = []
                for item in items:
                    if isinstance(item, tuple) and item[0] == END_MARKER:
                        ended.add(item[1])
                    else:
                        segments.append(item)
                if segments:
                    yield pack_records(segments)
                if not items:
                    ended |= done_before
                    mine = [s for s in sources[actor] if s not in ended]
                    done, _ = ray.wait([runs[s] for s in mine], num_returns=len(mine), timeout=0)
                    seen_done.update(s for s in mine if runs[s] in done)
                if any(s not in ended for s in sources[actor]):
                    issue(actor)

        meta = BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None)
        return [ReadTask(read, meta)]

