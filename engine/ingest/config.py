"""The ingest pipeline's one configuration, shared by the Ray pipeline, its actors and the
reference loop (sources and aligners unpickle it, so it imports nothing heavy)."""

from __future__ import annotations

import math

from dataclasses import dataclass, field

from engine.align.config import SyncConfig
from engine.asr.config import AsrConfig
from engine.errors import InvalidInputError
from engine.media.decode import MediaConfig


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
        sync: Sync estimation settings: the sources extract cues with ``sync.cues``, the
            aligners' trackers estimate with all of it.
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
        aligner_wait_s: How long the writer waits for a segment's own sync estimate before the
            row takes the stream's newest one (``sync_status = "fallback"``).
        sync_settle_s: A row is stamped with the stream's sync estimate this much stream time
            after its segment (rounded up to whole segments; at the stream's end, the last):
            more evidence, and the warp still covers the segment. On a live stream rows are
            written this much later; 0 stamps each row with the estimate in force at once.
        image_encoder: Pretrained encoder of each segment's keyframes into ``image_emb``
            (``efficientnet-lite0`` or ``hf:<folder>``); None: off.
        asr: Speech recognition settings; None turns ASR off (``--no-asr``).
        asr_actors: Per-stream recognizers live in this many actors (hash of the stream id).
        asr_num_cpus: CPUs reserved per ASR actor: a scheduling share, not a thread count (it
            runs ``asr.cpu_threads`` threads, idle between utterances). 0.1 is what one
            real-time stream of speech costs (measured 0.05 CPU-s per audio s,
            ``benchmarks/understanding.py``), and lets one HTTP stream's whole pipeline (its
            placement group) fit on 2 cores beside the Serve replicas and the LLM engine.
        asr_num_gpus: GPUs per ASR actor (then faster-whisper runs float16 on CUDA).
        asr_wait_s: How long the writer waits for a segment's words before writing the row
            without them (only after an ASR actor restart or on a machine far too slow).
        stateful_resources: Custom Ray resources, ``((name, amount), ...)``, that the stages
            holding a stream's state ask for: the sources, aligners, ASR actors, the read task
            and the writer. Offer the resource only on nodes that stay (the head, on-demand
            rather than spot nodes) and an autoscaler may then remove any other node mid-stream:
            only tokenizers live there, and their work is retried elsewhere. The resources then
            stand in for those stages' CPU shares (they ask for no CPUs), so a stable node
            with no CPUs (a head started with ``--num-cpus=0``) never takes a tokenizer.
            Empty: anywhere.
        anchor_adapters: Trained adapter folders (``omnialign train stage1``), at most one per
            modality: the writer embeds each committed row's ``image_emb`` / ``audio_enc_emb``
            into the text anchor space (table ``anchors``), so rows are searchable with
            ``--target`` as they land. The adapters are copied into the DB first.
    """

    db_dir: str
    codebooks_dir: str
    table: str = "segments"
    segment_s: float = 2.0
    work_width_px: int = 160
    work_height_px: int = 120
    video_max_fps: float | None = None
    live: bool = False
    sync: SyncConfig = field(default_factory=SyncConfig)
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
    aligner_wait_s: float = 30.0
    sync_settle_s: float = 4.0
    image_encoder: str | None = "efficientnet-lite0"
    asr: AsrConfig | None = field(default_factory=AsrConfig)
    asr_actors: int = 1
    asr_num_cpus: float = 0.1
    asr_num_gpus: float = 0.0
    asr_wait_s: float = 300.0
    stateful_resources: tuple[tuple[str, float], ...] = ()
    anchor_adapters: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("segment_s", "sync_window_s", "aligner_wait_s", "asr_wait_s"):
            if getattr(self, name) <= 0:
                raise InvalidInputError(name, f"must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.sync_settle_s < self.aligner_wait_s:
            raise InvalidInputError("sync_settle_s", f"must be in [0, aligner_wait_s = {self.aligner_wait_s}), "
                                    f"got {self.sync_settle_s}")
        if self.settle_segments >= self.queue_max_segments:
            # The writer waits for a segment that far ahead; its source must not block before.
            raise InvalidInputError("sync_settle_s", f"must be under queue_max_segments x segment_s = "
                                    f"{self.queue_max_segments * self.segment_s:g} s, got {self.sync_settle_s}")
        # The tracker's coarse search needs room for the largest offset on both sides.
        min_window_s = 4 * (self.sync.max_offset_ms + self.sync.search_ms) / 1000.0
        if self.sync_window_s < min_window_s:
            raise InvalidInputError("sync_window_s", f"must be >= 4 x (sync.max_offset_ms + sync.search_ms) = "
                                    f"{min_window_s:.1f} s, got {self.sync_window_s}")
        for name in ("tokenizer_num_cpus", "tokenizer_num_gpus", "source_num_cpus", "asr_num_cpus", "asr_num_gpus"):
            if getattr(self, name) < 0:
                raise InvalidInputError(name, f"must be >= 0, got {getattr(self, name)}")
        for name in ("streams_per_source_actor", "queue_max_segments", "writer_batch_rows", "aligner_actors",
                     "asr_actors"):
            if getattr(self, name) < 1:
                raise InvalidInputError(name, f"must be >= 1, got {getattr(self, name)}")
        for item in self.stateful_resources:
            if (not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], str) or not item[0]
                    or item[0] in ("CPU", "GPU", "memory") or not isinstance(item[1], (int, float)) or not item[1] > 0):
                raise InvalidInputError("stateful_resources", f"expected ((name, amount > 0), ...) of custom resources, "
                                        f"got {self.stateful_resources!r}")
        if not isinstance(self.anchor_adapters, tuple) or not all(isinstance(a, str) and a for a in self.anchor_adapters):
            raise InvalidInputError("anchor_adapters", f"expected a tuple of adapter folders, got {self.anchor_adapters!r}")
        if not 1 <= self.tokenizer_min_actors <= self.tokenizer_max_actors:
            raise InvalidInputError("tokenizer_min_actors/tokenizer_max_actors",
                                    f"need 1 <= min <= max, got {self.tokenizer_min_actors}..{self.tokenizer_max_actors}")

    @property
    def settle_segments(self) -> int:
        """``sync_settle_s`` in whole segments."""
        return int(math.ceil(self.sync_settle_s / self.segment_s - 1e-9))

    def media_config(self) -> MediaConfig:
        """How sources are decoded for ingest (working resolution, frame rate cap, pacing)."""
        return MediaConfig(segment_s=self.segment_s, video_width=self.work_width_px,
                           video_height=self.work_height_px, video_max_fps=self.video_max_fps, pace=self.live)
