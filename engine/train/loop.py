"""Stage 1 (global anchoring) as plain torch: state, one epoch, evaluation.

Ray Train's worker loop (:mod:`actors.train`) drives these; tests drive them directly. The state
is a dict of tensors and numbers so a checkpoint is one ``torch.save`` and a resumed run
continues with the same optimiser moments and the same shuffling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

from engine.train.config import HeadConfig, Stage1Config
from engine.train.heads import ProjectionHead
from engine.train.losses import AnchorLoss


@dataclass
class Stage1State:
    """What one adapter's stage 1 needs across steps.

    Attributes:
        head: The adapter being trained.
        loss: The anchor loss (holds the learnable temperature).
        optimizer: AdamW over both.
        epoch: Epochs finished.
    """

    head: ProjectionHead
    loss: AnchorLoss
    optimizer: torch.optim.Optimizer
    epoch: int = 0

    @classmethod
    def create(cls, head_config: HeadConfig, config: Stage1Config) -> "Stage1State":
        torch.manual_seed(config.seed)
        head = ProjectionHead(head_config)
        loss = AnchorLoss(config.loss)
        opt = torch.optim.AdamW(list(head.parameters()) + list(loss.parameters()), lr=config.lr,
                                weight_decay=config.weight_decay)
        return cls(head=head, loss=loss, optimizer=opt)

    def state_dict(self) -> dict:
        return {"head": self.head.state_dict(), "loss": self.loss.state_dict(),
                "optimizer": self.optimizer.state_dict(), "epoch": self.epoch,
                "rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict) -> None:
        self.head.load_state_dict(state["head"])
        self.loss.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        torch.set_rng_state(state["rng"])


def train_epoch(state: Stage1State, batches: Iterable[dict], model: torch.nn.Module | None = None) -> dict:
    """One pass over ``batches`` (dicts of ``feature`` ``[B, in]``, ``anchor`` ``[B, 384]`` and
    optionally ``group`` ``[B]``); returns the epoch's mean loss and the temperature.

    ``model``: what runs the forward pass, when it wraps ``state.head`` (DDP); the head itself
    by default."""
    model = model or state.head
    model.train()
    total, n = 0.0, 0
    for b in batches:
        x = torch.as_tensor(b["feature"], dtype=torch.float32)
        if len(x) < 2:  # InfoNCE needs a negative
            continue
        a = torch.as_tensor(b["anchor"], dtype=torch.float32)
        g = torch.as_tensor(b["group"]) if "group" in b else None
        loss = state.loss(model(x), a, g)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        total += loss.item() * len(x)
        n += len(x)
    state.epoch += 1
    return {"epoch": state.epoch, "loss": total / max(n, 1), "temperature": state.loss.temperature}


def shuffled_batches(features: np.ndarray, anchors: np.ndarray, groups: np.ndarray | None, batch_size: int,
                     seed: int, epoch: int) -> list[dict]:
    """In-memory batches of one epoch, shuffled by ``(seed, epoch)`` (so a resumed run sees the
    order the uninterrupted one would have)."""
    order = np.random.default_rng([seed, epoch]).permutation(len(features))
    out = []
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        b = {"feature": features[idx], "anchor": anchors[idx]}
        if groups is not None:
            b["group"] = groups[idx]
        out.append(b)
    return out


@torch.no_grad()
def anchor_recall(head: ProjectionHead, features: np.ndarray, anchors: np.ndarray, k: int = 1) -> float:
    """Share of rows whose own anchor is among the ``k`` nearest anchors of its output: the
    validation number checkpoints are ranked by."""
    head.eval()
    z = head(torch.as_tensor(features, dtype=torch.float32))
    a = torch.nn.functional.normalize(torch.as_tensor(anchors, dtype=torch.float32), dim=-1)
    top = (z @ a.T).topk(min(k, len(a)), dim=1).indices
    return float((top == torch.arange(len(z))[:, None]).any(1).float().mean())
