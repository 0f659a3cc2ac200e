"""The ingest pipeline's definition: configuration, stage functions and a single-process loop.

Stages, in order (each a pure function here; ``actors/pipeline.py`` runs them on Ray):

1. **decode**: :class:`~engine.media.decode.SegmentReader` cuts a source into segments at the working
   resolution (and attaches sidecar transcript text);
2. **align**: a per-stream :class:`~engine.align.sync.SyncTracker` refines offset / drift / warp as
   segments arrive, in order;
3. **tokenize**: features → RVQ codes → compression, embeddings, keyframe thumbnails
   (:func:`engine.ingest.records.tokenize_records`);
4. **write**: :class:`~engine.store.table.SegmentStore` commits rows idempotently on
   ``(stream_id, segment_index)``.

:func:`run_local` chains them in one process with no Ray: it is the reference the Ray pipeline is
benchmarked against, and a debugging aid.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import InvalidInputError, MediaError, OmniAlignError
from engine.media.decode import MediaConfig, SegmentReader
from engine.ingest.records import null_to_none, segment_to_record
from engine.media.sources import default_stream_id
from engine.media.transcripts import TranscriptSidecar

# Only what every stage needs is imported here: source actors and the aligner unpickle a
# PipelineConfig, so this module must not drag torch (tokenizer), numba or lancedb into them.
# The stage functions below import their heavy parts where they run.
if TYPE_CHECKING:
    from engine.store.table import SegmentRow, SegmentStore, StoreConfig
    from engine.align.sync import SyncEstimate
    from engine.tokenize.tokenizer import Tokenizer

#: Written on every row; bump when the meaning of a column changes.
PIPELINE_VERSION = "1"

#: Media extensions picked up when a folder is given as a source.
MEDIA_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".ts", ".avi", ".wav", ".flac", ".ogg", ".mp3", ".m4a")


@dataclass(frozen=True)
class PipelineConfig:
    """Everything an ingest run needs.

    Attributes:
        db_dir: LanceDB folder.
        codebooks_dir: Tokenizer folder (``omnialign rvq fit``).
        table: Table name.
        segment_s: Segment length in seconds.
        work_width_px: Frames are decoded at this width (features and thumbnails need no more).
        work_height_px: ... and this height.
        video_max_fps: Keep at most this many frames per second (None: all).
        live: Read files at real-time speed (a file then behaves like a live source).
        sync_window_s: Cue window of each stream's sync tracker.
        tokenizer_min_actors: Tokenizer actor pool lower bound (autoscaling).
        tokenizer_max_actors: Tokenizer actor pool upper bound.
        tokenizer_num_cpus: CPUs per tokenizer actor (fractional, so 2 cores never deadlock).
        tokenizer_num_gpus: GPUs per tokenizer actor (0 on CPU machines; fractional allowed).
        source_num_cpus: CPUs reserved per source (decode) actor. 0 by default: a reservation
            per stream would leave no CPU for the tokenizer pool once there are many streams
            (a folder of files), and decoding a live stream is paced by the stream anyway.
        streams_per_source_actor: Streams one source (decode) actor hosts, each on its own
            thread; more streams start more actors (on a cluster, spread over its nodes). Few
            decode processes cost the least CPU: on 2 cores, 8 streams ran at 47x real time in
            one actor and 32x in eight (process start-up, GIL hand-offs, cache contention). A
            Python error fails only its stream, but a native crash (or OOM kill) of the process
            fails every stream it hosts: 1 isolates each stream in its own process.
        aligner_actors: Per-stream sync state lives in this many actors, a stream always routed
            to the same one (hash of its id).
        writer_batch_rows: Rows per LanceDB commit (each commit is a table version).
        queue_max_segments: Decoded segments each source actor holds until the pipeline takes
            them; a full queue blocks its streams (backpressure, bounded memory: at most about
            source actors x this many segments queued, plus a few taken batches the read task holds
            ahead of tokenization).
        index_every_rows: The writer refreshes search indexes after this many new rows.
        metrics_port: Serve Prometheus metrics on this port (None: off).
        fault_injection: Test hook: ``((stage, segment_index, marker_path), ...)``; each makes
            that stage's actor exit once at that segment (see ``actors/faults.py``).
    """

    db_dir: str
    codebooks_dir: str
    table: str = "segments"
    segment_s: float = 2.0
    work_width_px: int = 160
    work_height_px: int = 120
    video_max_fps: float | None = None
    live: bool = False
    sync_window_s: float = 20.0
    tokenizer_min_actors: int = 1
    tokenizer_max_actors: int = 2
    tokenizer_num_cpus: float = 0.5
    tokenizer_num_gpus: float = 0.0
    source_num_cpus: float = 0.0
    streams_per_source_actor: int = 8
    aligner_actors: int = 1
    writer_batch_rows: int = 4
    queue_max_segments: int = 16
    index_every_rows: int = 200
    metrics_port: int | None = None
    fault_injection: tuple[tuple[str, int, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("streams_per_source_actor", "queue_max_segments", "writer_batch_rows", "aligner_actors"):
            if getattr(self, name) < 1:
                raise InvalidInputError(name, f"must be >= 1, got {getattr(self, name)}")
        if not 1 <= self.tokenizer_min_actors <= self.tokenizer_max_actors:
            raise InvalidInputError("tokenizer_min_actors/tokenizer_max_actors",
                                    f"need 1 <= min <= max, got {self.tokenizer_min_actors}..{self.tokenizer_max_actors}")

    def media_config(self) -> MediaConfig:
        return MediaConfig(segment_s=self.segment_s, video_width=self.work_width_px,
                           video_height=self.work_height_px, video_max_fps=self.video_max_fps, pace=self.live)


def expand_sources(sources: Sequence[str]) -> list[str]:
    """Expands folders into the media files inside them (sorted); other sources pass through."""
    out: list[str] = []
    for s in sources:
        p = Path(s)
        if "://" not in s and p.is_dir():
            out += sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in MEDIA_EXTENSIONS and f.is_file())
        else:
            out.append(s)
    return out


def store_config_for(config: PipelineConfig, tokenizer: Tokenizer) -> StoreConfig:
    """The table shape this tokenizer's rows need."""
    from engine.store.table import StoreConfig
    from engine.store.text_embed import TEXT_EMB_DIM

    return StoreConfig(db_dir=config.db_dir, table=config.table,
                       audio_emb_dim=tokenizer.audio_embedding_dim, video_emb_dim=tokenizer.video_embedding_dim,
                       text_emb_dim=TEXT_EMB_DIM, audio_num_quantizers=tokenizer.config.audio_quantizers,
                       video_num_quantizers=tokenizer.config.video_quantizers)


# -- stage: decode: engine.media.decode.SegmentReader, engine.media.segment_views, engine.media.transcripts ---------
# -- stage: align ------------------------------------------------------------------------------
def alignment_columns(est: SyncEstimate | None) -> dict:
    """Row columns of a sync estimate (all None / empty when there is none yet)."""
    if est is None:
        return {"av_offset_ms": None, "drift_ppm": None, "sync_confidence": None, "warp": np.zeros((0, 2))}
    return {"av_offset_ms": float(est.offset_ms), "drift_ppm": float(est.drift_ppm),
            "sync_confidence": float(est.confidence), "warp": np.asarray(est.warp, np.float64).reshape(-1, 2)}


# -- stage: write ------------------------------------------------------------------------------
def record_to_row(rec: dict, store_config: StoreConfig) -> SegmentRow:
    """The store row of a tokenized, aligned record."""
    from engine.store.table import SegmentRow

    def arr(key, dtype, *shape):
        v = rec.get(key)
        if v is None or np.ndim(v) == 0:  # None, or a null spelled NaN by the batch format
            return np.zeros(shape or (0,), dtype)
        return np.asarray(v, dtype).reshape((-1, *shape[1:]) if shape else (-1,))

    def vec(key):
        v = rec.get(key)
        if v is None or np.ndim(v) == 0 or np.size(v) == 0:  # absent: None, NaN or empty
            return None
        return np.asarray(v, np.float32)

    q_a, q_v = store_config.audio_num_quantizers, store_config.video_num_quantizers
    warp = rec.get("warp")
    return SegmentRow(
        stream_id=str(rec["stream_id"]), segment_index=int(rec["segment_index"]),
        t_start_us=int(rec["t_start_us"]), t_end_us=int(rec["t_end_us"]), source_uri=str(rec["source_uri"]),
        audio_codes=arr("audio_codes", np.int16, 0, q_a), audio_t_us=arr("audio_t_us", np.int64),
        audio_dur_us=arr("audio_dur_us", np.int64), video_codes=arr("video_codes", np.int16, 0, q_v),
        video_t_us=arr("video_token_t_us", np.int64), video_row=arr("video_row", np.int16),
        video_col=arr("video_col", np.int16), keyframe_t_us=arr("keyframe_t_us", np.int64),
        keyframe_jpeg=[bytes(b) for b in _seq(rec.get("keyframe_jpeg"))],
        av_offset_ms=_float_or_none(rec.get("av_offset_ms")), drift_ppm=_float_or_none(rec.get("drift_ppm")),
        sync_confidence=_float_or_none(rec.get("sync_confidence")),
        warp=np.asarray([np.asarray(p, np.float64) for p in _seq(warp)], np.float64).reshape(-1, 2),
        audio_emb=vec("audio_emb"), video_emb=vec("video_emb"), text_emb=vec("text_emb"),
        transcript=null_to_none(rec.get("transcript")), codebook_version=str(rec.get("codebook_version") or ""),
        pipeline_version=PIPELINE_VERSION,
    )


def _seq(v) -> list:
    """A list-like column value (list, numpy object array, None) as a list."""
    v = null_to_none(v)
    return [] if v is None else list(v)


def _float_or_none(v) -> float | None:
    v = null_to_none(v)
    return None if v is None else float(v)


# -- the single-process loop -------------------------------------------------------------------
@dataclass
class StreamResult:
    """Outcome of one source: rows written and the last sync estimate, or its error.

    ``stage_s`` (seconds per stage) is filled by the single-process loop only; on Ray the stages
    overlap and are observed as latencies (metrics) instead.
    """

    stream_id: str
    source_uri: str
    segments_written: int = 0
    segments_skipped: int = 0
    segments_failed: int = 0
    offset_ms: float | None = None
    drift_ppm: float | None = None
    confidence: float | None = None
    error: str | None = None
    stage_s: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "align": 0.0, "tokenize": 0.0, "write": 0.0})


def _timed(it: Iterator, acc: dict, key: str) -> Iterator:
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        finally:
            acc[key] += time.perf_counter() - t0
        yield item


def run_local(sources: Sequence[str], config: PipelineConfig, stream_id: str | None = None) -> list[StreamResult]:
    """Runs every stage in this process, one source after the other (no Ray).

    Args:
        sources: Files, folders or URLs.
        config: Pipeline settings.
        stream_id: Stream id for a single source (default :func:`engine.media.sources.default_stream_id`).
    """
    from engine.ingest.records import tokenize_records
    from engine.store.table import SegmentStore
    from engine.align.tracker import SyncTracker
    from engine.tokenize.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(config.codebooks_dir)
    store = SegmentStore(store_config_for(config, tokenizer))
    expanded = expand_sources(sources)
    if stream_id is not None and len(expanded) != 1:
        raise InvalidInputError("stream_id", f"given for {len(expanded)} sources; it names exactly one")
    results = []
    for source in expanded:
        res = StreamResult(stream_id=stream_id or default_stream_id(source), source_uri=source)
        results.append(res)
        try:
            done = store.committed_indexes(res.stream_id)
            sidecar = TranscriptSidecar(source)
            tracker = SyncTracker(window_s=config.sync_window_s)
            batch: list[dict] = []
            with SegmentReader(source, config.media_config(), res.stream_id) as reader:
                for seg in _timed(iter(reader), res.stage_s, "decode"):
                    t0 = time.perf_counter()
                    est = tracker.push(seg)
                    res.stage_s["align"] += time.perf_counter() - t0
                    if seg.index in done:
                        res.segments_skipped += 1
                        continue
                    rec = {**segment_to_record(tokenizer.token_view(seg), source), "transcript": sidecar.text(seg) or "", **alignment_columns(est)}
                    t0 = time.perf_counter()
                    (tok,) = tokenize_records(tokenizer, [rec])
                    res.stage_s["tokenize"] += time.perf_counter() - t0
                    if tok["error"]:
                        res.segments_failed += 1  # counted, reported, never written half-empty
                        res.error = tok["error"]
                        continue
                    batch.append(tok)
                    if len(batch) >= config.writer_batch_rows or seg.is_final:
                        res.segments_written += _write(store, batch, res)
                        batch = []
                res.segments_written += _write(store, batch, res)
            final = tracker.estimate()
            res.offset_ms, res.drift_ppm, res.confidence = final.offset_ms, final.drift_ppm, final.confidence
        except (MediaError, OmniAlignError) as exc:
            res.error = f"{type(exc).__name__}: {exc}"
    store.ensure_indexes()
    return results


def _write(store: SegmentStore, batch: list[dict], res: StreamResult) -> int:
    if not batch:
        return 0
    t0 = time.perf_counter()
    written = store.write([record_to_row(r, store.config) for r in batch]).inserted
    res.stage_s["write"] += time.perf_counter() - t0
    return written
