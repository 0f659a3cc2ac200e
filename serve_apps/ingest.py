"""The ingest deployment: starts one Ray task per stream and reports its state.

``POST /v1/ingest`` hands a vetted source (URL or file inside the allowed roots) to
:meth:`IngestManager.start`; the stream then runs as its own Ray task (the single-process
pipeline loop of :func:`engine.ingest.pipeline.run_local`, scheduled anywhere in the cluster), so one
bad stream fails alone and never stops the others. Rows are written to the store as they are
made (idempotent ``merge_insert`` keyed by stream and segment), so a stream's progress is
always the store's row count, even for streams this replica did not start.
"""

from __future__ import annotations

import time
from dataclasses import replace

import ray
from ray import serve

from engine.ingest.pipeline import PipelineConfig, run_local
from engine.store.table import SegmentStore, StoreError


def _ingest_stream(source: str, stream_id: str, config: PipelineConfig) -> dict:
    (res,) = run_local([source], config, stream_id=stream_id)
    return {"segments_written": res.segments_written, "segments_skipped": res.segments_skipped,
            "segments_failed": res.segments_failed, "offset_ms": res.offset_ms, "drift_ppm": res.drift_ppm,
            "confidence": res.confidence, "error": res.error}


@serve.deployment(name="IngestManager", num_replicas=1)
class IngestManager:
    """Launches and tracks ingest tasks (one replica: it owns the task handles)."""

    def __init__(self, db_dir: str, codebooks_dir: str, segment_s: float, num_cpus: float) -> None:
        self.config = PipelineConfig(db_dir=db_dir, codebooks_dir=codebooks_dir, segment_s=segment_s)
        self.task = ray.remote(num_cpus=num_cpus, max_retries=0)(_ingest_stream)
        self.streams: dict[str, dict] = {}

    def start(self, source: str, stream_id: str, live: bool = False) -> dict:
        """Starts ingesting ``source`` as ``stream_id``; a running stream of that id is an error."""
        cur = self.streams.get(stream_id)
        if cur is not None and self._state(cur)["state"] == "running":
            return {"error": f"stream {stream_id!r} is already being ingested"}
        ref = self.task.remote(source, stream_id, replace(self.config, live=live))
        self.streams[stream_id] = {"ref": ref, "source": source, "started_at": time.time(), "result": None}
        return {"stream_id": stream_id, "state": "running"}

    def _state(self, entry: dict) -> dict:
        if entry["result"] is None:
            ready, _ = ray.wait([entry["ref"]], timeout=0)
            if not ready:
                return {"state": "running"}
            try:
                entry["result"] = ray.get(entry["ref"])
            except ray.exceptions.RayError as exc:  # the task itself died (worker crash): report, never raise
                entry["result"] = {"error": f"ingest task failed: {type(exc).__name__}"}
        res = entry["result"]
        return {"state": "failed" if res.get("error") and not res.get("segments_written") else "done", **res}

    def status(self, stream_id: str) -> dict | None:
        """State of a stream: ``running``/``done``/``failed`` (or ``stored`` if only the store knows it)."""
        try:
            rows = SegmentStore.open(self.config.db_dir).count(stream_id)
        except StoreError:  # no table yet: nothing stored
            rows = 0
        entry = self.streams.get(stream_id)
        if entry is None:
            return {"stream_id": stream_id, "state": "stored", "rows": rows} if rows else None
        return {"stream_id": stream_id, "source": entry["source"], "rows": rows, **self._state(entry)}
