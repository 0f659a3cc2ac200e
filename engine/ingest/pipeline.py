"""The ingest pipeline's stages as plain functions, and the single-process reference loop.

Stages, in order (``actors/pipeline.py`` runs them on Ray; records in :mod:`engine.ingest.records`):

1. **decode**: :class:`~engine.media.decode.SegmentReader` cuts a source into segments at the
   working resolution; sidecar transcripts are attached → :class:`SegmentRecord`;
2. **align**: a per-stream :class:`~engine.align.tracker.SyncTracker` refines offset / drift /
   warp as segments arrive, in order → :class:`Alignment`;
3. **tokenize**: features → RVQ codes → compression, embeddings, keyframe thumbnails
   (:func:`engine.ingest.tokenize_stage.tokenize_records`) → :class:`TokenRecord`;
4. **write**: :func:`engine.ingest.records.record_to_row` → :class:`~engine.store.table.SegmentStore`
   commits rows idempotently on ``(stream_id, segment_index)``.

:func:`run_local` chains them in one process with no Ray: it is the reference the Ray pipeline is
benchmarked against (``benchmarks/ingest.py``), not a second way to ingest.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TYPE_CHECKING

from engine.errors import InvalidInputError, MediaError, OmniAlignError
from engine.ingest.config import PipelineConfig
from engine.ingest.records import Alignment, SegmentRecord, TokenRecord, record_to_row, with_speech
from engine.media.decode import SegmentReader
from engine.media.sources import default_stream_id
from engine.media.transcripts import TranscriptSidecar

# Only what every stage needs is imported here: the stage functions below import their heavy
# parts (torch via the tokenizer, lancedb via the store) where they run.
if TYPE_CHECKING:
    from engine.store.table import SegmentStore, StoreConfig
    from engine.tokenize.tokenizer import Tokenizer

#: Media extensions picked up when a folder is given as a source.
MEDIA_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".ts", ".avi", ".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus",
                    ".png", ".jpg", ".jpeg", ".webp")


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
    """The table shape this tokenizer's rows need, and which pretrained models fill which columns
    (schema metadata ``omnialign.encoder.<column>``).

    Raises:
        ModelNotFoundError: A configured model is not installed.
    """
    from engine.store.table import StoreConfig
    from engine.store.text_embed import TEXT_EMB_DIM

    metadata, image_dim = [("omnialign.encoder.text_emb", "all-MiniLM-L6-v2")], 1280
    from engine.encode.audio import DEFAULT_AUDIO_ENC_DIM

    audio_enc_dim = DEFAULT_AUDIO_ENC_DIM
    if config.image_encoder is not None:
        from engine.encode.registry import image_encoder_info

        info = image_encoder_info(config.image_encoder)
        metadata.append((f"omnialign.encoder.{info.column}", f"{info.name}@{info.weights_hash}"))
        image_dim = info.dim
    if config.asr is not None:
        from engine.asr.model import check_speech_model, weights_hash

        model_dir = check_speech_model(config.asr)
        name = "whisper:tiny.en" if config.asr.model_dir is None else f"whisper:{model_dir.name}"
        metadata.append(("omnialign.encoder.words", f"{name}@{weights_hash(model_dir)}"))
        if config.asr.audio_embedding:
            from engine.encode.audio import encoder_name_for

            name = encoder_name_for(config.asr.model_dir)
            metadata.append(("omnialign.encoder.audio_enc_emb", f"{name}@{weights_hash(model_dir)}"))
            if config.asr.model_dir is not None:  # another Whisper size: its width (a 0.4 s load)
                from engine.encode.audio import build_audio_encoder

                audio_enc_dim = build_audio_encoder(name).dim
    return StoreConfig(db_dir=config.db_dir, table=config.table,
                       audio_emb_dim=tokenizer.audio_embedding_dim, video_emb_dim=tokenizer.video_embedding_dim,
                       image_emb_dim=image_dim, text_emb_dim=TEXT_EMB_DIM, audio_enc_emb_dim=audio_enc_dim,
                       audio_num_quantizers=tokenizer.config.audio_quantizers,
                       video_num_quantizers=tokenizer.config.video_quantizers, metadata=tuple(metadata))


def install_anchor_adapters(config: PipelineConfig, store: SegmentStore) -> tuple[str, ...]:
    """Copies the configured adapters into the DB, each checked against the table's encoders
    first (a mismatched one must not replace the DB's); returns their modalities.

    Raises:
        InvalidInputError: An adapter does not fit the table, or two share a modality.
    """
    from engine.store.anchors import check_adapter, install_adapter
    from engine.train.adapter import load_adapter

    modalities: list[str] = []
    for folder in config.anchor_adapters:
        adapter = load_adapter(folder)
        check_adapter(adapter, store.encoders())
        if adapter.config.modality in modalities:
            raise InvalidInputError("anchor_adapters", f"two {adapter.config.modality} adapters; give one per modality")
        install_adapter(config.db_dir, folder)
        modalities.append(adapter.config.modality)
    return tuple(modalities)


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
    asr: Any = None  # engine.asr.stream.AsrStats of the stream (Ray pipeline with ASR on)
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
    from engine.align.tracker import SyncTracker
    from engine.ingest.tokenize_stage import tokenize_records
    from engine.store.table import SegmentStore
    from engine.tokenize.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(config.codebooks_dir)
    store = SegmentStore(store_config_for(config, tokenizer))
    anchors = None
    if config.anchor_adapters:
        from engine.store.anchors import AnchorWriter

        anchors = AnchorWriter(config.db_dir, install_anchor_adapters(config, store))
    image_encoder = speech_model = audio_encoder = None
    if config.image_encoder is not None:
        from engine.encode.registry import build_image_encoder

        image_encoder = build_image_encoder(config.image_encoder)
    if config.asr is not None:
        from engine.asr.model import load_speech_model

        speech_model = load_speech_model(config.asr)
        if config.asr.audio_embedding:
            from engine.encode.audio import WhisperAudioEncoder

            audio_encoder = WhisperAudioEncoder.of_speech_model(speech_model, config.asr.model_dir)
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
            tracker = SyncTracker(config.sync, window_s=config.sync_window_s)
            batch: list[tuple[TokenRecord, Alignment]] = []
            recognizer = speech = None
            if speech_model is not None:
                from engine.asr.stream import StreamRecognizer
                from engine.ingest.asr_stage import recognize_segment

                live = config.live or "://" in source
                recognizer, speech, audio_embs = StreamRecognizer(speech_model, config.asr, live), {}, {}
            with SegmentReader(source, config.media_config(), res.stream_id) as reader:
                for seg in _timed(iter(reader), res.stage_s, "decode"):
                    t0 = time.perf_counter()
                    alignment = Alignment.from_estimate(tracker.push(seg))
                    res.stage_s["align"] += time.perf_counter() - t0
                    if recognizer is not None:
                        t0 = time.perf_counter()
                        speech.update(recognize_segment(recognizer, seg, audio_encoder, audio_embs))
                        res.stage_s["asr"] = res.stage_s.get("asr", 0.0) + time.perf_counter() - t0
                    if seg.index in done:
                        res.segments_skipped += 1
                        continue
                    rec = SegmentRecord(tokenizer.token_view(seg), source, sidecar.text(seg), time.time())
                    t0 = time.perf_counter()
                    (tok,) = tokenize_records(tokenizer, [rec], image_encoder=image_encoder)
                    res.stage_s["tokenize"] += time.perf_counter() - t0
                    if tok.error is not None:
                        res.segments_failed += 1  # counted, reported, never written half-empty
                        res.error = tok.error
                        continue
                    batch.append((tok, alignment))
                    # With ASR, a row waits until its segment's words are final.
                    ready = len(batch) if speech is None else next(
                        (i for i, (t, _) in enumerate(batch) if t.segment_index not in speech), len(batch))
                    if ready >= config.writer_batch_rows or (seg.is_final and ready):
                        res.segments_written += _write(store, batch[:ready], res, speech, anchors)
                        batch = batch[ready:]
                res.segments_written += _write(store, batch, res, speech, anchors)
                if recognizer is not None:
                    res.asr = recognizer.stats
            final = tracker.estimate()
            res.offset_ms, res.drift_ppm, res.confidence = final.offset_ms, final.drift_ppm, final.confidence
        except (MediaError, OmniAlignError) as exc:
            res.error = f"{type(exc).__name__}: {exc}"
    store.ensure_indexes(fold_all=True)
    if anchors is not None:
        from engine.store.anchors import ensure_anchor_index

        ensure_anchor_index(config.db_dir)
    return results


def _write(store: SegmentStore, batch: list[tuple[TokenRecord, Alignment]], res: StreamResult,
           speech: dict | None = None, anchors=None) -> int:
    if not batch:
        return 0
    t0 = time.perf_counter()
    speech = speech or {}
    rows = [record_to_row(with_speech(tok, speech.pop(tok.segment_index, None)), alignment) for tok, alignment in batch]
    written = store.write(rows).inserted
    if anchors is not None:  # after the rows' commit: a vector never points at a row that is not there
        anchors.write(rows)
    res.stage_s["write"] += time.perf_counter() - t0
    return written
