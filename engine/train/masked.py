"""Masked RVQ code reconstruction of the audio conditioned on the video (a stage-2 local loss).

Audio tokens (masked in spans) and video frame tokens share one transformer; each token carries
its modality and a time embedding of its µs time, so the only way the video can help fill a
masked span is by *when* its frames are. The loss of a trained model as a function of an
artificial shift between the streams is then lowest where the streams are in sync: a learned
sync score (:mod:`engine.train.shift_curve`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from engine.errors import InvalidInputError, check_fields
from engine.train.code_encoder import TICK_US, TimeEmbedding


@dataclass(frozen=True)
class MaskedConfig:
    """Shape of a :class:`MaskedCodeModel`.

    Args:
        audio_levels: RVQ levels of an audio token.
        audio_codebook_size: Codes per audio level.
        video_levels: RVQ levels of a video region token.
        video_codebook_size: Codes per video level.
        regions: Regions per video frame (the tokenizer's patch grid).
        region_dim: Width of one region's embedding; a frame token is a linear map of all of
            them, so a small region (a mouth) keeps its own weights instead of being averaged away.
        target_levels: Leading audio levels that are predicted (the coarse ones carry loudness
            and timbre; the last residuals are close to noise).
        d_model: Transformer width.
        n_layers: Transformer layers.
        n_heads: Attention heads.
        dropout: Transformer dropout.
        tick_us: Time-embedding tick.
        max_period_ticks: Longest sinusoid period in ticks.
    """

    audio_levels: int
    audio_codebook_size: int
    video_levels: int
    video_codebook_size: int
    regions: int
    region_dim: int = 16
    target_levels: int = 2
    d_model: int = 96
    n_layers: int = 2
    n_heads: int = 4
    dropout: float = 0.1
    tick_us: int = TICK_US
    max_period_ticks: float = 10_000.0

    def __post_init__(self) -> None:
        check_fields(self, positive=("audio_levels", "audio_codebook_size", "video_levels", "video_codebook_size",
                                     "regions", "region_dim", "target_levels", "d_model", "n_layers", "n_heads",
                                     "tick_us"))
        if self.target_levels > self.audio_levels:
            raise InvalidInputError("target_levels", f"at most audio_levels={self.audio_levels}, got {self.target_levels}")
        if self.d_model % self.n_heads or self.d_model % 2:
            raise InvalidInputError("d_model", f"must be even and divisible by n_heads={self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise InvalidInputError("dropout", f"must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return {"kind": "masked_audio_codes", **asdict(self)}


class MaskedCodeModel(nn.Module):
    """Predicts masked audio codes from the unmasked audio and the whole video window.

    Args:
        config: The model's shape.
    """

    def __init__(self, config: MaskedConfig) -> None:
        super().__init__()
        c = self.config = config
        self.audio_codes = nn.ModuleList(nn.Embedding(c.audio_codebook_size + 1, c.d_model)  # last id: mask
                                         for _ in range(c.audio_levels))
        self.video_codes = nn.ModuleList(nn.Embedding(c.video_codebook_size, c.region_dim)
                                         for _ in range(c.video_levels))
        self.frame = nn.Sequential(nn.Linear(c.regions * c.region_dim, c.d_model), nn.GELU(),
                                   nn.Linear(c.d_model, c.d_model))
        self.modality = nn.Embedding(2, c.d_model)
        self.time = TimeEmbedding(c.d_model, c.tick_us, c.max_period_ticks)
        layer = nn.TransformerEncoderLayer(c.d_model, c.n_heads, 4 * c.d_model, dropout=c.dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, c.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.d_model)
        self.heads = nn.ModuleList(nn.Linear(c.d_model, c.audio_codebook_size) for _ in range(c.target_levels))

    @property
    def mask_id(self) -> int:
        return self.config.audio_codebook_size

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, Ta, target_levels, K]`` logits for every audio position (see
        :func:`engine.train.windows.collate` for the batch)."""
        c = self.config
        audio, video = batch["audio"], batch["video"]
        if audio.shape[-1] != c.audio_levels or video.shape[-2:] != (c.regions, c.video_levels):
            raise InvalidInputError("batch", f"need audio [B, T, {c.audio_levels}] and video [B, T, {c.regions}, "
                                             f"{c.video_levels}], got {tuple(audio.shape)} and {tuple(video.shape)}")
        masked = batch["mask"][..., None]
        audio_in = torch.where(masked, torch.full_like(audio, self.mask_id), audio)
        xa = sum(emb(audio_in[..., i]) for i, emb in enumerate(self.audio_codes)) + self.modality.weight[0]
        xa = xa + self.time(batch["audio_t"])
        rv = sum(emb(video[..., i]) for i, emb in enumerate(self.video_codes))  # [B, Tv, R, region_dim]
        xv = self.frame(rv.flatten(2)) + self.modality.weight[1] + self.time(batch["video_t"])
        h = self.encoder(torch.cat([xa, xv], 1), src_key_padding_mask=torch.cat([batch["audio_pad"], batch["video_pad"]], 1))
        h = self.norm(h[:, :audio.shape[1]])
        return torch.stack([head(h) for head in self.heads], 2)

    def loss_per_window(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B]`` mean cross-entropy over each window's masked tokens and predicted levels."""
        logits = self.logits(batch)
        target = batch["audio"][..., :self.config.target_levels]
        ce = F.cross_entropy(logits.flatten(0, 2), target.flatten(), reduction="none").view(target.shape).mean(-1)
        m = batch["mask"].to(ce.dtype)
        return (ce * m).sum(1) / m.sum(1).clamp_min(1.0)
