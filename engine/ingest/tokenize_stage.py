"""The tokenize stage of ingest: :class:`SegmentRecord` in, :class:`TokenRecord` out.

Runs where the tokenizer lives (an actor of the Ray Data pool, or the reference loop): codes with
exact times, pooled embeddings, keyframe JPEG thumbnails, and the MiniLM embedding of the
transcript. A segment that cannot be tokenized gets its reason on its record instead of failing
the batch, so one bad segment (or stream) never stops the others.
"""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import OmniAlignError
from engine.ingest.records import SegmentRecord, TokenRecord

if TYPE_CHECKING:
    from engine.tokenize.tokenizer import Tokenizer


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


def _empty_record(tokenizer: Tokenizer, rec: SegmentRecord) -> TokenRecord:
    seg = rec.segment
    cfg = tokenizer.config
    return TokenRecord(
        stream_id=seg.stream_id, segment_index=seg.index, t_start_us=seg.t_start_us, t_end_us=seg.t_end_us,
        source_uri=rec.source_uri, codebook_version=tokenizer.codebook_version, transcript=rec.transcript,
        audio_codes=np.zeros((0, cfg.audio_quantizers), np.int16), video_codes=np.zeros((0, cfg.video_quantizers), np.int16),
        wall_decoded_s=rec.wall_decoded_s,
    )


def tokenize_record(tokenizer: Tokenizer, rec: SegmentRecord, thumbnail_px: int = 160, max_thumbnails: int = 4,
                    image_encoder=None) -> TokenRecord:
    """Tokens of one segment (no text embedding: :func:`tokenize_records` batches those), and
    with ``image_encoder`` the keyframes' ``image_emb``.

    Raises:
        OmniAlignError: If the segment cannot be tokenized.
    """
    seg = rec.segment
    tok = tokenizer.encode_segment(seg)
    out = _empty_record(tokenizer, rec)
    a, v = tok.audio, tok.video
    if a is not None:
        out.audio_codes, out.audio_t_us, out.audio_dur_us = a.codes.astype(np.int16), a.t_us, a.duration_us
        out.audio_emb = tok.audio_embedding
        out.tokens_in, out.tokens_out = a.tokens_in, a.tokens_out
    if v is not None:
        out.video_codes, out.video_t_us = v.codes.astype(np.int16), v.t_us
        out.video_row, out.video_col = v.row.astype(np.int16), v.col.astype(np.int16)
        out.video_emb = tok.video_embedding
        # Keyframes index the tokenized frames; thumbnails for the first few only (busy footage
        # can have dozens per segment, and thumbnails are for browsing, not alignment).
        kf = tok.video_frames[v.keyframes[:max_thumbnails]]
        out.keyframe_t_us = seg.video_t_us[kf]
        out.keyframe_jpeg = jpeg_thumbnails([seg.frames[i] for i in kf], thumbnail_px)
        if image_encoder is not None and len(kf):
            from engine.encode.registry import segment_embedding

            out.image_emb = segment_embedding(image_encoder, np.stack([seg.frames[i] for i in kf]), out.keyframe_t_us)
        out.tokens_in += v.tokens_in
        out.tokens_out += v.tokens_out
    return out


def tokenize_records(tokenizer: Tokenizer, recs: list[SegmentRecord], thumbnail_px: int = 160,
                     image_encoder=None) -> list[TokenRecord]:
    """Tokenizes a batch; transcripts are embedded in one MiniLM call for the whole batch."""
    out = []
    for rec in recs:
        try:
            tok = tokenize_record(tokenizer, rec, thumbnail_px, image_encoder=image_encoder)
        except OmniAlignError as exc:  # this segment fails alone, with its reason on the record
            tok = _empty_record(tokenizer, rec)
            tok.error = f"{type(exc).__name__}: {exc}"
        tok.wall_tokenized_s = time.time()
        out.append(tok)
    texted = [t for t in out if t.transcript and t.error is None]
    if texted:
        from engine.store.text_embed import get_text_embedder

        for t, emb in zip(texted, get_text_embedder().embed([t.transcript for t in texted])):
            t.text_emb = np.asarray(emb, np.float32)
    return out
