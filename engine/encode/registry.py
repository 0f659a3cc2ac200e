"""Image encoders by name, and the one way a segment's keyframes become its ``image_emb``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from engine.errors import InvalidInputError
from engine.tokenize.features import Features

#: Built-in image encoder names (plus ``hf:<folder>``).
IMAGE_ENCODERS = ("efficientnet-lite0",)


@runtime_checkable
class ImageEncoder(Protocol):
    """A frame encoder for ``image_emb``: a FeatureExtractor with a name and a weights hash."""

    modality: str
    dim: int
    name: str
    weights_hash: str

    def extract(self, data: np.ndarray, t_us, /) -> Features: ...


@dataclass(frozen=True)
class EncoderInfo:
    """What the table's schema metadata records of an encoder column.

    Attributes:
        column: The store column it fills.
        name: Encoder name (``efficientnet-lite0``, ``hf:<folder name>``).
        weights_hash: Hash of its weights, so every row says which model made it.
        dim: Embedding length.
    """

    column: str
    name: str
    weights_hash: str
    dim: int

    def metadata(self) -> dict[bytes, bytes]:
        """Schema metadata entries of this column."""
        return {f"omnialign.encoder.{self.column}".encode(): f"{self.name}@{self.weights_hash}".encode()}


class _PooledHF:
    """A local Hugging Face vision encoder's patch tokens, mean-pooled to one row per frame."""

    def __init__(self, folder: str, device: str) -> None:
        from engine.tokenize.features import HFEncoderExtractor

        self.inner = HFEncoderExtractor(folder, device)
        if self.inner.modality != "video":
            raise InvalidInputError(folder, "not a vision encoder (its input is not pixel_values)")
        self.modality, self.dim = "video", self.inner.dim
        self.name = f"hf:{Path(folder).name}"
        from engine.weights import weights_hash

        self.weights_hash = weights_hash(*(sorted(Path(folder).glob("*.safetensors")) or sorted(Path(folder).glob("*.bin"))))

    def extract(self, data: np.ndarray, t_us, /) -> Features:
        feats = self.inner.extract(data, t_us)
        per = len(feats) // len(t_us)
        values = feats.values.reshape(len(t_us), per, -1).mean(axis=1)
        return Features(values=values.astype(np.float32), t_us=np.asarray(t_us, np.int64))


def build_image_encoder(name: str, device: str = "cpu") -> ImageEncoder:
    """The encoder called ``name``: one of :data:`IMAGE_ENCODERS` or ``hf:<local folder>``.

    Raises:
        InvalidInputError: Unknown name.
        ModelNotFoundError: Its package is not installed.
    """
    if name == "efficientnet-lite0":
        from engine.encode.efficientnet import EfficientNetLiteExtractor

        return EfficientNetLiteExtractor(device)
    if name.startswith("hf:"):
        return _PooledHF(name[3:], device)
    raise InvalidInputError("image_encoder", f"unknown encoder {name!r}; known: {', '.join(IMAGE_ENCODERS)}, hf:<folder>")


def image_encoder_info(name: str) -> EncoderInfo:
    """The column metadata of encoder ``name`` without building it (a driver creates the table
    with it before any actor loads the model)."""
    if name == "efficientnet-lite0":
        from engine.encode.efficientnet import weights_path
        from engine.weights import weights_hash

        return EncoderInfo("image_emb", name, weights_hash(weights_path()), 1280)
    enc = build_image_encoder(name)
    return EncoderInfo("image_emb", enc.name, enc.weights_hash, enc.dim)


def segment_embedding(encoder: ImageEncoder, frames: np.ndarray, t_us: np.ndarray) -> np.ndarray:
    """A segment's ``image_emb``: the L2-normalised mean of its frames' L2-normalised features."""
    v = encoder.extract(frames, t_us).values
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    m = v.mean(axis=0)
    return (m / max(float(np.linalg.norm(m)), 1e-12)).astype(np.float32)


_CACHE: dict[str, ImageEncoder] = {}


def encoder_for_column(spec: str) -> ImageEncoder:
    """The encoder a table's metadata names (``"name@weights hash"``), built once per process.

    Raises:
        InvalidInputError: The installed weights differ from the ones that filled the column
            (its vectors would not be comparable with a query's).
    """
    name, _, want = spec.partition("@")
    enc = _CACHE.get(name)
    if enc is None:
        enc = _CACHE[name] = build_image_encoder(name)
    if want and enc.weights_hash != want:
        raise InvalidInputError("image_emb", f"filled by {name} weights {want}, but the installed ones are "
                                f"{enc.weights_hash}: run `omnialign backfill --force`")
    return enc


def query_image_embedding(spec: str, rgb: np.ndarray, size_px: tuple[int, int] = (160, 120)) -> np.ndarray:
    """``image_emb`` of a query picture (``[H, W, 3]`` uint8 RGB), prepared as ingest prepares
    frames: resized to the working resolution ``size_px`` (width, height) with an area filter."""
    from PIL import Image

    img = np.asarray(Image.fromarray(rgb).resize(size_px, Image.Resampling.BOX))
    return segment_embedding(encoder_for_column(spec), img[None], np.zeros(1, np.int64))


def rgb_on_white(img) -> np.ndarray:
    """A PIL image as ``[H, W, 3]`` uint8 RGB, transparency composited on white (as ingest does)."""
    from PIL import Image

    if img.mode in ("RGBA", "LA", "P", "PA"):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        bg.alpha_composite(rgba)
        img = bg
    return np.asarray(img.convert("RGB"))
