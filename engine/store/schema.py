"""Schema and row type of the segment store: Arrow schema, :class:`SegmentRow`, conversions.

One LanceDB table (default ``segments`` in ``StoreConfig.db_dir``) holds one row per fixed-length
segment of a stream. All times are integer microseconds on the stream's unified timeline.
:class:`SegmentRow` validates rows and converts them to and from Arrow tables of this schema;
:class:`engine.store.table.SegmentStore` writes and reads them.

Schema (``Q_a``/``Q_v`` = RVQ stages of the audio/video quantizers, ``D_*`` = embedding dims,
all from :class:`StoreConfig`):

==================  ======================================  ====  ==================================
column              Arrow type                              null  meaning
==================  ======================================  ====  ==================================
stream_id           string                                  no    stream key (with segment_index)
segment_index       int64                                   no    0-based segment number in stream
t_start_us          int64                                   no    segment start, unified timeline
t_end_us            int64                                   no    segment end (exclusive)
source_uri          string                                  no    file path or URL ingested
audio_codes         list<fixed_size_list<int16>[Q_a]>       no    kept audio tokens' RVQ codes
audio_t_us          list<int64>                             no    time of each audio token
audio_dur_us        list<int64>                             no    duration of each (merged) token
video_codes         list<fixed_size_list<int16>[Q_v]>       no    kept video region tokens' codes
video_t_us          list<int64>                             no    frame time of each video token
video_row           list<int16>                             no    region grid row of each token
video_col           list<int16>                             no    region grid column of each token
keyframe_t_us       list<int64>                             no    time of each keyframe thumbnail
keyframe_jpeg       list<binary>                            no    JPEG thumbnails of the keyframes
av_offset_ms        float64                                 yes   A/V offset (audio minus video)
drift_ppm           float64                                 yes   A/V clock drift
sync_confidence     float32                                 yes   confidence of the offset, [0, 1]
warp                list<fixed_size_list<float64>[2]>       no    [t_video_s, t_audio_s] path pts
sync_status         string                                  no    measured / fallback / none
audio_emb           fixed_size_list<float32>[D_audio]       yes   segment audio embedding
video_emb           fixed_size_list<float32>[D_video]       yes   segment video embedding
image_emb           fixed_size_list<float32>[D_image]       yes   pretrained encoder, keyframes
text_emb            fixed_size_list<float32>[D_text]        yes   MiniLM embedding of transcript
transcript          string                                  yes   sidecar text, else ASR words
words               list<struct<text, t_start_us,           no    ASR words starting in the segment
                    t_end_us, probability>>
codebook_version    string                                  no    RVQ codebooks that made codes
pipeline_version    string                                  no    omnialign pipeline version
ingested_at_us      int64                                   no    wall-clock write time (Unix us)
audio_enc_emb       fixed_size_list<float32>[D_enc]         yes   pretrained audio encoder (Whisper)
==================  ======================================  ====  ==================================

Absent modalities give empty token lists and a null embedding; sync fields are null until the
aligner has an estimate; ``sync_status`` says whether a row's estimate is its own
(``measured``), the stream's newest one standing in for a lost one (``fallback``), or absent
(``none``). Vector columns are fixed-size float32 lists because LanceDB only
treats those as vector columns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa

from engine.errors import InvalidInputError
from engine.store.index_policy import IndexPolicy

#: Version of the table layout; stored in the metadata of :func:`segment_schema`.
STORE_SCHEMA_VERSION = "4"
#: Key of a segment row.
KEY_COLUMNS = ("stream_id", "segment_index")
#: Embedding columns (all searched with cosine distance).
EMBEDDING_COLUMNS = ("audio_emb", "video_emb", "image_emb", "text_emb", "audio_enc_emb")
#: Columns added after v3, at the end of the schema: a v3 table gains them in place, all null
#: (a metadata-only change), and a backfill fills them (see :mod:`engine.encode.backfill`).
ADDED_COLUMNS = ("audio_enc_emb",)
#: Distance used for every embedding column, by flat search and indexes alike.
DISTANCE = "cosine"
#: Arrow type of one recognized word (see :class:`engine.asr.words.Word`).
WORD_TYPE = pa.struct([("text", pa.string()), ("t_start_us", pa.int64()), ("t_end_us", pa.int64()),
                       ("probability", pa.float32())])
#: Values of ``sync_status``.
SYNC_STATUSES = ("measured", "fallback", "none")
_INT16 = np.iinfo(np.int16)


@dataclass(frozen=True)
class StoreConfig:
    """Where the segment table lives and its shape.

    Attributes:
        db_dir: LanceDB database directory (created if missing).
        table: Table name inside the database.
        audio_emb_dim: Length of ``audio_emb`` vectors.
        video_emb_dim: Length of ``video_emb`` vectors.
        image_emb_dim: Length of ``image_emb`` vectors (1280 for EfficientNet-Lite0).
        text_emb_dim: Length of ``text_emb`` vectors (384 for all-MiniLM-L6-v2).
        audio_enc_emb_dim: Length of ``audio_enc_emb`` vectors (384 for Whisper tiny.en's encoder).
        audio_num_quantizers: RVQ stages per audio token (width of ``audio_codes`` entries).
        video_num_quantizers: RVQ stages per video token (width of ``video_codes`` entries).
        vector_index_min_rows: Non-null vectors a column needs before
            :meth:`engine.store.table.SegmentStore.ensure_indexes` builds a vector index on it
            (and rows the table needs before its stream/time filter indexes are built); below
            this, search is exact (flat).
        index_policy: Index type, probes, fold and rebuild thresholds
            (:class:`~engine.store.index_policy.IndexPolicy`).
        metadata: Extra ``(key, value)`` entries for the schema metadata (which encoder made
            each embedding column: ``omnialign.encoder.<column>`` = ``name@weights hash``).
    """

    db_dir: str | Path
    table: str = "segments"
    audio_emb_dim: int = 128
    video_emb_dim: int = 128
    image_emb_dim: int = 1280
    text_emb_dim: int = 384
    audio_enc_emb_dim: int = 384
    audio_num_quantizers: int = 8
    video_num_quantizers: int = 8
    vector_index_min_rows: int = 10_000
    index_policy: IndexPolicy = field(default_factory=IndexPolicy)
    metadata: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("audio_emb_dim", "video_emb_dim", "image_emb_dim", "text_emb_dim", "audio_enc_emb_dim", "audio_num_quantizers",
                     "video_num_quantizers", "vector_index_min_rows"):
            if int(getattr(self, name)) <= 0:
                raise InvalidInputError(name, f"must be positive, got {getattr(self, name)}")
        if not self.table:
            raise InvalidInputError("table", "must be a non-empty name")

    def emb_dim(self, column: str) -> int:
        """Dimension of embedding column ``column``."""
        return {"audio_emb": self.audio_emb_dim, "video_emb": self.video_emb_dim,
                "image_emb": self.image_emb_dim, "text_emb": self.text_emb_dim,
                "audio_enc_emb": self.audio_enc_emb_dim}[column]


def segment_schema(config: StoreConfig) -> pa.Schema:
    """The Arrow schema of the segment table for ``config`` (see the module docstring)."""

    def codes(q: int) -> pa.DataType:
        return pa.list_(pa.list_(pa.int16(), q))

    def f(name: str, typ: pa.DataType, nullable: bool = False) -> pa.Field:
        return pa.field(name, typ, nullable=nullable)

    i64s = pa.list_(pa.int64())
    return pa.schema([
        f("stream_id", pa.string()),
        f("segment_index", pa.int64()),
        f("t_start_us", pa.int64()),
        f("t_end_us", pa.int64()),
        f("source_uri", pa.string()),
        f("audio_codes", codes(config.audio_num_quantizers)),
        f("audio_t_us", i64s),
        f("audio_dur_us", i64s),
        f("video_codes", codes(config.video_num_quantizers)),
        f("video_t_us", i64s),
        f("video_row", pa.list_(pa.int16())),
        f("video_col", pa.list_(pa.int16())),
        f("keyframe_t_us", i64s),
        f("keyframe_jpeg", pa.list_(pa.binary())),
        f("av_offset_ms", pa.float64(), True),
        f("drift_ppm", pa.float64(), True),
        f("sync_confidence", pa.float32(), True),
        f("warp", pa.list_(pa.list_(pa.float64(), 2))),
        f("sync_status", pa.string()),
        f("audio_emb", pa.list_(pa.float32(), config.audio_emb_dim), True),
        f("video_emb", pa.list_(pa.float32(), config.video_emb_dim), True),
        f("image_emb", pa.list_(pa.float32(), config.image_emb_dim), True),
        f("text_emb", pa.list_(pa.float32(), config.text_emb_dim), True),
        f("transcript", pa.string(), True),
        f("words", pa.list_(WORD_TYPE)),
        f("codebook_version", pa.string()),
        f("pipeline_version", pa.string()),
        f("ingested_at_us", pa.int64()),
        f("audio_enc_emb", pa.list_(pa.float32(), config.audio_enc_emb_dim), True),
    ], metadata={b"omnialign.store_schema_version": STORE_SCHEMA_VERSION.encode(),
                 **{k.encode(): v.encode() for k, v in config.metadata}})


def _empty(dtype, *shape: int) -> np.ndarray:
    return np.zeros((0, *shape), dtype=dtype)


@dataclass
class SegmentRow:
    """One aligned segment, as written to and read from the store.

    Token arrays of one modality share their first dimension (one entry per kept token). An
    absent modality has zero tokens and a ``None`` embedding.

    Attributes:
        stream_id: Stream key.
        segment_index: 0-based segment number within the stream.
        t_start_us: Segment start on the unified timeline.
        t_end_us: Segment end (exclusive), > ``t_start_us``.
        source_uri: File path or URL the segment came from.
        audio_codes: int [Ma, Q_audio] RVQ codes of the kept audio tokens (each < 2**15).
        audio_t_us: int64 [Ma] time of each audio token.
        audio_dur_us: int64 [Ma] duration of each audio token (run-length merged runs).
        video_codes: int [Mv, Q_video] RVQ codes of the kept video region tokens.
        video_t_us: int64 [Mv] frame time of each video token.
        video_row: int [Mv] region grid row.
        video_col: int [Mv] region grid column.
        keyframe_t_us: int64 [K] time of each keyframe thumbnail.
        keyframe_jpeg: K JPEG-encoded thumbnails.
        av_offset_ms: Estimated A/V offset in ms (audio minus video), or ``None``.
        drift_ppm: Estimated A/V clock drift in parts per million, or ``None``.
        sync_confidence: Confidence of the offset estimate in [0, 1], or ``None``.
        warp: float64 [P, 2] alignment path points ``[t_video_s, t_audio_s]``.
        sync_status: ``measured``, ``fallback`` or ``none`` (see the module docstring).
        audio_emb: float32 [D_audio] segment audio embedding, or ``None``.
        video_emb: float32 [D_video] segment video embedding, or ``None``.
        image_emb: float32 [D_image] pretrained-encoder embedding of the keyframes, or ``None``.
        text_emb: float32 [D_text] transcript embedding, or ``None``.
        audio_enc_emb: float32 [D_enc] pretrained audio-encoder embedding, or ``None``.
        transcript: The sidecar transcript overlapping the segment when the file came with one,
            else the recognized words' text, or ``None``.
        words: Recognized words that start in the segment, as dicts ``{text, t_start_us,
            t_end_us, probability}`` (empty without speech or with ASR off).
        codebook_version: Identifier of the RVQ codebooks that produced the codes.
        pipeline_version: omnialign pipeline version that produced the row.
        ingested_at_us: Wall-clock write time (Unix microseconds); ``None`` = now, at conversion.
    """

    stream_id: str
    segment_index: int
    t_start_us: int
    t_end_us: int
    source_uri: str = ""
    audio_codes: np.ndarray = field(default_factory=lambda: _empty(np.int16, 0))
    audio_t_us: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    audio_dur_us: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    video_codes: np.ndarray = field(default_factory=lambda: _empty(np.int16, 0))
    video_t_us: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    video_row: np.ndarray = field(default_factory=lambda: _empty(np.int16))
    video_col: np.ndarray = field(default_factory=lambda: _empty(np.int16))
    keyframe_t_us: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    keyframe_jpeg: list[bytes] = field(default_factory=list)
    av_offset_ms: Optional[float] = None
    drift_ppm: Optional[float] = None
    sync_confidence: Optional[float] = None
    warp: np.ndarray = field(default_factory=lambda: _empty(np.float64, 2))
    sync_status: str = "none"
    audio_emb: Optional[np.ndarray] = None
    video_emb: Optional[np.ndarray] = None
    image_emb: Optional[np.ndarray] = None
    text_emb: Optional[np.ndarray] = None
    audio_enc_emb: Optional[np.ndarray] = None
    transcript: Optional[str] = None
    words: list[dict] = field(default_factory=list)
    codebook_version: str = ""
    pipeline_version: str = ""
    ingested_at_us: Optional[int] = None

    @property
    def key(self) -> tuple[str, int]:
        """``(stream_id, segment_index)``."""
        return (self.stream_id, int(self.segment_index))

    @staticmethod
    def to_arrow(rows: Sequence["SegmentRow"], schema: pa.Schema) -> pa.Table:
        """Converts rows to an Arrow table of ``schema`` (see :func:`segment_schema`).

        Widths (``Q``) and embedding dims are read from ``schema``; every row is validated
        against them before anything is built.

        Raises:
            InvalidInputError: A row is inconsistent (names ``stream#index.field``).
        """
        now_us = time.time_ns() // 1000
        for r in rows:
            _validate_row(r, schema)
        cols: dict[str, pa.Array] = {}
        for name in ("stream_id", "source_uri", "codebook_version", "pipeline_version",
                     "transcript", "sync_status"):
            cols[name] = pa.array([getattr(r, name) for r in rows], type=pa.string())
        for name in ("segment_index", "t_start_us", "t_end_us"):
            cols[name] = pa.array([int(getattr(r, name)) for r in rows], type=pa.int64())
        cols["ingested_at_us"] = pa.array(
            [now_us if r.ingested_at_us is None else int(r.ingested_at_us) for r in rows],
            type=pa.int64())
        for name, typ in (("av_offset_ms", pa.float64()), ("drift_ppm", pa.float64()),
                          ("sync_confidence", pa.float32())):
            cols[name] = pa.array([getattr(r, name) for r in rows], type=typ)
        for name in ("audio_codes", "video_codes", "warp"):
            inner = schema.field(name).type.value_type
            cols[name] = _list_of_fixed([getattr(r, name) for r in rows], inner)
        for name in ("audio_t_us", "audio_dur_us", "video_t_us", "video_row", "video_col",
                     "keyframe_t_us"):
            cols[name] = _list_of_scalars([getattr(r, name) for r in rows],
                                          schema.field(name).type.value_type)
        cols["words"] = pa.array([list(r.words) for r in rows], type=pa.list_(WORD_TYPE))
        cols["keyframe_jpeg"] = pa.array([[bytes(b) for b in r.keyframe_jpeg] for r in rows],
                                         type=pa.list_(pa.binary()))
        for name in EMBEDDING_COLUMNS:
            cols[name] = _vectors([getattr(r, name) for r in rows],
                                  schema.field(name).type.list_size)
        return pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)

    @staticmethod
    def from_arrow(table: pa.Table) -> list["SegmentRow"]:
        """Converts rows read from the store back to :class:`SegmentRow` objects."""
        q_a = table.schema.field("audio_codes").type.value_type.list_size
        q_v = table.schema.field("video_codes").type.value_type.list_size
        out = []
        for rec in table.to_pylist():
            out.append(SegmentRow(
                stream_id=rec["stream_id"], segment_index=rec["segment_index"],
                t_start_us=rec["t_start_us"], t_end_us=rec["t_end_us"],
                source_uri=rec["source_uri"],
                audio_codes=np.asarray(rec["audio_codes"], np.int16).reshape(-1, q_a),
                audio_t_us=np.asarray(rec["audio_t_us"], np.int64),
                audio_dur_us=np.asarray(rec["audio_dur_us"], np.int64),
                video_codes=np.asarray(rec["video_codes"], np.int16).reshape(-1, q_v),
                video_t_us=np.asarray(rec["video_t_us"], np.int64),
                video_row=np.asarray(rec["video_row"], np.int16),
                video_col=np.asarray(rec["video_col"], np.int16),
                keyframe_t_us=np.asarray(rec["keyframe_t_us"], np.int64),
                keyframe_jpeg=list(rec["keyframe_jpeg"]),
                av_offset_ms=rec["av_offset_ms"], drift_ppm=rec["drift_ppm"],
                sync_confidence=rec["sync_confidence"],
                warp=np.asarray(rec["warp"], np.float64).reshape(-1, 2),
                sync_status=rec["sync_status"],
                audio_emb=_vector_or_none(rec["audio_emb"]),
                video_emb=_vector_or_none(rec["video_emb"]),
                image_emb=_vector_or_none(rec.get("image_emb")),
                text_emb=_vector_or_none(rec["text_emb"]),
                audio_enc_emb=_vector_or_none(rec.get("audio_enc_emb")),
                transcript=rec["transcript"], words=list(rec.get("words") or []), codebook_version=rec["codebook_version"],
                pipeline_version=rec["pipeline_version"], ingested_at_us=rec["ingested_at_us"]))
        return out


def _vector_or_none(values: Optional[list]) -> Optional[np.ndarray]:
    return None if values is None else np.asarray(values, dtype=np.float32)


def _validate_row(r: SegmentRow, schema: pa.Schema) -> None:
    where = f"{r.stream_id}#{r.segment_index}"

    def bad(name: str, reason: str) -> InvalidInputError:
        return InvalidInputError(f"{where}.{name}", reason)

    if not isinstance(r.stream_id, str) or not r.stream_id:
        raise bad("stream_id", "must be a non-empty string")
    if int(r.segment_index) < 0:
        raise bad("segment_index", "must be >= 0")
    if int(r.t_end_us) <= int(r.t_start_us):
        raise bad("t_end_us", f"must be > t_start_us ({r.t_start_us}), got {r.t_end_us}")
    for codes_name, q, companions in (
            ("audio_codes", schema.field("audio_codes").type.value_type.list_size,
             ("audio_t_us", "audio_dur_us")),
            ("video_codes", schema.field("video_codes").type.value_type.list_size,
             ("video_t_us", "video_row", "video_col"))):
        codes = np.asarray(getattr(r, codes_name))
        m = codes.shape[0] if codes.ndim == 2 else -1
        if codes.ndim != 2 or (m > 0 and codes.shape[1] != q):
            raise bad(codes_name, f"must be [M, {q}], got shape {codes.shape}")
        if m and (codes.min() < 0 or codes.max() > _INT16.max):
            raise bad(codes_name, f"codes must lie in [0, {_INT16.max}] to fit int16")
        for c in companions:
            if np.asarray(getattr(r, c)).shape != (m,):
                raise bad(c, f"must have shape ({m},) like {codes_name}, "
                             f"got {np.asarray(getattr(r, c)).shape}")
    if np.asarray(r.keyframe_t_us).shape != (len(r.keyframe_jpeg),):
        raise bad("keyframe_t_us", f"needs one time per thumbnail ({len(r.keyframe_jpeg)})")
    warp = np.asarray(r.warp)
    if warp.ndim != 2 or (warp.shape[0] and warp.shape[1] != 2):
        raise bad("warp", f"must be [P, 2], got shape {warp.shape}")
    for name in EMBEDDING_COLUMNS:
        v = getattr(r, name)
        if v is None:
            continue
        d = schema.field(name).type.list_size
        v = np.asarray(v)
        if v.shape != (d,):
            raise bad(name, f"must have shape ({d},), got {v.shape}")
        if not np.isfinite(v).all():
            raise bad(name, "contains NaN or Inf")
    if r.sync_status not in SYNC_STATUSES:
        raise bad("sync_status", f"must be one of {SYNC_STATUSES}, got {r.sync_status!r}")
    if r.sync_confidence is not None and not 0.0 <= float(r.sync_confidence) <= 1.0:
        raise bad("sync_confidence", f"must lie in [0, 1], got {r.sync_confidence}")


def _list_of_fixed(arrays: list, inner: pa.FixedSizeListType) -> pa.ListArray:
    # Build from one flat buffer + offsets rather than Python lists: segments carry hundreds of
    # tokens each and this runs per batch in the ingest hot path.
    width = inner.list_size
    mats = [np.asarray(a, dtype=inner.value_type.to_pandas_dtype()).reshape(-1, width)
            for a in arrays]
    offsets = np.zeros(len(mats) + 1, dtype=np.int32)
    np.cumsum([m.shape[0] for m in mats], out=offsets[1:])
    flat = np.concatenate([m.ravel() for m in mats]) if mats else np.zeros(0)
    values = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=inner.value_type), width)
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _list_of_scalars(arrays: list, value_type: pa.DataType) -> pa.ListArray:
    vecs = [np.asarray(a, dtype=value_type.to_pandas_dtype()).ravel() for a in arrays]
    offsets = np.zeros(len(vecs) + 1, dtype=np.int32)
    np.cumsum([v.shape[0] for v in vecs], out=offsets[1:])
    flat = np.concatenate(vecs) if vecs else np.zeros(0)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=value_type))


def _vectors(vectors: list, dim: int) -> pa.FixedSizeListArray:
    present = np.array([v is not None for v in vectors], dtype=bool)
    flat = np.zeros((len(vectors), dim), dtype=np.float32)
    for i, v in enumerate(vectors):
        if v is not None:
            flat[i] = np.asarray(v, dtype=np.float32)
    mask = None if present.all() else pa.array(~present)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), dim, mask=mask)
