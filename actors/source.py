"""Source actors and the streaming Ray Data source that drains them.

Ray Data has no unbounded source, so ingestion is split in two:

* one :class:`SourceActor` per stream decodes its source (file, folder entry or live URL) at its
  own pace, feeds the stream's aligner in order, and puts each new segment on a bounded
  ``ray.util.queue.Queue`` (as an object reference: the queue actor never copies media). A full
  queue blocks the sources — backpressure instead of unbounded buffering;
* :class:`SegmentQueueDatasource` has a single read task that drains that queue and yields one
  block per segment, so rows flow downstream while the sources are still producing. It ends once
  every source has ended — by its end marker, or, for a source actor that died, by its run
  having finished without one.
"""

from __future__ import annotations

import time
from queue import Empty

import ray
from ray.data import Datasource, ReadTask
from ray.data.block import BlockAccessor, BlockMetadata

from engine.media import SegmentReader
from engine.pipeline import PipelineConfig, TranscriptSidecar, cue_view
from engine.records import segment_to_record
from engine.tokenizer import Tokenizer, token_view

_END = "__end__"


@ray.remote
class SourceActor:
    """Decodes one stream and hands its segments to the pipeline (see module doc)."""

    def __init__(self, stream_id: str, source_uri: str, config: PipelineConfig) -> None:
        self.stream_id = stream_id
        self.source_uri = source_uri
        self.config = config
        # Only which frames get tokens matters here: the pipeline ships just those downstream.
        self.token_fps = Tokenizer.load_config(config.codebooks_dir).video_token_fps

    def run(self, queue, aligner, skip_indexes: set[int]) -> dict:
        """Decodes to the end of the stream; returns ``{stream_id, segments, skipped, error}``.

        Never raises for a bad source: the error is returned, so one stream fails alone.
        Segments in ``skip_indexes`` (already committed) still go to the aligner, so its state
        is the same as in a first run, but are not emitted again.
        """
        summary = {"stream_id": self.stream_id, "source_uri": self.source_uri, "segments": 0, "skipped": 0, "error": None}
        push = None
        try:
            sidecar = TranscriptSidecar(self.source_uri)
            with SegmentReader(self.source_uri, self.config.media_config(), self.stream_id) as reader:
                for seg in reader:
                    # One push in flight: an asyncio actor may run queued calls out of order, and
                    # the tracker needs segments in order. Aligning a segment takes milliseconds.
                    if push is not None:
                        ray.get(push)
                    push = aligner.push.remote(self.stream_id, cue_view(seg))
                    if seg.index in skip_indexes:
                        summary["skipped"] += 1
                        continue
                    rec = segment_to_record(token_view(seg, self.token_fps), self.source_uri)
                    rec["transcript"] = sidecar.text(seg) or ""  # "" = none (see records.null_to_none)
                    rec["wall_decoded"] = time.time()
                    queue.put([ray.put(rec)])  # blocks while the queue is full (backpressure)
                    summary["segments"] += 1
            if push is not None:
                ray.get(push)
        except Exception as exc:  # noqa: BLE001 - the stream boundary: any failure fails this stream alone
            summary["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            try:
                # The stream's estimates are complete before anyone hears that it ended.
                ray.get(aligner.finish.remote(self.stream_id))
            finally:
                queue.put((_END, self.stream_id))
        return summary


class SegmentQueueDatasource(Datasource):
    """A one-task datasource yielding one block per segment taken from ``queue``.

    Args:
        queue: The ``ray.util.queue.Queue`` the source actors put into.
        runs: ``{stream_id: ObjectRef}`` of each source actor's ``run``: a run that finished
            (or whose actor died) while the queue is empty has ended even without its marker.
    """

    def __init__(self, queue, runs: dict) -> None:
        super().__init__()
        self._queue = queue
        self._runs = runs

    def estimate_inmemory_data_size(self) -> int | None:
        return None  # unbounded by design

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None) -> list[ReadTask]:
        queue, runs = self._queue, dict(self._runs)

        def read():
            ended: set[str] = set()
            draining = False
            while True:
                try:
                    item = queue.get(timeout=1.0)
                except Empty:
                    if draining:
                        return  # every source ended and the queue is empty
                    pending = [runs[s] for s in runs if s not in ended]
                    done, _ = ray.wait(pending, num_returns=len(pending), timeout=0)
                    ended |= {s for s in runs if runs[s] in done}
                    draining = len(ended) == len(runs)  # one more empty poll: nothing left behind
                    continue
                if isinstance(item, tuple) and item[0] == _END:
                    ended.add(item[1])
                    draining = len(ended) == len(runs)
                    continue
                rec = ray.get(item[0])
                yield BlockAccessor.batch_to_block({k: _column(v) for k, v in rec.items()})

        meta = BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None)
        return [ReadTask(read, meta)]


def _column(value):
    """One-row column for a batch dict (arrays become a 1-element tensor column)."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return value[None]
    arr = np.empty(1, dtype=object) if value is None or isinstance(value, (str, bytes, list)) else None
    if arr is not None:
        arr[0] = value
        return arr
    return np.asarray([value])
