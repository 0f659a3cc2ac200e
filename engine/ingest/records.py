"""Plain-dict records for segments and their tokens, as they travel between pipeline stages.

Ray Data moves rows as dicts of numpy values; these functions are the one place that decides
the column names and types, so every stage (and the single-process loop used as a baseline)
converts the same way. Heavy raw media (audio samples, frames) is dropped as soon as the
tokenizer has turned it into tokens, embeddings and keyframe thumbnails.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from engine.media.decode import Segment

if TYPE_CHECKING:  # records also travel through decode processes, which must not import torch
    from engine.tokenize.tokenizer import Tokenizer

#: Raw media columns, dropped once a segment is tokenized (heavy; no later stage needs them).
RAW_COLUMNS = ("audio", "video", "video_t_us", "audio_rate_hz")
#: Token columns added by tokenization (None on a row whose segment failed).
TOKEN_COLUMNS = ("audio_codes", "audio_t_us", "audio_dur_us", "video_codes", "video_token_t_us", "video_row",
                 "video_col", "keyframe_t_us", "keyframe_jpeg", "audio_emb", "video_emb")


def null_to_none(value):
    """None for a missing value however a batch format spelled it (None, NaN, "").

    Text columns that cross Ray Data use "" for "none": a column that is null in one block and a
    string in another cannot be concatenated.
    """
    if value is None or (isinstance(value, str) and value == ""):
        return None
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, np.floating) and np.isnan(value):
        return None
    return value


def segment_to_record(seg: Segment, source_uri: str) -> dict:
    """A decoded segment as a record (raw audio and frames included)."""
    return {
        "stream_id": seg.stream_id,
        "segment_index": np.int64(seg.index),
        "t_start_us": np.int64(seg.t_start_us),
        "t_end_us": np.int64(seg.t_end_us),
        "source_uri": source_uri,
        "is_final": bool(seg.is_final),
        "has_audio": seg.audio is not None,
        "has_video": seg.frames is not None,
        "audio": seg.audio if seg.audio is not None else np.zeros(0, np.float32),
        "video": seg.video if seg.video is not None else np.zeros((0, 1, 1, 3), np.uint8),
        "video_t_us": seg.video_t_us,
        "audio_rate_hz": np.int64(seg.audio_rate_hz),
    }


def record_to_segment(rec: dict) -> Segment:
    """Inverse of :func:`segment_to_record` (discontinuities are not carried)."""
    return Segment(
        stream_id=str(rec["stream_id"]),
        index=int(rec["segment_index"]),
        t_start_us=int(rec["t_start_us"]),
        t_end_us=int(rec["t_end_us"]),
        audio=np.asarray(rec["audio"], np.float32) if rec["has_audio"] else None,
        audio_rate_hz=int(rec["audio_rate_hz"]),
        frames=list(np.asarray(rec["video"], np.uint8)) if rec["has_video"] else None,
        video_t_us=np.asarray(rec["video_t_us"], np.int64),
        is_final=bool(rec["is_final"]),
    )


def jpeg_thumbnails(frames, max_side_px: int = 160, quality: int = 80) -> list[bytes]:
    """JPEG thumbnails of RGB uint8 frames (``[H, W, 3]`` each), longest side at most ``max_side_px``."""
    from PIL import Image

    out = []
    for frame in frames:
        img = Image.fromarray(frame)
        img.thumbnail((max_side_px, max_side_px))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality)
        out.append(buf.getvalue())
    return out


def tokenize_record(tokenizer: Tokenizer, rec: dict, thumbnail_px: int = 160, max_thumbnails: int = 4) -> dict:
    """Token columns for one segment record (codes with exact times, embeddings, thumbnails).

    Raises:
        OmniAlignError: If the segment cannot be tokenized (the caller records it on the row).
    """
    seg = record_to_segment(rec)
    tok = tokenizer.encode_segment(seg)
    a, v = tok.audio, tok.video
    empty = _empty_tokens(tokenizer.config.audio_quantizers, tokenizer.config.video_quantizers)
    # keyframes index the tokenized frames; thumbnails for the first few keyframes only (a
    # segment of busy footage can have dozens, and thumbnails are for browsing, not alignment)
    kf = tok.video_frames[v.keyframes[:max_thumbnails]] if v is not None else np.zeros(0, np.int64)
    return {
        **empty,
        **({"audio_codes": a.codes.astype(np.int16), "audio_t_us": a.t_us, "audio_dur_us": a.duration_us,
            "audio_emb": tok.audio_embedding} if a is not None else {}),
        **({"video_codes": v.codes.astype(np.int16), "video_token_t_us": v.t_us, "video_row": v.row.astype(np.int16),
            "video_col": v.col.astype(np.int16), "keyframe_t_us": seg.video_t_us[kf],
            "keyframe_jpeg": jpeg_thumbnails([seg.frames[i] for i in kf], thumbnail_px), "video_emb": tok.video_embedding}
           if v is not None else {}),
        "tokens_in": (a.tokens_in if a else 0) + (v.tokens_in if v else 0),
        "tokens_out": (a.tokens_out if a else 0) + (v.tokens_out if v else 0),
        "codebook_version": tokenizer.codebook_version,
        "error": "",
    }


def _empty_tokens(q_audio: int, q_video: int) -> dict:
    """Token columns with no tokens, typed exactly like real ones (Ray Data concatenates blocks
    of one column and refuses tensors of different element types)."""
    i64, i16 = np.zeros(0, np.int64), np.zeros(0, np.int16)
    return {"audio_codes": np.zeros((0, q_audio), np.int16), "audio_t_us": i64, "audio_dur_us": i64,
            "video_codes": np.zeros((0, q_video), np.int16), "video_token_t_us": i64, "video_row": i16,
            "video_col": i16, "keyframe_t_us": i64, "keyframe_jpeg": [], "audio_emb": _ABSENT, "video_emb": _ABSENT}


def failed_token_record(tokenizer: Tokenizer, error: Exception) -> dict:
    """Token columns of a segment that failed to tokenize: no tokens, the reason kept."""
    return {**_empty_tokens(tokenizer.config.audio_quantizers, tokenizer.config.video_quantizers),
            "tokens_in": 0, "tokens_out": 0, "codebook_version": tokenizer.codebook_version,
            "error": f"{type(error).__name__}: {error}"}


#: An absent array value. Empty arrays rather than None: Ray Data cannot concatenate blocks
#: whose tensor column is null in one block and a tensor in another.
_ABSENT = np.zeros(0, np.float32)


def tokenize_records(tokenizer: Tokenizer, recs: list[dict], thumbnail_px: int = 160) -> list[dict]:
    """Tokenizes records; each output keeps the input's non-raw columns plus token columns."""
    from engine.errors import OmniAlignError

    out = []
    for rec in recs:
        base = {k: v for k, v in rec.items() if k not in RAW_COLUMNS}
        try:
            out.append({**base, **tokenize_record(tokenizer, rec, thumbnail_px)})
        except OmniAlignError as exc:  # this segment fails alone, with its reason on the row
            out.append({**base, **failed_token_record(tokenizer, exc)})
    for r in out:  # a null transcript may arrive as None or NaN depending on the batch format
        t = null_to_none(r.get("transcript"))
        r["transcript"] = t if isinstance(t, str) else ""
    texts = [(i, r["transcript"]) for i, r in enumerate(out) if r["transcript"]]
    if texts:
        from engine.store.text_embed import get_text_embedder

        embs = get_text_embedder().embed([t for _, t in texts])
        for (i, _), emb in zip(texts, embs):
            out[i]["text_emb"] = emb
    for r in out:
        r.setdefault("text_emb", _ABSENT)
    return out
