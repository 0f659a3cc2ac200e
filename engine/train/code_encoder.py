"""An adapter over RVQ codes: code embeddings, a time embedding from µs timestamps, a small
transformer, pooling into the anchor space.

Tokens of different modalities arrive at different rates (video codes at the sampled frame rate,
audio codes per 20 ms hop). Positions by index would make one second of video look like a
fraction of a second of audio; the time embedding is computed from each token's timestamp on
the unified timeline, in 40 ms ticks, relative to the window's first token, so the model sees
time, not index, and a window cut anywhere in a stream looks the same.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from engine.errors import InvalidInputError
from engine.train.config import ANCHOR_DIM

#: One tick of the time embedding: 40 ms, a frame at 25 fps and two Whisper encoder states.
TICK_US = 40_000


@dataclass(frozen=True)
class CodeEncoderConfig:
    """Shape of a :class:`CodeEncoder`.

    Args:
        n_levels: RVQ levels per token (the codebook count).
        codebook_size: Codes per level.
        d_model: Transformer width.
        n_layers: Transformer layers.
        n_heads: Attention heads.
        tick_us: Time-embedding tick in µs.
        max_period_ticks: Longest period of the sinusoids, in ticks (10,000 ticks = 400 s).
        out_dim: Anchor-space width.
    """

    n_levels: int
    codebook_size: int
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    tick_us: int = TICK_US
    max_period_ticks: float = 10_000.0
    out_dim: int = ANCHOR_DIM

    def __post_init__(self) -> None:
        for name in ("n_levels", "codebook_size", "d_model", "n_layers", "n_heads", "tick_us", "out_dim"):
            if getattr(self, name) <= 0:
                raise InvalidInputError(name, f"must be positive, got {getattr(self, name)}")
        if self.d_model % self.n_heads or self.d_model % 2:
            raise InvalidInputError("d_model", f"must be even and divisible by n_heads={self.n_heads}, got {self.d_model}")
        if self.max_period_ticks <= 1:
            raise InvalidInputError("max_period_ticks", f"must be > 1, got {self.max_period_ticks}")

    def to_dict(self) -> dict:
        return {"kind": "codes", **asdict(self)}


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of timestamps in ticks (fractional ticks allowed)."""

    def __init__(self, dim: int, tick_us: int, max_period_ticks: float) -> None:
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(max_period_ticks) * torch.arange(half, dtype=torch.float64) / half)
        self.register_buffer("freqs", freqs.float(), persistent=False)
        self.tick_us = tick_us

    def forward(self, t_us: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` int64 µs (relative) -> ``[B, T, dim]``."""
        ticks = t_us.double() / self.tick_us  # float64 first: µs of a long stream overflow float32's mantissa
        ang = ticks[..., None].float() * self.freqs
        return torch.cat([ang.sin(), ang.cos()], dim=-1)


class CodeEncoder(nn.Module):
    """RVQ code windows -> anchor-space unit vectors (and per-token states for local losses).

    Args:
        config: The encoder's shape.
    """

    def __init__(self, config: CodeEncoderConfig) -> None:
        super().__init__()
        self.config = config
        # One table per level, summed: a token's code is its levels' residual sum, so their
        # embeddings add the same way.
        self.codes = nn.ModuleList(nn.Embedding(config.codebook_size + 1, config.d_model)
                                   for _ in range(config.n_levels))  # the last id is the mask token
        self.time = TimeEmbedding(config.d_model, config.tick_us, config.max_period_ticks)
        layer = nn.TransformerEncoderLayer(config.d_model, config.n_heads, 4 * config.d_model, dropout=0.1,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.d_model)
        self.proj = nn.Linear(config.d_model, config.out_dim)

    @property
    def mask_id(self) -> int:
        return self.config.codebook_size

    def states(self, codes: torch.Tensor, t_us: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """Per-token states ``[B, T, d_model]``.

        Args:
            codes: ``[B, T, n_levels]`` int64 codes (``mask_id`` where masked).
            t_us: ``[B, T]`` int64 timestamps on the unified timeline.
            pad: ``[B, T]`` bool, True where a token is padding.

        Raises:
            InvalidInputError: Shapes disagree.
        """
        if codes.ndim != 3 or codes.shape[-1] != self.config.n_levels or t_us.shape != codes.shape[:2]:
            raise InvalidInputError("codes", f"need [B, T, {self.config.n_levels}] codes and [B, T] t_us, "
                                             f"got {tuple(codes.shape)} and {tuple(t_us.shape)}")
        x = sum(emb(codes[..., i]) for i, emb in enumerate(self.codes))
        x = x + self.time(t_us - t_us[:, :1])
        return self.norm(self.encoder(x, src_key_padding_mask=pad))

    def forward(self, codes: torch.Tensor, t_us: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """Mean-pooled (padding excluded), projected, L2-normalised ``[B, out_dim]``."""
        h = self.states(codes, t_us, pad)
        keep = torch.ones(h.shape[:2], dtype=h.dtype, device=h.device) if pad is None else (~pad).to(h.dtype)
        pooled = (h * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp_min(1.0)
        return F.normalize(self.proj(pooled), dim=-1)
