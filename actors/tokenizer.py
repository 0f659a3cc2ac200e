"""Ray Data UDF: tokenize segment records on an actor pool.

Each actor loads the codebooks once (``Tokenizer.load``) and keeps them for its lifetime; it uses
a GPU when Ray gave the actor one. Use it with ``Dataset.map_batches`` and an actor pool::

    ds.map_batches(TokenizeSegments, fn_constructor_kwargs={"codebooks_dir": DIR},
                   compute=ray.data.ActorPoolStrategy(min_size=1, max_size=4),
                   batch_size=1, **tokenizer_resources(num_cpus=0.5, num_gpus=0))

Input rows are :func:`engine.records.segment_to_record` records; output rows drop the raw media
and carry codes with their exact times, search embeddings and keyframe JPEG thumbnails. A
segment that cannot be tokenized gets an ``error`` string instead of failing the dataset, so one
bad stream never stops the others.
"""

from __future__ import annotations

import numpy as np

from engine.errors import OmniAlignError
from engine.records import jpeg_thumbnails, record_to_segment

#: Columns dropped after tokenization (raw media is heavy and no later stage needs it).
RAW_COLUMNS = ("audio", "video", "video_t_us", "audio_rate_hz")
#: Token columns added by the tokenizer (None on a row whose segment failed).
TOKEN_COLUMNS = ("audio_codes", "audio_t_us", "audio_dur_us", "video_codes", "video_token_t_us", "video_row",
                 "video_col", "keyframe_t_us", "keyframe_jpeg", "audio_emb", "video_emb")


def tokenizer_resources(num_cpus: float = 0.5, num_gpus: float = 0.0) -> dict:
    """Resource request per tokenizer actor; fractional so a 2-core machine never deadlocks."""
    res = {"num_cpus": num_cpus}
    if num_gpus:
        res["num_gpus"] = num_gpus
    return res


class TokenizeSegments:
    """Callable class for ``map_batches``: segment records in, token records out.

    Args:
        codebooks_dir: Folder written by ``omnialign rvq fit`` / ``Tokenizer.save``.
        thumbnail_px: Longest side of the keyframe JPEG thumbnails.
    """

    def __init__(self, codebooks_dir: str, thumbnail_px: int = 160) -> None:
        import ray
        import torch

        from engine.tokenizer import Tokenizer

        # Ray sets the visible devices of an actor that asked for GPUs; use one only then.
        has_gpu = bool(ray.get_gpu_ids()) and torch.cuda.is_available()
        self.device = "cuda" if has_gpu else "cpu"
        torch.set_num_threads(1)  # one core per actor: parallelism comes from the pool
        self.tokenizer = Tokenizer.load(codebooks_dir, device=self.device)
        self.thumbnail_px = thumbnail_px

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        n = len(batch["segment_index"])
        keep = [k for k in batch if k not in RAW_COLUMNS]
        out: dict[str, list] = {k: list(batch[k]) for k in keep}
        rows = []
        for i in range(n):
            rec = {k: v[i] for k, v in batch.items()}
            try:
                rows.append(self.tokenize(rec))
            except OmniAlignError as exc:  # this segment fails alone, with its reason on the row
                rows.append({**{k: None for k in TOKEN_COLUMNS}, "tokens_in": 0, "tokens_out": 0,
                             "codebook_version": self.tokenizer.codebook_version,
                             "error": f"{type(exc).__name__}: {exc}"})
        for k in (*TOKEN_COLUMNS, "tokens_in", "tokens_out", "codebook_version", "error"):
            out[k] = [r[k] for r in rows]
        return out

    def tokenize(self, rec: dict) -> dict:
        """Token columns of one segment record."""
        seg = record_to_segment(rec)
        tok = self.tokenizer.encode_segment(seg)
        a, v = tok.audio, tok.video
        q_a, q_v = self.tokenizer.config.audio_quantizers, self.tokenizer.config.video_quantizers
        kf = v.keyframes if v is not None else np.zeros(0, np.int64)
        empty_i64 = np.zeros(0, np.int64)
        empty_i16 = np.zeros(0, np.int16)
        return {
            "audio_codes": a.codes.astype(np.int16) if a else np.zeros((0, q_a), np.int16),
            "audio_t_us": a.t_us if a else empty_i64,
            "audio_dur_us": a.duration_us if a else empty_i64,
            "video_codes": v.codes.astype(np.int16) if v else np.zeros((0, q_v), np.int16),
            "video_token_t_us": v.t_us if v else empty_i64,
            "video_row": v.row.astype(np.int16) if v else empty_i16,
            "video_col": v.col.astype(np.int16) if v else empty_i16,
            "keyframe_t_us": seg.video_t_us[kf] if v is not None else empty_i64,
            "keyframe_jpeg": jpeg_thumbnails(seg.video[kf], self.thumbnail_px) if v is not None else [],
            "audio_emb": tok.audio_embedding,
            "video_emb": tok.video_embedding,
            "tokens_in": (a.tokens_in if a else 0) + (v.tokens_in if v else 0),
            "tokens_out": (a.tokens_out if a else 0) + (v.tokens_out if v else 0),
            "codebook_version": self.tokenizer.codebook_version,
            "error": None,
        }
