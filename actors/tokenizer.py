"""Ray Data UDF: tokenize segment records on an actor pool.

Each actor loads the codebooks once (``Tokenizer.load``) and keeps them for its lifetime; it uses
a GPU when Ray gave the actor one. Use it with ``Dataset.map_batches`` and an actor pool::

    ds.map_batches(TokenizeSegments, fn_constructor_kwargs={"codebooks_dir": DIR},
                   compute=ray.data.ActorPoolStrategy(min_size=1, max_size=4),
                   batch_size=1, **tokenizer_resources(num_cpus=0.5, num_gpus=0))

Input rows each hold a pickled list of :class:`~engine.ingest.records.SegmentRecord` (see
:func:`engine.ingest.records.pack_records`; the ingest read task ships one per take); each output
row holds the matching :class:`~engine.ingest.records.TokenRecord` list: raw media dropped,
codes with their exact times, search embeddings and keyframe JPEG thumbnails. A segment that
cannot be tokenized gets an ``error`` instead of failing the dataset, so one bad stream never
stops the others.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from actors.faults import maybe_fail
from engine.ingest.records import pack_records, unpack_records
from engine.ingest.tokenize_stage import tokenize_records


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
        image_encoder: Pretrained encoder of the keyframes' ``image_emb`` (see
            :func:`engine.encode.registry.build_image_encoder`); None: no image embedding.
        fault_injection: Test hook, see :mod:`actors.faults`.
    """

    def __init__(self, codebooks_dir: str, thumbnail_px: int = 160, fault_injection: tuple = (),
                 image_encoder: str | None = None) -> None:
        import ray
        import torch

        from engine.tokenize.tokenizer import Tokenizer

        # Ray sets the visible devices of an actor that asked for GPUs; use one only then.
        has_gpu = bool(ray.get_gpu_ids()) and torch.cuda.is_available()
        self.device = "cuda" if has_gpu else "cpu"
        torch.set_num_threads(1)  # one core per actor: parallelism comes from the pool
        self.tokenizer = Tokenizer.load(codebooks_dir, device=self.device)
        self.thumbnail_px = thumbnail_px
        self.fault_injection = fault_injection
        self.image_encoder = None
        if image_encoder is not None:
            from engine.encode.registry import build_image_encoder

            self.image_encoder = build_image_encoder(image_encoder, self.device)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        recs = unpack_records(batch)
        for rec in recs:
            maybe_fail(self.fault_injection, "tokenizer", rec.segment.index)
        return pack_records(tokenize_records(self.tokenizer, recs, self.thumbnail_px, self.image_encoder))
