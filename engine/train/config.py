"""Configs of the alignment adapters and of their training (one dataclass per concern)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from engine.errors import InvalidInputError

#: Width of the anchor space: all-MiniLM-L6-v2's sentence embeddings.
ANCHOR_DIM = 384
#: Modalities an adapter can serve (the frozen encoder it sits on is named by ``encoder``).
MODALITIES = ("image", "audio", "codes")


@dataclass(frozen=True)
class HeadConfig:
    """A projection head over one frozen encoder's pooled features.

    Args:
        modality: What the features are of (``image``, ``audio``).
        encoder: The frozen encoder's name and weights hash, as the table's metadata records it
            (``"efficientnet-lite0@5793…"``): an adapter refuses features of another encoder.
        in_dim: Width of those features (1280 for EfficientNet-Lite0, 384 for Whisper tiny.en).
        hidden_dim: Width of the hidden layer.
        out_dim: Width of the anchor space.
        dropout: Dropout on the hidden layer while training.
    """

    modality: str
    encoder: str
    in_dim: int
    hidden_dim: int = 512
    out_dim: int = ANCHOR_DIM
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise InvalidInputError("modality", f"must be one of {MODALITIES}, got {self.modality!r}")
        if not self.encoder:
            raise InvalidInputError("encoder", "must name the frozen encoder the head sits on")
        for name in ("in_dim", "hidden_dim", "out_dim"):
            if getattr(self, name) <= 0:
                raise InvalidInputError(name, f"must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise InvalidInputError("dropout", f"must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return {"kind": "head", **asdict(self)}


@dataclass(frozen=True)
class AnchorLossConfig:
    """Symmetric InfoNCE against the frozen anchor, with a learnable temperature.

    Args:
        temperature_init: Starting temperature (0.07, as CLIP and LanguageBind start).
        temperature_min: Lower clamp: below it the logits overflow the softmax's useful range.
    """

    temperature_init: float = 0.07
    temperature_min: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 < self.temperature_min <= self.temperature_init:
            raise InvalidInputError("temperature_init",
                                    f"need 0 < temperature_min <= temperature_init, got {self.temperature_min}, "
                                    f"{self.temperature_init}")


@dataclass(frozen=True)
class Stage1Config:
    """Global anchoring of one modality's adapter.

    Args:
        epochs: Passes over the training pairs.
        batch_size: Pairs per step; InfoNCE's negatives are the other pairs of the batch.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        seed: Seeds initialisation, dropout and shuffling, so a resumed run matches an
            uninterrupted one.
        loss: The anchor loss.
    """

    epochs: int = 40
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0
    loss: AnchorLossConfig = field(default_factory=AnchorLossConfig)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise InvalidInputError(name, f"must be positive, got {getattr(self, name)}")
        if self.lr <= 0:
            raise InvalidInputError("lr", f"must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise InvalidInputError("weight_decay", f"must be >= 0, got {self.weight_decay}")
