"""A trained adapter on disk: safetensors weights, a JSON config, a content hash.

Layout of an adapter folder::

    adapter.safetensors   the head's tensors
    adapter.json          {"config": HeadConfig, "hash": sha256 of the tensors file (16 hex),
                           "trained": what trained it (stage, pairs, metrics)}

The hash names the weights in a table's schema metadata (``"image@<hash>"``), so a column
filled by one adapter is never queried with another's outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.errors import InvalidInputError, ModelNotFoundError
from engine.train.config import HeadConfig
from engine.train.heads import ProjectionHead
from engine.weights import weights_hash

WEIGHTS_FILE = "adapter.safetensors"
CONFIG_FILE = "adapter.json"


@dataclass
class Adapter:
    """A loaded, frozen adapter: features of one encoder -> anchor-space unit vectors.

    Attributes:
        config: Its head's config (modality, encoder, shape).
        head: The head, in eval mode.
        hash: Content hash of its weights file.
        trained: What trained it, as recorded.
    """

    config: HeadConfig
    head: ProjectionHead
    hash: str
    trained: dict

    @property
    def name(self) -> str:
        """``"<modality>@<hash>"``: how table metadata names the adapter."""
        return f"{self.config.modality}@{self.hash}"

    @torch.no_grad()
    def embed(self, features: np.ndarray) -> np.ndarray:
        """``[N, in_dim]`` frozen features -> ``[N, 384]`` float32 unit vectors.

        Raises:
            InvalidInputError: The features have the wrong width.
        """
        x = np.asarray(features, np.float32)
        if x.ndim != 2 or x.shape[1] != self.config.in_dim:
            raise InvalidInputError("features", f"adapter {self.name} takes [N, {self.config.in_dim}], got {x.shape}")
        return self.head(torch.from_numpy(x)).numpy().astype(np.float32)


def save_adapter(folder: str | Path, head: ProjectionHead, trained: dict | None = None) -> str:
    """Writes ``head`` into ``folder``; returns the content hash."""
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    save_file(tensors, str(out / WEIGHTS_FILE))
    digest = weights_hash(out / WEIGHTS_FILE)
    meta = {"config": head.config.to_dict(), "hash": digest, "trained": trained or {}}
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
    return digest


def load_adapter(folder: str | Path) -> Adapter:
    """The adapter in ``folder``, checked against its recorded hash.

    Raises:
        ModelNotFoundError: The folder lacks the adapter files.
        InvalidInputError: The weights do not match the recorded hash (edited or truncated).
    """
    from safetensors.torch import load_file

    d = Path(folder)
    if not (d / WEIGHTS_FILE).is_file() or not (d / CONFIG_FILE).is_file():
        raise ModelNotFoundError(str(d), f"no adapter here (need {WEIGHTS_FILE} and {CONFIG_FILE})")
    meta = json.loads((d / CONFIG_FILE).read_text())
    digest = weights_hash(d / WEIGHTS_FILE)
    if digest != meta.get("hash"):
        raise InvalidInputError(str(d), f"weights hash {digest} differs from the recorded {meta.get('hash')}")
    cfg = {k: v for k, v in meta["config"].items() if k != "kind"}
    head = ProjectionHead(HeadConfig(**cfg))
    head.load_state_dict(load_file(str(d / WEIGHTS_FILE)))
    head.eval()
    for p in head.parameters():
        p.requires_grad_(False)
    return Adapter(config=head.config, head=head, hash=digest, trained=meta.get("trained", {}))
