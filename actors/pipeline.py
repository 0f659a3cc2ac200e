"""Builds and runs the streaming ingest pipeline on Ray (Ray Data + actors).

    sources ──▶ SourceActor(s) ──take──▶ SegmentQueueDatasource
               (a thread per stream)            │ one block per take
                      │ (in order)              ▼
                      ▼                  TokenizeSegments (actor pool, autoscaling, GPU when present)
                AlignerActor(s)                 │
            (per-stream SyncTracker) ◀──────  WriteRows: attaches each row's estimate, then
                                     estimate_for  commits to LanceDB (merge_insert, exactly once)

Everything distributed is a Ray actor, task or Ray Data operator: pointed at a cluster
(``ray.init(address=...)``) the same code spreads over its nodes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import ray

from actors.aligner import AlignerActor, aligner_for
from actors.asr import AsrActor, asr_for
from actors.queue_datasource import SegmentQueueDatasource
from actors.source import SourceActor
from actors.tokenizer import TokenizeSegments, tokenizer_resources
from actors.writer import WriteRows
from engine.errors import InvalidInputError
from engine.ingest.pipeline import (
    PipelineConfig,
    StreamResult,
    expand_sources,
    install_anchor_adapters,
    store_config_for,
)
from engine.ingest.records import CommitRecord, unpack_records
from engine.media.sources import default_stream_id
from engine.store.table import SegmentStore, StoreConfig
from engine.tokenize.tokenizer import Tokenizer
from omnialign.metrics import IngestMetrics

#: Blocks the read task may run ahead of the executor (see _build_dataset).
_READ_AHEAD_BLOCKS = 4

#: Block size target while ingesting: smaller than any segment record (128 KB of audio alone).
_STREAMING_BLOCK_BYTES = 64 * 1024

#: CPUs of the read task and of the writer actor (light: they move records, the tokenizers work).
_READ_NUM_CPUS = 0.05
_WRITER_NUM_CPUS = 0.1


#: Bundles of :func:`pipeline_bundles`: the driver, read task, writer, sources and aligners; the
#: tokenizer pool at its maximum.
HEAD_BUNDLE, TOKENIZER_BUNDLE = 0, 1


def pipeline_bundles(config: PipelineConfig, driver_num_cpus: float = 0.0) -> list[dict[str, float]]:
    """The resources one :func:`run_ingest` of a single stream requests, as two placement-group
    bundles (see :data:`HEAD_BUNDLE`). A caller that reserves them at once never has two
    pipelines each holding part of what both need (a deadlock on a full cluster). Each stage is
    pinned to its bundle: with "any bundle", a read task that started first could take part of a
    tokenizer's share and leave the tokenizer nowhere to go (seen: a stream stuck at 0 rows)."""
    c = _stateful_cpus(config)
    head = {"CPU": driver_num_cpus + c(_READ_NUM_CPUS) + c(_WRITER_NUM_CPUS) + c(config.source_num_cpus)}
    # read task, writer, source, aligner (+ ASR actors) each ask for the stateful resources
    stateful = 4 + (config.asr_actors if config.asr is not None else 0)
    head.update({name: amount * stateful for name, amount in config.stateful_resources})
    if config.asr is not None:
        head["CPU"] += config.asr_actors * c(config.asr_num_cpus)
        if config.asr_num_gpus:
            head["GPU"] = config.asr_actors * config.asr_num_gpus
    n = config.tokenizer_max_actors
    tok = {{"num_cpus": "CPU", "num_gpus": "GPU"}[k]: v * n
           for k, v in tokenizer_resources(config.tokenizer_num_cpus, config.tokenizer_num_gpus).items() if v}
    return [head, tok] if tok else [head]


def _stateful(config: PipelineConfig) -> dict:
    """Ray options of the stages that hold a stream's state (see ``PipelineConfig.stateful_resources``)."""
    return {"resources": dict(config.stateful_resources)} if config.stateful_resources else {}


def _stateful_cpus(config: PipelineConfig) -> Callable[[float], float]:
    """CPUs a stateful stage asks for: its share, or none where the stateful resources stand in
    for it. Nodes that offer those resources (a head started with ``--num-cpus=0``, as Ray
    advises for large clusters) then never take a tokenizer, and a tokenizer pool that started
    first can never leave the writer without a place (seen: an ingest waiting forever)."""
    return (lambda cpus: 0.0) if config.stateful_resources else (lambda cpus: cpus)


def _placement(placement_group, bundle: int) -> dict:
    """Ray options that put an actor or task into ``bundle`` of the group (none without one)."""
    if placement_group is None:
        return {}
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    return {"scheduling_strategy": PlacementGroupSchedulingStrategy(
        placement_group, placement_group_bundle_index=bundle, placement_group_capture_child_tasks=False)}


@dataclass
class IngestSummary:
    """Outcome of an ingest run."""

    streams: list[StreamResult] = field(default_factory=list)
    rows_total: int = 0
    media_s: float = 0.0
    wall_s: float = 0.0
    asr_model: dict | None = None

    @property
    def realtime_factor(self) -> float:
        return self.media_s / self.wall_s if self.wall_s > 0 else 0.0

    def to_json(self) -> dict:
        keys = ("stream_id", "source_uri", "segments_written", "offset_ms", "drift_ppm", "confidence")
        streams = []
        for s in self.streams:
            d = {k: getattr(s, k) for k in keys}
            if s.error:
                d["error"] = s.error
            if s.segments_failed:
                d["segments_failed"] = s.segments_failed
            streams.append(d)
        return {"streams": streams, "rows_total": self.rows_total, "wall_s": round(self.wall_s, 3),
                "realtime_factor": round(self.realtime_factor, 2)}


def run_ingest(sources: Sequence[str], config: PipelineConfig,
               on_row: Callable[[CommitRecord, IngestSummary], None] | None = None,
               stream_ids: dict[str, str] | None = None, placement_group=None) -> IngestSummary:
    """Ingests ``sources`` into the LanceDB table; Ray must already be initialized.

    Args:
        sources: Files, folders (expanded to their media files) and live URLs.
        config: Pipeline configuration.
        on_row: Called in the driver with every segment's :class:`CommitRecord` (progress display).
        stream_ids: Stream id per source (as expanded; e.g. the id a client gave over HTTP);
            sources not in it get :func:`engine.media.sources.default_stream_id`.
        placement_group: Run every actor and task of the pipeline in this group, made of
            :func:`pipeline_bundles` (None: anywhere in the cluster).

    Returns:
        Per-stream results (a bad source fails alone, with its error) and totals.
    """
    t0 = time.monotonic()
    sources = expand_sources(sources)
    if not sources:
        raise InvalidInputError("sources", "no media sources given (folders contained no media files)")
    if config.asr is not None:
        from engine.asr.model import check_speech_model

        check_speech_model(config.asr)  # a missing model: one typed error before anything starts
    tokenizer = Tokenizer.load(config.codebooks_dir)
    store = SegmentStore(store_config_for(config, tokenizer))  # creates the table once, up front
    anchor_modalities = install_anchor_adapters(config, store)  # a misfit adapter: an error before any stream
    metrics = IngestMetrics(config.metrics_port)
    summary = IngestSummary()
    by_id: dict[str, StreamResult] = {}
    for uri in sources:
        sid = (stream_ids or {}).get(uri) or default_stream_id(uri)
        if sid in by_id:
            continue  # the same source twice is one stream
        by_id[sid] = StreamResult(stream_id=sid, source_uri=uri)
    summary.streams = list(by_id.values())

    aligners = None
    asr: list = []
    actors: list = []
    try:
        head = {**_placement(placement_group, HEAD_BUNDLE), **_stateful(config)}
        cpus = _stateful_cpus(config)
        aligners = [AlignerActor.options(num_cpus=0, **head).remote(config.sync, config.sync_window_s, config.fault_injection,
                                                                 config.settle_segments)
                    for _ in range(max(1, min(config.aligner_actors, len(by_id))))]
        if config.asr is not None:
            asr = [AsrActor.options(num_cpus=cpus(config.asr_num_cpus), num_gpus=config.asr_num_gpus, **head).remote(config.asr)
                   for _ in range(max(1, min(config.asr_actors, len(by_id))))]
            # Not awaited here: the ASR actors load their models while the sources, tokenizers
            # and writer start, and the sources' first pushes queue on them meanwhile. (Together
            # with MiniLM's faster load, a 2-core run's first row came ~17 s after the start, not ~27.)
            asr_info = asr[0].model_info.remote()
        runs, hosted = {}, {}
        per_actor = config.streams_per_source_actor
        run_id = uuid.uuid4().hex[:8]
        for i, s in enumerate(summary.streams):
            if i % per_actor == 0:
                # Named after the streams it decodes (unique per run): `ray list actors` tells
                # which process holds which streams.
                name = f"omnialign-source:{run_id}:" + "+".join(x.stream_id for x in summary.streams[i:i + per_actor])
                actors.append(SourceActor.options(num_cpus=cpus(config.source_num_cpus), max_concurrency=per_actor + 1,
                                                  name=name[:1000], **head)
                              .remote(config, tokenizer.config.video_token_fps))
                hosted[actors[-1]] = []
            hosted[actors[-1]].append(s.stream_id)
            runs[s.stream_id] = actors[-1].run.remote(s.stream_id, s.source_uri, aligner_for(aligners, s.stream_id),
                                                      store.committed_indexes(s.stream_id),
                                                      asr_for(asr, s.stream_id) if asr else None)
        ds = _build_dataset(hosted, runs, aligners, asr, config, store.config, placement_group, anchor_modalities)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
            for row in unpack_records(batch):
                s = by_id[row.stream_id]
                metrics.observe_commit(row)
                if row.error is not None:
                    s.segments_failed += 1
                    s.error = row.error
                    continue
                s.segments_written += 1
                summary.rows_total += 1
                summary.media_s += (row.t_end_us - row.t_start_us) / 1e6
                metrics.realtime_factor.set(summary.media_s / max(time.monotonic() - t0, 1e-9))
                if on_row is not None:
                    on_row(row, summary)
        for sid, ref in runs.items():
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the source actor itself died
                by_id[sid].error = f"source actor failed: {type(exc).__name__}"
                continue
            by_id[sid].segments_skipped = result["skipped"]
            if result["error"]:
                by_id[sid].error = result["error"]
        if asr:
            summary.asr_model = ray.get(asr_info)
        for s in summary.streams:
            if asr:
                s.asr = ray.get(asr_for(asr, s.stream_id).stats.remote(s.stream_id))
            est = ray.get(aligner_for(aligners, s.stream_id).current.remote(s.stream_id))
            s.offset_ms, s.drift_ppm, s.confidence = est.offset_ms, est.drift_ppm, est.confidence
            if s.offset_ms is not None:
                metrics.sync_offset.labels(s.stream_id).set(s.offset_ms)
                metrics.sync_drift.labels(s.stream_id).set(s.drift_ppm)
                metrics.sync_confidence.labels(s.stream_id).set(s.confidence)
        store.ensure_indexes(fold_all=True)
        if anchor_modalities:
            from engine.store.anchors import ensure_anchor_index

            ensure_anchor_index(config.db_dir)
    finally:
        for a in [*actors, *(aligners or []), *asr]:
            ray.kill(a)
        metrics.close()
    summary.wall_s = time.monotonic() - t0
    return summary


def _build_dataset(sources: dict, runs: dict, aligners: list, asr: list, config: PipelineConfig,
                   store_config: StoreConfig, placement_group, anchor_modalities: tuple[str, ...] = ()) -> ray.data.Dataset:
    """source actors → tokenize (autoscaling actor pool) → attach alignment and write."""
    # Ray Data holds a read task's output until a block reaches target_max_block_size; below one
    # segment's size every taken batch is released downstream at once (streaming). Ray copies the
    # current DataContext into a dataset when it is created, so the setting is made for that
    # moment only and the caller's context is left as it was.
    ctx = ray.data.DataContext.get_current()
    saved_block_bytes = ctx.target_max_block_size
    ctx.target_max_block_size = _STREAMING_BLOCK_BYTES
    try:
        return _operators(sources, runs, aligners, asr, config, store_config, placement_group, anchor_modalities)
    finally:
        ctx.target_max_block_size = saved_block_bytes


def _operators(sources: dict, runs: dict, aligners: list, asr: list, config: PipelineConfig,
               store_config: StoreConfig, placement_group, anchor_modalities: tuple[str, ...]) -> ray.data.Dataset:
    head = {**_placement(placement_group, HEAD_BUNDLE), **_stateful(config)}
    tok = _placement(placement_group, TOKENIZER_BUNDLE)
    # The tokenizer pool starts at its maximum: an actor the autoscaler adds later starts (imports
    # torch, loads codebooks) exactly when the pipeline is busiest, which measured slower; the
    # autoscaler still scales idle actors down to the minimum. But not more actors than streams:
    # one tokenizer outpaces one stream's other stages on a core, and on a small machine each
    # extra actor's start-up (~3 CPU s) delays the first rows.
    initial = max(config.tokenizer_min_actors, min(config.tokenizer_max_actors, len(runs)))
    # max_retries=0: a re-run read task would start draining with no memory of the markers and
    # segments it had already taken from the sources; better to fail loudly.
    # _generator_backpressure_num_objects: Ray Data lets a read task run only 2 blocks ahead of
    # the executor by default, and takes a read task's blocks a few per scheduling round; a few
    # more keep the tokenizers fed. Memory stays bounded: a block holds at most one take() of
    # segments (see actors/queue_datasource.py), and the sources' queues hold
    # queue_max_segments each (2 objects per block: the block and its metadata).
    # Ray 2.60 deprecates ray_remote_args for the named read parameters, but those are only
    # label_selector, fallback_strategy, max_calls, resources, accelerator_type and runtime_env:
    # max_retries and the generator backpressure have no named form yet. So the dict stays, and
    # its deprecation warning is silenced for this one call (revisit before Ray 2.64 removes it).
    import warnings

    from ray.util.annotations import RayDeprecationWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated", category=RayDeprecationWarning)
        ds = ray.data.read_datasource(SegmentQueueDatasource(sources, runs), override_num_blocks=1,
                                      num_cpus=_stateful_cpus(config)(_READ_NUM_CPUS),
                                      ray_remote_args={"max_retries": 0, **head,
                                                       "_generator_backpressure_num_objects": 2 * _READ_AHEAD_BLOCKS})
    ds = ds.map_batches(TokenizeSegments, batch_size=1,
                        fn_constructor_kwargs={"codebooks_dir": config.codebooks_dir, "fault_injection": config.fault_injection,
                                               "image_encoder": config.image_encoder},
                        compute=ray.data.ActorPoolStrategy(min_size=config.tokenizer_min_actors, max_size=config.tokenizer_max_actors,
                                                           initial_size=initial),
                        **tokenizer_resources(config.tokenizer_num_cpus, config.tokenizer_num_gpus), **tok)
    # batch_size=1: one packed row (one take's segments) per call; WriteRows commits it in chunks
    # of writer_batch_rows segments.
    return ds.map_batches(WriteRows, batch_size=1,
                          fn_constructor_kwargs={"config": config, "store_config": store_config, "aligners": aligners,
                                               "asr_actors": asr or None, "anchor_modalities": anchor_modalities},
                          compute=ray.data.ActorPoolStrategy(size=1), num_cpus=_stateful_cpus(config)(_WRITER_NUM_CPUS), **head)
