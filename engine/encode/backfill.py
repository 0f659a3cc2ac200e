"""Fills an encoder column of rows already stored (no re-ingest).

``image_emb`` comes from the stored keyframes; ``audio_enc_emb`` from the audio of each row's
source, decoded again (rows keep no audio samples) and cut as ingest cut it.

For images: rows keep their JPEG keyframe thumbnails, so a new or changed image encoder needs no source
media: each batch of rows without ``image_emb`` (or every row, with ``force``) is read, its
thumbnails decoded and embedded, and the rows written back in one transaction per batch; the
table's schema metadata then names the encoder. The keys to fill are listed first
(key columns only), then filled in batches; re-running after a crash continues where it stopped
(the filter finds only what is still missing).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from engine.encode.registry import ImageEncoder, segment_embedding


@dataclass(frozen=True)
class BackfillResult:
    """Rows updated, and rows that have no keyframe to embed (audio-only segments)."""

    updated: int
    without_keyframes: int


def _decode(jpegs: list[bytes]) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in jpegs])


def backfill_image_emb(store, encoder: ImageEncoder, batch_rows: int = 64, force: bool = False) -> BackfillResult:
    """Computes ``image_emb`` with ``encoder`` for stored rows that lack it (all rows with
    ``force``), batch by batch; records the encoder in the schema metadata.

    Args:
        store: An open :class:`~engine.store.table.SegmentStore`.
        encoder: The image encoder (its ``dim`` must match the table's ``image_emb``).
        batch_rows: Rows per read / write transaction.
        force: Recompute rows that already have an embedding (a changed encoder).
    """
    from engine.errors import InvalidInputError

    if encoder.dim != store.config.image_emb_dim:
        raise InvalidInputError("encoder", f"makes {encoder.dim}-d vectors; the table's image_emb is "
                                f"{store.config.image_emb_dim}-d")
    where = "array_length(keyframe_jpeg) > 0" + ("" if force else " AND image_emb IS NULL")
    keys = store.keys_where(where)
    updated = 0
    for i in range(0, len(keys), batch_rows):
        batch = store.rows_for(keys[i:i + batch_rows])
        for r in batch:
            # Every thumbnail of the segment counts, as at ingest.
            r.image_emb = segment_embedding(encoder, _decode(r.keyframe_jpeg), np.asarray(r.keyframe_t_us, np.int64))
        updated += store.replace_rows(batch)
    skipped = len(store.keys_where("array_length(keyframe_jpeg) = 0"))
    store.set_metadata({f"omnialign.encoder.image_emb": f"{encoder.name}@{encoder.weights_hash}"})
    return BackfillResult(updated, skipped)


@dataclass(frozen=True)
class AudioBackfillResult:
    """Rows updated, and rows whose audio could not be found again (their source is gone or
    unreadable, or a live stream's: it cannot be played twice)."""

    updated: int
    unavailable: int


def backfill_audio_enc_emb(store, encoder, batch_rows: int = 64, force: bool = False) -> AudioBackfillResult:
    """Computes ``audio_enc_emb`` with ``encoder`` (:class:`~engine.encode.audio.WhisperAudioEncoder`)
    for stored rows with audio that lack it (all of them with ``force``); records the encoder
    in the schema metadata.

    Each stream's source is decoded once, into segments of the stream's own length, and a row
    takes the audio of the segment that starts where it starts on the unified timeline.

    Raises:
        InvalidInputError: The encoder's width is not the table's.
    """
    from engine.errors import InvalidInputError, MediaError
    from engine.media.decode import MediaConfig, iter_segments

    if encoder.dim != store.config.audio_enc_emb_dim:
        raise InvalidInputError("encoder", f"makes {encoder.dim}-d vectors; the table's audio_enc_emb is "
                                f"{store.config.audio_enc_emb_dim}-d")
    where = "array_length(audio_t_us) > 0" + ("" if force else " AND audio_enc_emb IS NULL")
    by_stream: dict[str, list[tuple[str, int]]] = {}
    for key in store.keys_where(where):
        by_stream.setdefault(key[0], []).append(key)
    updated = unavailable = 0
    for keys in by_stream.values():
        rows = sorted(store.rows_for(keys), key=lambda r: r.segment_index)
        segment_s = (rows[0].t_end_us - rows[0].t_start_us) / 1e6 if len(rows) == 1 else \
            (rows[1].t_start_us - rows[0].t_start_us) / 1e6 / max(rows[1].segment_index - rows[0].segment_index, 1)
        wanted = {r.t_start_us for r in rows}
        audio: dict[int, np.ndarray] = {}
        source = rows[0].source_uri
        if "://" not in source:
            try:
                for seg in iter_segments(source, MediaConfig(segment_s=segment_s)):
                    if seg.t_start_us in wanted and seg.audio is not None:
                        audio[seg.t_start_us] = seg.audio
            except (MediaError, InvalidInputError):
                audio = {}
        done = []
        for r in rows:
            a = audio.get(r.t_start_us)
            emb = encoder.embed(a) if a is not None else None
            if emb is None:
                unavailable += 1
                continue
            r.audio_enc_emb = emb
            done.append(r)
        for i in range(0, len(done), batch_rows):
            updated += store.replace_rows(done[i:i + batch_rows])
    store.set_metadata({"omnialign.encoder.audio_enc_emb": f"{encoder.name}@{encoder.weights_hash}"})
    return AudioBackfillResult(updated, unavailable)
