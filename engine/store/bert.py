"""A BERT encoder forward pass in plain torch, loaded from a model folder's ``model.safetensors``.

Why not ``transformers.AutoModel``: importing transformers' model classes costs ~6.5 s of CPU on
this machine (the auto factory pulls generation utilities, scikit-learn and more), paid by every
process that embeds text -- the ASR actor, the search service, each ``omnialign search``. The
encoder itself is 6 layers of attention and a feed-forward; this module runs exactly that, with
the same weights and the same arithmetic (post-norm layers, exact erf GELU), and the tests check
it against the sentence-transformers reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.errors import InvalidInputError


@dataclass(frozen=True)
class BertConfig:
    """The fields of a BERT ``config.json`` the forward pass needs."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    layer_norm_eps: float
    max_position_embeddings: int

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise InvalidInputError("config.json", f"hidden_size {self.hidden_size} is not a multiple of "
                                                   f"num_attention_heads {self.num_attention_heads}")

    @classmethod
    def from_dir(cls, model_dir: Path) -> BertConfig:
        raw = json.loads((model_dir / "config.json").read_text())
        if raw.get("model_type") != "bert" or raw.get("hidden_act", "gelu") != "gelu" \
                or raw.get("position_embedding_type", "absolute") != "absolute":
            raise InvalidInputError("config.json", f"{model_dir} is not an absolute-position GELU BERT encoder")
        return cls(raw["hidden_size"], raw["num_hidden_layers"], raw["num_attention_heads"],
                   raw["layer_norm_eps"], raw["max_position_embeddings"])


class BertEncoder:
    """The last hidden states of a BERT encoder (no pooler: sentence embeddings mean-pool them).

    Args:
        model_dir: Folder with ``config.json`` and ``model.safetensors`` (Hugging Face layout).
        device: Torch device of the weights.
    """

    def __init__(self, model_dir: str | Path, device: str = "cpu") -> None:
        from safetensors.torch import load_file

        model_dir = Path(model_dir)
        weights = model_dir / "model.safetensors"
        if not weights.is_file():
            raise InvalidInputError("model_dir", f"no model.safetensors in {model_dir}")
        self.config = BertConfig.from_dir(model_dir)
        w = load_file(str(weights), device=device)
        # Checkpoints saved by BertForMaskedLM & co. prefix every name with "bert.".
        self.w = {k.removeprefix("bert."): v for k, v in w.items()}
        missing = [k for k in self._names() if k not in self.w]
        if missing:
            raise InvalidInputError("model_dir", f"{weights} lacks {len(missing)} BERT weights, e.g. {missing[0]}")

    def _names(self) -> list[str]:
        names = [f"embeddings.{n}" for n in ("word_embeddings.weight", "position_embeddings.weight",
                                             "token_type_embeddings.weight", "LayerNorm.weight", "LayerNorm.bias")]
        for i in range(self.config.num_hidden_layers):
            for part in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                         "intermediate.dense", "output.dense", "attention.output.LayerNorm", "output.LayerNorm"):
                names += [f"encoder.layer.{i}.{part}.weight", f"encoder.layer.{i}.{part}.bias"]
        return names

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.config.layer_norm_eps)

    def _dense(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` token ids and 0/1 mask → ``[B, T, hidden]`` float32 last hidden states."""
        c = self.config
        batch, length = input_ids.shape
        if length > c.max_position_embeddings:
            raise InvalidInputError("input_ids", f"{length} tokens exceed the model's {c.max_position_embeddings}")
        x = (self.w["embeddings.word_embeddings.weight"][input_ids]
             + self.w["embeddings.position_embeddings.weight"][:length]
             + self.w["embeddings.token_type_embeddings.weight"][0])
        x = self._norm(x, "embeddings.LayerNorm")
        heads, head_dim = c.num_attention_heads, c.hidden_size // c.num_attention_heads
        # True where a key may be attended to; padded keys are never attended.
        keep = attention_mask.bool()[:, None, None, :]

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, heads, head_dim).transpose(1, 2)

        for i in range(c.num_hidden_layers):
            p = f"encoder.layer.{i}"
            q, k, v = (split(self._dense(x, f"{p}.attention.self.{n}")) for n in ("query", "key", "value"))
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=keep).transpose(1, 2).reshape(batch, length, -1)
            x = self._norm(self._dense(ctx, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
            h = F.gelu(self._dense(x, f"{p}.intermediate.dense"))  # exact (erf) GELU, as BERT's "gelu"
            x = self._norm(self._dense(h, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        return x
