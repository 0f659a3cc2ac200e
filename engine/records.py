"""Plain-dict records for segments and their tokens, as they travel between pipeline stages.

Ray Data moves rows as dicts of numpy values; these functions are the one place that decides
the column names and types, so every stage (and the single-process loop used as a baseline)
converts the same way. Heavy raw media (audio samples, frames) is dropped as soon as the
tokenizer has turned it into tokens, embeddings and keyframe thumbnails.
"""

from __future__ import annotations

import io

import numpy as np

from engine.media import Segment


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
        "has_video": seg.video is not None,
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
        video=np.asarray(rec["video"], np.uint8) if rec["has_video"] else None,
        video_t_us=np.asarray(rec["video_t_us"], np.int64),
        is_final=bool(rec["is_final"]),
    )


def jpeg_thumbnails(frames: np.ndarray, max_side_px: int = 160, quality: int = 80) -> list[bytes]:
    """JPEG thumbnails of RGB uint8 frames [F, H, W, 3], longest side at most ``max_side_px``."""
    from PIL import Image

    out = []
    for frame in frames:
        img = Image.fromarray(frame)
        img.thumbnail((max_side_px, max_side_px))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality)
        out.append(buf.getvalue())
    return out
