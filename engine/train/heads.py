"""Projection heads: a frozen encoder's pooled features into the anchor space."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from engine.train.config import HeadConfig


class ProjectionHead(nn.Module):
    """A two-layer MLP with a linear skip path, L2-normalised output.

    The skip path lets the head start near a linear map (what a few thousand pairs support
    best) while the MLP learns what a linear map cannot; LayerNorm on the input makes the
    frozen encoders' very different feature scales (EfficientNet's pooled activations, Whisper's
    encoder states) look alike to the optimiser.

    Args:
        config: The head's shape.
    """

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        self.norm = nn.LayerNorm(config.in_dim)
        self.fc1 = nn.Linear(config.in_dim, config.hidden_dim)
        self.fc2 = nn.Linear(config.hidden_dim, config.out_dim)
        self.skip = nn.Linear(config.in_dim, config.out_dim, bias=False)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_dim]`` features -> ``[B, out_dim]`` unit vectors."""
        h = self.norm(x)
        y = self.fc2(self.drop(F.gelu(self.fc1(h)))) + self.skip(h)
        return F.normalize(y, dim=-1)


def trainable_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
