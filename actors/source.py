"""Source actors: decode streams and hold their new segments until the pipeline takes them.

Ray Data has no unbounded source, so ingestion is split in two:

* :class:`SourceActor` processes decode the sources (files, folder entries or live URLs). Each
  hosts several streams, every stream on its own thread at its own pace (PyAV releases the GIL
  while decoding, and a live stream mostly waits): one process per stream would spend more CPU
  starting up than decoding a minute of media, and a 2-core machine has no use for more
  decoding processes than cores. A stream feeds its aligner in order and puts each new segment
  on the actor's bounded in-process queue; a full queue blocks its streams — backpressure
  instead of unbounded buffering. With speech recognition on, a live stream's segment is queued
  once its words are final (see :meth:`SourceActor.run`);
* :class:`actors.queue_datasource.SegmentQueueDatasource` takes what is queued, a batch per
  call (:meth:`SourceActor.take`), into Ray Data. No separate queue actor: that was two more
  remote calls per segment.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque

import ray

# Light imports only (no torch, numba or lancedb): a source process just decodes.
from engine.align.cues import SegmentCueExtractor
from engine.errors import OmniAlignError
from engine.ingest.config import PipelineConfig
from engine.ingest.records import SegmentRecord
from engine.media.decode import SegmentReader
from engine.media.segment_views import token_view
from engine.media.transcripts import TranscriptSidecar

log = logging.getLogger(__name__)

#: Queue item a stream's source puts last: ``(END_MARKER, stream_id)``.
END_MARKER = "__end__"


@ray.remote
class SourceActor:
    """Decodes the streams handed to it, one thread per stream (see module doc).

    Create it with ``max_concurrency`` >= the number of streams it will run at once + 1 (for
    :meth:`take`).

    Args:
        config: Pipeline configuration (media settings, pacing, and ``sync.cues``: each stream's
            cues are extracted here with the aligners' settings, and only they go to its aligner).
        token_fps: Frames per second that get video tokens (the tokenizer's
            ``video_token_fps``): only those frames are shipped downstream.
    """

    def __init__(self, config: PipelineConfig, token_fps: float | None) -> None:
        self.config = config
        self.token_fps = token_fps
        self._out: queue.Queue = queue.Queue(maxsize=config.queue_max_segments)

    def take(self, max_items: int, timeout_s: float) -> list:
        """Up to ``max_items`` queued items: :class:`SegmentRecord` and ``(END_MARKER, stream_id)``.

        Waits up to ``timeout_s`` for the first (an empty list means none came), then takes
        only what is already there, so a caller never waits behind a slow stream.
        """
        try:
            items = [self._out.get(timeout=timeout_s)]
        except queue.Empty:
            return []
        while len(items) < max_items:
            try:
                items.append(self._out.get_nowait())
            except queue.Empty:
                break
        return items

    def run(self, stream_id: str, source_uri: str, aligner, skip_indexes: set[int], asr=None) -> dict:
        """Decodes one stream to its end; returns ``{stream_id, segments, skipped, error}``.

        Never raises for bad input (a media or input error of the source is returned, so one
        stream fails alone); any other exception is a bug: it is logged with its traceback and
        also ends only this stream.
        Segments in ``skip_indexes`` (already committed) still go to the aligner and the ASR
        actor (``asr``, None when ASR is off), so their state is the same as in a first run, but
        are not emitted again.
        """
        summary = {"stream_id": stream_id, "source_uri": source_uri, "segments": 0, "skipped": 0, "error": None}
        push = heard = None
        # The stream's cues are extracted here and only they (kilobytes) go to its aligner, not
        # the frames (megabytes); the extractor carries the stream's cue history across segments.
        cues = SegmentCueExtractor(self.config.sync.cues)
        live = self.config.live or "://" in source_uri  # URLs play in real time
        # A live stream's segments wait here until their words are final, not in the writer:
        # the writer is shared by every stream, and a batch waiting there for one stream's
        # words held back the rows of all the others (4 live streams: ASR added 6.6 s to the
        # median row's lag where the recognizer alone takes 2.6 s). A file keeps the writer
        # wait: holding its segments would keep megabytes of frames per segment here while a
        # 20 s batch of speech fills.
        hold = asr is not None and live
        held: deque[SegmentRecord] = deque()
        heard_upto = -1
        try:
            sidecar = TranscriptSidecar(source_uri)
            with SegmentReader(source_uri, self.config.media_config(), stream_id) as reader:
                for seg in reader:
                    # One push in flight: an asyncio actor may run queued calls out of order, and
                    # the tracker needs segments in order. Aligning a segment takes milliseconds.
                    if push is not None:
                        ray.get(push)
                    push = aligner.push.remote(stream_id, cues.extract(seg))
                    if asr is not None:
                        # Also one call in flight; recognition of this segment overlaps the
                        # decoding of the next, and a slower recognizer holds decoding back
                        # (backpressure, not a growing backlog).
                        if heard is not None:
                            heard_upto = max([heard_upto, *ray.get(heard)])
                        heard = asr.push.remote(stream_id, seg.index, seg.t_start_us, seg.t_end_us, seg.audio,
                                                seg.is_final, live)
                        if hold:
                            # A live source is paced by the clock, so waiting for the push
                            # costs it nothing and its finished segments go out at once.
                            heard_upto, heard = max([heard_upto, *ray.get(heard)]), None
                    if seg.index not in skip_indexes:
                        rec = SegmentRecord(token_view(seg, self.token_fps), source_uri, sidecar.text(seg), time.time())
                        if hold:
                            held.append(rec)
                        else:
                            self._out.put(rec)  # blocks while the queue is full (backpressure)
                        summary["segments"] += 1
                    else:
                        summary["skipped"] += 1
                    while held and held[0].segment.index <= heard_upto:
                        self._out.put(held.popleft())
            if push is not None:
                ray.get(push)
            if heard is not None:
                ray.get(heard)
        except OmniAlignError as exc:  # bad input (MediaError, InvalidInputError, ...): this stream fails with its reason
            summary["error"] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug, not bad input: keep the traceback, still fail alone
            log.exception("stream %s (%s) failed with an unexpected error", stream_id, source_uri)
            summary["error"] = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            try:
                # The stream's estimates are complete before anyone hears that it ended (also
                # when decoding failed with a push still in flight).
                if push is not None and summary["error"] is not None:
                    ray.wait([push])
                if heard is not None and summary["error"] is not None:
                    ray.wait([heard])
                ray.get(aligner.finish.remote(stream_id))
                if asr is not None:
                    ray.get(asr.finish.remote(stream_id))
            finally:
                while held:  # nothing accepted is lost: without words if it must be
                    self._out.put(held.popleft())
                self._out.put((END_MARKER, stream_id))
        return summary
