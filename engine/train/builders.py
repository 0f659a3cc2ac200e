"""Builds pairs from media files and their texts with the product's own frozen encoders.

Pictures go through the ingest decoder (PyAV; alpha composited as ingest does) and
EfficientNet-Lite0; sounds are decoded to 16 kHz mono and pooled by Whisper tiny.en's encoder
(the ``image_emb`` and ``audio_enc_emb`` of ingest, so an adapter trained here embeds stored
rows unchanged); texts are embedded by MiniLM, the frozen anchor. A file that cannot be decoded
is reported by name and left out; the others are kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from engine.errors import InvalidInputError, OmniAlignError
from engine.train.pairs import SPLITS, PairSet

#: Seconds of a sound that are encoded (Whisper's window is 30 s; labelled sounds are short).
MAX_AUDIO_S = 30.0


@dataclass(frozen=True)
class PairItem:
    """One media file and its text.

    Args:
        path: Picture or sound file.
        text: What it shows or sounds like (a title, a phrase).
        split: ``train`` or ``eval``.
    """

    path: str
    text: str
    split: str = "train"

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise InvalidInputError(self.path, "the paired text is empty")
        if self.split not in SPLITS:
            raise InvalidInputError(self.path, f"split must be one of {SPLITS}, got {self.split!r}")

    @property
    def pair_id(self) -> str:
        return hashlib.sha1(f"{self.path}\0{self.text}".encode()).hexdigest()[:20]


def first_picture(path: str) -> np.ndarray:
    """The first frame of a picture or video file as RGB uint8 ``[H, W, 3]``.

    Raises:
        MediaError: The file cannot be decoded (the error names it).
    """
    from engine.media.decode import MediaConfig, SegmentReader
    from engine.errors import EmptyMediaError

    with SegmentReader(path, MediaConfig(decode_audio=False, require_video=True)) as reader:
        for seg in reader:
            if seg.frames:
                return seg.frames[0]
    raise EmptyMediaError(path, "no video frame decoded")


def sound_samples(path: str, max_s: float = MAX_AUDIO_S) -> np.ndarray:
    """The first ``max_s`` seconds of a file's audio as 16 kHz mono float32.

    Raises:
        MediaError: The file cannot be decoded (the error names it).
    """
    from engine.media.decode import MediaConfig, SegmentReader
    from engine.errors import EmptyMediaError

    parts, total = [], 0
    with SegmentReader(path, MediaConfig(decode_video=False, require_audio=True)) as reader:
        for seg in reader:
            parts.append(seg.audio)
            total += len(seg.audio)
            if total >= max_s * seg.audio_rate_hz:
                break
    if not parts or total == 0:
        raise EmptyMediaError(path, "no audio decoded")
    return np.concatenate(parts)[: int(max_s * 16_000)]


class ImageFeatures:
    """EfficientNet-Lite0 pooled features of picture files (``image_emb``'s encoder)."""

    modality = "image"

    def __init__(self) -> None:
        from engine.encode.efficientnet import EfficientNetLiteExtractor

        self._enc = EfficientNetLiteExtractor()
        self.encoder = f"{self._enc.name}@{self._enc.weights_hash}"
        self.dim = self._enc.dim

    def __call__(self, path: str) -> np.ndarray:
        frame = first_picture(path)
        return self._enc.extract(frame[None], np.zeros(1, np.int64)).values[0]


class AudioFeatures:
    """Whisper tiny.en's pooled encoder states of sound files (``audio_enc_emb``'s encoder)."""

    modality = "audio"

    def __init__(self) -> None:
        from engine.encode.audio import build_audio_encoder

        self._enc = build_audio_encoder()
        self.encoder = f"{self._enc.name}@{self._enc.weights_hash}"
        self.dim = self._enc.dim

    def __call__(self, path: str) -> np.ndarray:
        v = self._enc.embed(sound_samples(path))
        if v is None:
            from engine.errors import EmptyMediaError

            raise EmptyMediaError(path, "shorter than 40 ms")
        return v


def feature_extractor(modality: str):
    """The frozen extractor of ``modality`` (``image`` or ``audio``).

    Raises:
        InvalidInputError: Another modality.
    """
    if modality == "image":
        return ImageFeatures()
    if modality == "audio":
        return AudioFeatures()
    raise InvalidInputError("modality", f"pairs from files exist for image and audio, got {modality!r}")


def build_pairs(items: Sequence[PairItem], modality: str, *, extractor=None, embed_texts=None,
                log: Callable[[str], None] = lambda _: None) -> tuple[PairSet, list[str]]:
    """Frozen features and anchor embeddings of ``items``.

    Args:
        items: Files and texts.
        modality: ``image`` or ``audio``.
        extractor: Feature extractor (default: :func:`feature_extractor`); a callable with
            ``encoder`` and ``dim`` attributes.
        embed_texts: ``list[str] -> [N, 384]`` (default: the packaged MiniLM).
        log: Progress sink.

    Returns:
        The pairs, and one ``"path: reason"`` line per file left out.

    Raises:
        InvalidInputError: No item could be used.
    """
    if extractor is None:
        extractor = feature_extractor(modality)
    if embed_texts is None:
        from engine.store.text_embed import get_text_embedder

        embed_texts = get_text_embedder().embed
    kept, feats, failed = [], [], []
    for i, item in enumerate(items):
        try:
            feats.append(np.asarray(extractor(item.path), np.float32))
            kept.append(item)
        except OmniAlignError as exc:
            failed.append(str(exc) if item.path in str(exc) else f"{item.path}: {exc}")
        if (i + 1) % 500 == 0:
            log(f"{modality}: {i + 1}/{len(items)} files encoded")
    if not kept:
        raise InvalidInputError("items", f"none of {len(items)} {modality} files could be used"
                                         + (f"; first: {failed[0]}" if failed else ""))
    anchors = np.asarray(embed_texts([it.text for it in kept]), np.float32)
    pairs = PairSet(modality=modality, encoder=extractor.encoder, ids=[it.pair_id for it in kept],
                    texts=[it.text for it in kept], splits=[it.split for it in kept],
                    features=np.stack(feats), anchors=anchors)
    return pairs, failed
