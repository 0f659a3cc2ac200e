"""Losses of the alignment stages."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from engine.train.config import AnchorLossConfig


class AnchorLoss(nn.Module):
    """Symmetric InfoNCE between adapter outputs and their paired anchor embeddings.

    The temperature is learned (as its log, so it stays positive) and clamped from below: with
    only a few thousand pairs an unclamped temperature collapses and the logits saturate.
    Rows that share an anchor (two pictures titled alike) are not counted as each other's
    negatives: ``groups`` marks them, and every row of the same group is a positive.

    Args:
        config: Temperature settings.
    """

    def __init__(self, config: AnchorLossConfig | None = None) -> None:
        super().__init__()
        self.config = config or AnchorLossConfig()
        self.log_temperature = nn.Parameter(torch.tensor(math.log(self.config.temperature_init)))

    @property
    def temperature(self) -> float:
        return float(self.log_temperature.detach().exp().clamp_min(self.config.temperature_min))

    def forward(self, z: torch.Tensor, anchor: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """Loss of ``z`` ``[B, D]`` (unit) against ``anchor`` ``[B, D]`` (unit).

        Args:
            z: Adapter outputs.
            anchor: Anchor embeddings of the paired texts (frozen).
            groups: Optional ``[B]`` integer ids; rows with equal ids are all positives.
        """
        t = self.log_temperature.exp().clamp_min(self.config.temperature_min)
        logits = z @ F.normalize(anchor, dim=-1).T / t
        if groups is None:
            target = torch.arange(len(z), device=z.device)
            return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        pos = (groups[:, None] == groups[None, :]).float()
        # Multi-positive InfoNCE: the log of the probability mass on any positive (a twin
        # caption is a right answer, not a negative to push away, nor a target to split mass with).
        neg_inf = torch.finfo(logits.dtype).min
        lp_rows = logits.log_softmax(dim=1).masked_fill(pos == 0, neg_inf)
        lp_cols = logits.log_softmax(dim=0).masked_fill(pos == 0, neg_inf)
        per_row = -lp_rows.logsumexp(dim=1)
        per_col = -lp_cols.logsumexp(dim=0)
        return 0.5 * (per_row.mean() + per_col.mean())
