"""Fills an encoder column of rows already stored, from their stored keyframes (no re-ingest).

Rows keep their JPEG keyframe thumbnails, so a new or changed image encoder needs no source
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
