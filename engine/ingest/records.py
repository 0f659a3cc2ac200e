"""Typed records passed between the ingest stages, and their one conversion to a store row.

::

    source ──SegmentRecord──▶ tokenizer ──TokenRecord──▶ writer ──SegmentRow──▶ LanceDB
       │                                         Alignment ─┤  └──CommitRecord──▶ driver
       └──audio──▶ ASR ──────────────────────── SpeechRecord ─┘

"None" has one spelling everywhere: Python ``None``. Records cross Ray Data stages as one row
holding a pickled list (:func:`pack_records` / :func:`unpack_records`), so no batch format gets
to respell a missing value (Arrow and pandas turn a null string into NaN, and a column that is
null in one block and a tensor in the next cannot be concatenated). Heavy raw media lives only
in :class:`SegmentRecord`; the tokenizer turns it into codes, embeddings and thumbnails.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine.errors import InvalidInputError
from engine.media.decode import Segment
from engine.store.schema import SYNC_STATUSES, SegmentRow

if TYPE_CHECKING:
    from engine.align.sync import SyncEstimate

#: Written on every row; bump when the meaning of a column changes.
PIPELINE_VERSION = "4"

#: The column of a packed block (see :func:`pack_records`).
RECORDS_COLUMN = "records"

#: ``Alignment.status`` (the store's ``sync_status``): the estimate in force once this segment
#: and ``PipelineConfig.sync_settle_s`` more of its stream reached the aligner; that estimate was lost (aligner restart, wait timed out) and the
#: stream's newest one stands in for it; the stream had no estimate at all.
SYNC_MEASURED, SYNC_FALLBACK, SYNC_NONE = SYNC_STATUSES


def _i64(n: int = 0) -> np.ndarray:
    return np.zeros(n, np.int64)


@dataclass
class SegmentRecord:
    """A decoded segment on its way from its source to the tokenizer.

    Attributes:
        segment: The segment as the tokenizer needs it (its token view: only the frames that
            get tokens); ``stream_id``, ``index`` and times come from it.
        source_uri: File path or URL the segment came from.
        transcript: Sidecar transcript text overlapping the segment, or None.
        wall_decoded_s: Wall-clock time (Unix s) the source finished decoding it.
    """

    segment: Segment
    source_uri: str
    transcript: str | None = None
    wall_decoded_s: float = 0.0

    @property
    def key(self) -> tuple[str, int]:
        return (self.segment.stream_id, self.segment.index)


@dataclass
class TokenRecord:
    """A tokenized segment on its way to the writer (raw media dropped).

    Token arrays of one modality share their first dimension; an absent modality has none and
    a None embedding. A segment that failed to tokenize has no tokens and ``error`` set.
    """

    stream_id: str
    segment_index: int
    t_start_us: int
    t_end_us: int
    source_uri: str
    codebook_version: str
    transcript: str | None = None
    audio_codes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int16))
    audio_t_us: np.ndarray = field(default_factory=_i64)
    audio_dur_us: np.ndarray = field(default_factory=_i64)
    video_codes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int16))
    video_t_us: np.ndarray = field(default_factory=_i64)
    video_row: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    video_col: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    keyframe_t_us: np.ndarray = field(default_factory=_i64)
    keyframe_jpeg: list[bytes] = field(default_factory=list)
    audio_emb: np.ndarray | None = None
    video_emb: np.ndarray | None = None
    image_emb: np.ndarray | None = None
    audio_enc_emb: np.ndarray | None = None
    text_emb: np.ndarray | None = None
    words: list[dict] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    error: str | None = None
    wall_decoded_s: float = 0.0
    wall_tokenized_s: float = 0.0

    @property
    def key(self) -> tuple[str, int]:
        return (self.stream_id, self.segment_index)


@dataclass(frozen=True)
class Alignment:
    """The sync estimate a row carries, and where it came from.

    Attributes:
        status: :data:`SYNC_MEASURED`, :data:`SYNC_FALLBACK` or :data:`SYNC_NONE` (then every
            number is None and the warp empty).
        offset_ms: A/V offset, positive = audio late.
        drift_ppm: Audio clock drift relative to video.
        confidence: Confidence of the estimate in [0, 1].
        warp: float64 ``[P, 2]`` rows ``(t_video_s, t_audio_s)``.
    """

    status: str = SYNC_NONE
    offset_ms: float | None = None
    drift_ppm: float | None = None
    confidence: float | None = None
    # Not compared: an ndarray has no single truth value (the numbers above decide equality).
    warp: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float64), compare=False)

    def __post_init__(self) -> None:
        if self.status not in SYNC_STATUSES:
            raise InvalidInputError("status", f"must be one of {SYNC_STATUSES}, got {self.status!r}")
        if (self.status == SYNC_NONE) != (self.offset_ms is None):
            raise InvalidInputError("offset_ms", f"must be None exactly when status is {SYNC_NONE!r}")

    @classmethod
    def from_estimate(cls, est: SyncEstimate | None) -> Alignment:
        """The measured alignment of an estimate; none for None or for an estimate without any
        evidence (no offset run: the tracker's answer before it has seen an event)."""
        if est is None or not est.runs:
            return cls()
        return cls(SYNC_MEASURED, float(est.offset_ms), float(est.drift_ppm), float(est.confidence),
                   np.asarray(est.warp, np.float64).reshape(-1, 2))

    def as_fallback(self) -> Alignment:
        """This estimate standing in for a segment's own, lost one."""
        return self if self.status == SYNC_NONE else replace(self, status=SYNC_FALLBACK)


@dataclass(frozen=True)
class SpeechRecord:
    """What the ASR stage found in one segment.

    Attributes:
        words: The words that start in the segment (``Word.as_dict()`` each).
        transcript: Their text, or None without words.
        text_emb: MiniLM embedding of ``transcript``, or None.
        audio_enc_emb: The speech model's encoder embedding of the segment's audio, or None.
    """

    words: list[dict] = field(default_factory=list)
    transcript: str | None = None
    text_emb: np.ndarray | None = field(default=None, compare=False)
    audio_enc_emb: np.ndarray | None = field(default=None, compare=False)


def with_speech(tok: TokenRecord, speech: SpeechRecord | None) -> TokenRecord:
    """``tok`` with its recognized words; their text becomes the transcript only when the file
    brought none of its own (a sidecar transcript is kept and preferred: it is what the author
    wrote; the words stay beside it)."""
    if speech is None:
        return tok
    out = replace(tok, words=list(speech.words), audio_enc_emb=speech.audio_enc_emb)
    if tok.transcript is None and speech.transcript:
        out.transcript, out.text_emb = speech.transcript, speech.text_emb
    return out


@dataclass(frozen=True)
class CommitRecord:
    """What the writer reports to the driver for one segment (progress and metrics).

    Attributes:
        error: Why the segment was not written (tokenizer or store), or None when it was.
        sync_status: The ``Alignment.status`` the row was written with.
        offset_ms: The row's A/V offset (None without an estimate): metrics show it live.
        drift_ppm: ... its drift.
        confidence: ... and the estimate's confidence.
    """

    stream_id: str
    segment_index: int
    t_start_us: int
    t_end_us: int
    error: str | None
    sync_status: str
    tokens_in: int
    tokens_out: int
    wall_decoded_s: float
    wall_tokenized_s: float
    wall_committed_s: float
    offset_ms: float | None = None
    drift_ppm: float | None = None
    confidence: float | None = None


def pack_records(records: list[Any]) -> pa.Table:
    """A block of one row holding ``records`` (any of the record types), pickled.

    One row, because Ray Data splits a multi-row block larger than ``target_max_block_size``
    back into one-row blocks; pickled, because numpy arrays then keep dtype and shape and
    Ray Data's own conversion (Arrow first) fails on nested arrays, slowly, with a warning.
    """
    blob = pickle.dumps(list(records), protocol=pickle.HIGHEST_PROTOCOL)
    return pa.table({RECORDS_COLUMN: pa.array([blob], pa.large_binary())})


def unpack_records(batch: dict[str, Any] | pa.Table) -> list[Any]:
    """The records of a batch of packed rows (a ``map_batches`` batch or a block)."""
    column = batch.column(RECORDS_COLUMN).to_pylist() if isinstance(batch, pa.Table) else batch[RECORDS_COLUMN]
    return [rec for blob in column for rec in pickle.loads(blob)]


def record_to_row(tok: TokenRecord, alignment: Alignment) -> SegmentRow:
    """The store row of a tokenized segment and the alignment in force for it: the one place a
    pipeline record becomes a :class:`~engine.store.schema.SegmentRow`."""
    return SegmentRow(
        stream_id=tok.stream_id, segment_index=tok.segment_index, t_start_us=tok.t_start_us,
        t_end_us=tok.t_end_us, source_uri=tok.source_uri,
        audio_codes=tok.audio_codes, audio_t_us=tok.audio_t_us, audio_dur_us=tok.audio_dur_us,
        video_codes=tok.video_codes, video_t_us=tok.video_t_us, video_row=tok.video_row,
        video_col=tok.video_col, keyframe_t_us=tok.keyframe_t_us, keyframe_jpeg=list(tok.keyframe_jpeg),
        av_offset_ms=alignment.offset_ms, drift_ppm=alignment.drift_ppm,
        sync_confidence=alignment.confidence, warp=alignment.warp, sync_status=alignment.status,
        audio_emb=tok.audio_emb, video_emb=tok.video_emb, image_emb=tok.image_emb, text_emb=tok.text_emb, audio_enc_emb=tok.audio_enc_emb,
        transcript=tok.transcript, words=list(tok.words), codebook_version=tok.codebook_version, pipeline_version=PIPELINE_VERSION,
    )

