"""The ingest deployment: one Ray Data pipeline per HTTP-ingested stream, and its state and metrics.

``POST /v1/ingest`` hands a vetted source (URL or file inside the allowed roots) to
:meth:`IngestManager.start`. The stream then runs through :func:`actors.pipeline.run_ingest`, the
pipeline ``omnialign ingest`` runs: source actor, tokenizer actor pool (GPUs when
``store.pipeline`` asks for them), aligner, the exactly-once writer, and Ray's restarts of any of
them that dies. Each stream gets its own pipeline, driven by its own :class:`StreamDriver` actor
(``run_ingest`` blocks; the manager's event loop must not), so one bad stream fails alone and
never stops the others. A stream reserves its whole pipeline at once, as one placement group; a
stream the cluster has no room for yet is ``queued`` (see :class:`IngestManager`).

The driver streams every committed segment's summary back to the manager (a streaming generator
method), and the manager records them in one :class:`omnialign.metrics.IngestMetrics` registry:
the same metric names the CLI serves, shown by the ingress ``GET /metrics``. A driver that dies
(node loss, OOM kill) is relaunched up to ``max_restarts`` times; the new run skips the segments
already committed, so every segment is still stored exactly once. Rows are written as they are
made (idempotent ``merge_insert`` keyed by stream and segment), so a stream's progress is always
the store's row count, even for streams this replica did not start.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from prometheus_client import generate_latest
from ray import serve
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from actors.pipeline import HEAD_BUNDLE, pipeline_bundles
from engine.ingest.pipeline import PipelineConfig
from engine.errors import StoreError
from engine.store.table import SegmentStore
from omnialign.metrics import IngestMetrics

if TYPE_CHECKING:
    from engine.ingest.records import CommitRecord

log = logging.getLogger("omnialign.serve.ingest")

#: Failures of the driver's process (not of its code): worth a relaunch.
_DRIVER_DIED = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError,
                ray.exceptions.NodeDiedError)


@ray.remote(max_restarts=0, max_task_retries=0)
class StreamDriver:
    """Runs one stream's pipeline (:func:`actors.pipeline.run_ingest`) and streams its progress.

    The pipeline's actors (source, aligner, tokenizer pool, writer) are owned by this actor:
    killing it stops the whole pipeline.
    """

    def run(self, source: str, stream_id: str, config: PipelineConfig, pg: PlacementGroup | None = None):
        """Yields ``("rows", [CommitRecord, ...])`` as segments are committed, then ``("done", result)``.

        With ``pg``, every Ray Data task and actor of the pipeline runs in that placement group.
        """
        out: queue.Queue = queue.Queue()

        def work() -> None:
            try:
                out.put(("done", _drive(source, stream_id, config, pg, lambda row: out.put(("row", row)))))
            except Exception as exc:  # noqa: BLE001 - reported as the stream's error, never raised
                out.put(("done", {"error": f"{type(exc).__name__}: {exc}"}))

        threading.Thread(target=work, name=f"ingest-{stream_id}", daemon=True).start()
        while True:
            items = [out.get()]
            while True:  # everything already queued goes in one message
                try:
                    items.append(out.get_nowait())
                except queue.Empty:
                    break
            rows = [item for kind, item in items if kind == "row"]
            if rows:
                yield "rows", rows
            done = [item for kind, item in items if kind == "done"]
            if done:
                yield "done", done[0]
                return


def _drive(source: str, stream_id: str, config: PipelineConfig, pg: PlacementGroup | None, on_row) -> dict:
    """The pipeline for one source under ``stream_id``; returns the stream's result."""
    from actors.pipeline import run_ingest
    from engine.ingest.pipeline import expand_sources
    from actors.runtime import init_ray

    expanded = expand_sources([source])
    if expanded != [source]:  # a folder: one HTTP stream id names exactly one stream
        return {"error": f"InvalidInputError: {source}: give one media file or URL, not a folder"}
    init_ray(None)  # Ray is up (we are in it): only the Ray Data settings of the CLI (quiet, no detectors)
    # Every actor and task of the pipeline runs in its bundle of the stream's placement group.
    summary = run_ingest([source], config, on_row=lambda row, _summary: on_row(row), stream_ids={source: stream_id},
                         placement_group=pg)
    (s,) = summary.streams
    return {"segments_written": s.segments_written, "segments_skipped": s.segments_skipped,
            "segments_failed": s.segments_failed, "offset_ms": s.offset_ms, "drift_ppm": s.drift_ppm,
            "confidence": s.confidence, "error": s.error}


def _same_source(a: str, b: str) -> bool:
    """Whether two sources name the same media (local paths compared resolved)."""
    if "://" in a or "://" in b:
        return a == b
    return Path(a).resolve() == Path(b).resolve()


@dataclass
class _Stream:
    """One stream this replica started: its driver, progress and (once over) result."""

    source: str
    config: PipelineConfig
    started_at: float = field(default_factory=time.time)
    t0: float = field(default_factory=time.monotonic)
    task: asyncio.Task | None = None
    driver: Any = None
    pg: PlacementGroup | None = None
    queued: bool = True         # waiting for its placement group (the cluster is full)
    restarts: int = 0
    committed: int = 0          # segments committed by this ingest, over all driver runs
    committed_before: int = 0   # ... by earlier driver runs (the last run skips them)
    errors_seen: int = 0        # failed segments reported row by row (the rest come with the result)
    media_s: float = 0.0
    result: dict | None = None
    delete_source_after: bool = False  # an upload: removed once the stream ends


@serve.deployment(name="IngestManager", num_replicas=1)
class IngestManager:
    """Launches and tracks one pipeline per stream (one replica: it owns the drivers).

    Args:
        config: Pipeline configuration of HTTP-ingested streams (``StoreSettings.pipeline_config``).
        driver_num_cpus: CPUs reserved by each stream's :class:`StreamDriver`.
        max_restarts: Relaunches of a stream's driver after it died.

    Each stream reserves its whole pipeline at once, as one placement group (driver, read task,
    writer, the tokenizer pool at its maximum, GPUs included): a stream the cluster has no room
    for waits as ``queued`` instead of holding half a pipeline, so streams started together can
    never deadlock each other on a full cluster. (Source and aligner actors are not in the group;
    they reserve ``source_num_cpus`` and 0 CPUs.)
    """

    def __init__(self, config: PipelineConfig, driver_num_cpus: float = 0.1, max_restarts: int = 2) -> None:
        self.config = replace(config, metrics_port=None)  # exported by the ingress, not per driver
        self.driver_num_cpus = driver_num_cpus
        self.max_restarts = max_restarts
        self.metrics = IngestMetrics(None)
        self.streams: dict[str, _Stream] = {}
        # Driver actor names: findable (``ray list actors``), unique across apps and replicas.
        self._launches = (f"{uuid.uuid4().hex[:8]}-{i}" for i in itertools.count())

    async def start(self, source: str, stream_id: str, live: bool = False, delete_source_after: bool = False) -> dict:
        """Starts ingesting ``source`` as ``stream_id``.

        A running stream of that id is an error, and so is a stored stream of another source: its
        committed segments would be skipped as already written, and the new source's media
        silently dropped. The same source again resumes (only missing segments are written).
        ``delete_source_after``: the source is an upload this server owns; it is deleted when the
        stream ends (done or failed).
        """
        cur = self.streams.get(stream_id)
        if cur is not None and cur.result is None:
            return {"error": f"stream {stream_id!r} is already being ingested"}
        stored = await asyncio.to_thread(self._stored_source, stream_id)
        if stored is not None and not _same_source(stored, source):
            return {"error": f"stream {stream_id!r} already holds rows of another source; choose another stream_id"}
        entry = _Stream(source=source, config=replace(self.config, live=live), delete_source_after=delete_source_after)
        self.streams[stream_id] = entry
        entry.task = asyncio.get_running_loop().create_task(self._run(stream_id, entry))
        return {"stream_id": stream_id, "state": "running"}

    async def _run(self, stream_id: str, entry: _Stream) -> None:
        try:
            entry.result = await self._attempts(stream_id, entry)
        except Exception as exc:  # noqa: BLE001 - a stream's state must always end
            log.exception("ingest of %s failed", stream_id)
            entry.result = {"error": f"ingest failed: {type(exc).__name__}: {exc}"}
        finally:
            if entry.delete_source_after:  # uploads never pile up on disk, whatever the outcome
                await asyncio.to_thread(lambda: Path(entry.source).unlink(missing_ok=True))
        res = entry.result
        unseen = res.get("segments_failed", 0) - entry.errors_seen
        if unseen > 0:
            self.metrics.segment_errors.labels(stream_id).inc(unseen)
        if res.get("offset_ms") is not None:
            self.metrics.sync_offset.labels(stream_id).set(res["offset_ms"])
            self.metrics.sync_drift.labels(stream_id).set(res["drift_ppm"])
            self.metrics.sync_confidence.labels(stream_id).set(res["confidence"])
        self._set_realtime_factor()

    async def _attempts(self, stream_id: str, entry: _Stream) -> dict:
        """Runs the stream's driver, relaunching it after a crash; the last run's result."""
        launch = next(self._launches)
        entry.pg = placement_group(pipeline_bundles(entry.config, self.driver_num_cpus), strategy="PACK",
                                   name=f"omnialign-ingest:{stream_id}:{launch}")
        try:
            await entry.pg.ready()
            entry.queued = False
            return await self._drivers(stream_id, entry, launch)
        finally:
            remove_placement_group(entry.pg)  # also ends any pipeline task or actor still in it

    async def _drivers(self, stream_id: str, entry: _Stream, launch: str) -> dict:
        in_group = PlacementGroupSchedulingStrategy(entry.pg, placement_group_bundle_index=HEAD_BUNDLE,
                                                    placement_group_capture_child_tasks=False)
        while True:
            entry.committed_before = entry.committed
            driver = entry.driver = StreamDriver.options(
                name=f"omnialign-ingest:{stream_id}:{launch}:{entry.restarts}", num_cpus=self.driver_num_cpus,
                scheduling_strategy=in_group).remote()
            try:
                async for ref in driver.run.remote(entry.source, stream_id, entry.config, entry.pg):
                    kind, payload = await ref
                    if kind == "rows":
                        for row in payload:
                            self._observe(entry, row)
                    else:
                        return self._result(entry, payload)
                raise RuntimeError("the driver ended without a result")
            except _DRIVER_DIED as exc:
                if entry.restarts >= self.max_restarts:
                    return self._result(entry, {"error": f"ingest driver failed {entry.restarts + 1} times: "
                                                         f"{type(exc).__name__}"})
                entry.restarts += 1
                log.warning("ingest driver of %s died (%s); relaunch %d", stream_id, type(exc).__name__,
                            entry.restarts)
            finally:
                ray.kill(driver)  # also ends the pipeline's actors, which it owns

    def _observe(self, entry: _Stream, row: CommitRecord) -> None:
        self.metrics.observe_commit(row)  # exactly what run_ingest records in the CLI's registry
        if row.error is not None:
            entry.errors_seen += 1
            return
        entry.committed += 1
        entry.media_s += (row.t_end_us - row.t_start_us) / 1e6
        self._set_realtime_factor()

    def _set_realtime_factor(self) -> None:
        """Media seconds per wall second of the running streams, together."""
        now = time.monotonic()
        self.metrics.realtime_factor.set(sum(e.media_s / max(now - e.t0, 1e-9) for e in self.streams.values()
                                             if e.result is None))

    @staticmethod
    def _result(entry: _Stream, res: dict) -> dict:
        """The last run's result, counted over all of this ingest's driver runs."""
        res = {"segments_written": 0, "segments_skipped": 0, "segments_failed": 0, "offset_ms": None,
               "drift_ppm": None, "confidence": None, "error": None, **res}
        res["segments_written"] = entry.committed
        # The last run skipped what earlier runs of this ingest committed: that is not "skipped".
        res["segments_skipped"] = max(0, res["segments_skipped"] - entry.committed_before)
        return res

    def _state(self, entry: _Stream) -> dict:
        if entry.result is None:
            return {"state": "queued" if entry.queued else "running", "segments_written": entry.committed,
                    "restarts": entry.restarts}
        res = entry.result
        state = "failed" if res.get("error") and not res.get("segments_written") else "done"
        return {"state": state, **res, "restarts": entry.restarts}

    async def status(self, stream_id: str) -> dict | None:
        """State of a stream: ``running``/``done``/``failed`` (or ``stored`` if only the store knows it)."""
        rows = await asyncio.to_thread(self._rows, stream_id)
        entry = self.streams.get(stream_id)
        if entry is None:
            return {"stream_id": stream_id, "state": "stored", "rows": rows} if rows else None
        return {"stream_id": stream_id, "source": entry.source, "rows": rows, **self._state(entry)}

    def _stored_source(self, stream_id: str) -> str | None:
        try:
            return SegmentStore.open(self.config.db_dir, self.config.table).source_of(stream_id)
        except StoreError:  # no table yet: nothing stored
            return None

    def _rows(self, stream_id: str) -> int:
        try:
            return SegmentStore.open(self.config.db_dir, self.config.table).count(stream_id)
        except StoreError:  # no table yet: nothing stored
            return 0

    async def exposition(self) -> bytes:
        """The ingest metrics (Prometheus text) of every stream this replica ran."""
        self._set_realtime_factor()
        return generate_latest(self.metrics.registry)

    def __del__(self) -> None:
        for entry in self.streams.values():
            if entry.result is None and entry.pg is not None:
                try:
                    remove_placement_group(entry.pg)  # kills the driver and its pipeline's stages
                except Exception:  # noqa: BLE001 - shutting down anyway
                    pass
