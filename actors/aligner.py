"""Per-stream sync state in stateful actors, and the pipeline stage that reads it.

Every stream's :class:`~engine.align.tracker.SyncTracker` lives in one :class:`AlignerActor`,
chosen by a stable hash of the stream id (consistent routing), so its offset / drift / warp are
refined as segments arrive. The stream's source pushes segments in order; the writer stage asks
for each segment's estimate (:func:`alignments_for`) and puts it on the row: the estimate in
force ``settle_segments`` segments later (or at the stream's end), since a stream's first
seconds give the tracker little evidence (measured on the coupled dev clips: rows stamped at
once were more than 80 ms off in 18 of 102 rows, 4 s later in 4) and the warp then still covers
the segment.

If an aligner dies, Ray restarts it (``max_restarts=-1``) with empty state: it rebuilds its
estimate from the segments that arrive after the restart, and rows whose estimate was lost get
the newest one available rather than waiting forever, marked ``sync_status = "fallback"`` —
no row is lost or duplicated, and none carries a stand-in estimate silently.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections import OrderedDict

import ray

from actors.faults import maybe_fail
from engine.align.config import SyncConfig
from engine.align.cues import SegmentCues
from engine.align.tracker import SyncTracker
from engine.ingest.records import SYNC_NONE, Alignment

#: Estimates kept per stream (rows ask for recent segments only; this bounds memory).
_KEEP_ESTIMATES = 256


@ray.remote(max_restarts=-1, max_task_retries=-1)
class AlignerActor:
    """Holds the sync trackers of the streams routed to it (an asyncio actor).

    Args:
        sync: Sync settings of every tracker (the sources extract cues with ``sync.cues``).
        window_s: Cue window of each tracker.
        fault_injection: Test hook, see :mod:`actors.faults`.
        settle_segments: A row gets the estimate in force this many segments after its own.
    """

    def __init__(self, sync: SyncConfig, window_s: float = 20.0, fault_injection: tuple = (),
                 settle_segments: int = 0) -> None:
        self.sync = sync
        self.window_s = window_s
        self.settle_segments = int(settle_segments)
        self.fault_injection = fault_injection
        self.trackers: dict[str, SyncTracker] = {}
        self.estimates: dict[str, OrderedDict[int, Alignment]] = {}
        self.latest: dict[str, Alignment] = {}
        self.events: dict[tuple[str, int], asyncio.Event] = {}
        self.finished: set[str] = set()
        self.first_seen: dict[str, int] = {}  # after a restart: earlier estimates are gone
        self.last_pushed: dict[str, int] = {}
        # A restarted actor lost which streams had finished: it must not wait for them.
        self.reconstructed = ray.get_runtime_context().was_current_actor_reconstructed

    async def push(self, stream_id: str, cues: SegmentCues) -> None:
        """Adds the next segment's cues of a stream (called in order by the stream's source)."""
        maybe_fail(self.fault_injection, "aligner", cues.index)
        tracker = self.trackers.get(stream_id)
        if tracker is None:
            tracker = self.trackers[stream_id] = SyncTracker(self.sync, window_s=self.window_s)
        cols = Alignment.from_estimate(tracker.push_cues(cues))
        store = self.estimates.setdefault(stream_id, OrderedDict())
        self.first_seen.setdefault(stream_id, cues.index)
        self.last_pushed[stream_id] = max(cues.index, self.last_pushed.get(stream_id, -1))
        store[cues.index] = cols
        while len(store) > _KEEP_ESTIMATES:
            store.popitem(last=False)
        self.latest[stream_id] = cols
        event = self.events.pop((stream_id, cues.index), None)
        if event is not None:
            event.set()

    async def finish(self, stream_id: str) -> None:
        """The stream ended: nobody waits for its later segments."""
        self.finished.add(stream_id)
        for key in [k for k in self.events if k[0] == stream_id]:
            self.events.pop(key).set()

    async def estimate_for(self, stream_id: str, segment_index: int, timeout_s: float = 30.0) -> Alignment:
        """The estimate in force ``settle_segments`` after ``segment_index`` was pushed, or the
        stream's last if it ended before (waits up to ``timeout_s`` for each).

        When the segment's own estimate is gone (a restart, the bounded history, a timeout) the
        stream's newest one is returned marked as a fallback; with none at all, an empty alignment.
        """
        deadline = time.monotonic() + timeout_s  # one wait in all, own and settled
        own = await self._pushed(stream_id, segment_index, timeout_s)
        if own is None:
            return self.latest.get(stream_id, Alignment()).as_fallback()
        if self.settle_segments > 0:
            later = await self._pushed(stream_id, segment_index + self.settle_segments,
                                       max(0.0, deadline - time.monotonic()))
            if later is None and stream_id in self.finished:  # it ended first: its last estimate
                last = self.last_pushed.get(stream_id, -1)
                later = self.estimates.get(stream_id, {}).get(last) if last >= segment_index else None
            # Not there in time (its source held back): the segment's own estimate, as it is.
            if later is not None and later.status != SYNC_NONE:
                return later
        return own

    async def _pushed(self, stream_id: str, segment_index: int, timeout_s: float) -> Alignment | None:
        """The estimate right after ``segment_index`` was pushed, waiting for it while it can
        still arrive; None when it never will (or not in time)."""
        store = self.estimates.get(stream_id, {})
        # Wait only for a segment that has not been pushed yet: an older one was pushed before a
        # restart or evicted from the bounded history, and will never arrive again.
        already_pushed = segment_index <= self.last_pushed.get(stream_id, -1)
        unknown_after_restart = self.reconstructed and stream_id not in self.last_pushed
        if segment_index not in store and stream_id not in self.finished and not already_pushed and not unknown_after_restart:
            event = self.events.setdefault((stream_id, segment_index), asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), timeout_s)
            except asyncio.TimeoutError:
                pass  # lost in a restart: fall back to the newest estimate
            store = self.estimates.get(stream_id, {})
        return store.get(segment_index)

    async def current(self, stream_id: str) -> Alignment:
        """The newest estimate of a stream."""
        return self.latest.get(stream_id, Alignment())


def aligner_for(aligners: list, stream_id: str):
    """Consistent routing: a stream always goes to the same aligner."""
    return aligners[zlib.crc32(stream_id.encode()) % len(aligners)]


def alignments_for(keys: list[tuple[str, int]], aligners: list, timeout_s: float = 30.0) -> list[Alignment]:
    """The estimate in force for each ``(stream_id, segment_index)``, in one round trip; an
    estimate not pushed yet is waited for (see :meth:`AlignerActor.estimate_for`)."""
    refs = [aligner_for(aligners, sid).estimate_for.remote(sid, idx, timeout_s) for sid, idx in keys]
    return ray.get(refs)
