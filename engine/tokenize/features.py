"""Feature extractors: plain arrays in, time-stamped float32 feature rows out.

Three extractors share the :class:`FeatureExtractor` protocol:

* :class:`LogMelExtractor` -- audio log-mel frames (16 kHz, 25 ms window, 10 ms hop, 80 mels),
  computed with ``torch.stft`` so a batch runs on GPU as well as CPU.
* :class:`RegionExtractor` -- video region (patch) features: frames resized, cut into a grid of
  patches, each patch embedded by a fixed, seeded random projection of its normalized pixels.
* :class:`HFEncoderExtractor` -- any local Hugging Face ``AutoModel`` (vision: ``pixel_values``
  -> patch tokens; audio: ``input_values`` -> frame tokens), loaded with ``local_files_only``.

Conventions (all extractors):

* Timestamps are int64 microseconds on the caller's clock. Audio frame ``i`` is stamped at its
  window **centre**: ``t_start_us + round(i * hop / sample_rate * 1e6)`` (``torch.stft`` with
  ``center=True`` centres window ``i`` on sample ``i * hop``). Video regions carry the exact
  ``t_us`` of their frame.
* Empty input (0 samples / 0 frames) raises :class:`~engine.errors.InvalidInputError`; so does
  NaN/inf. Silent audio is valid and yields the floor value ``log10(1e-10) = -10`` in every bin.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Protocol, runtime_checkable

import numpy as np
import torch

from engine.errors import InvalidInputError, check_fields
from engine.hf import no_progress_bars

_US_PER_S = 1_000_000


@dataclass(frozen=True)
class Features:
    """Time-stamped feature rows.

    Attributes:
        values: float32 [N, D] feature vectors.
        t_us: int64 [N] timestamp of each row, microseconds.
        row: int32 [N] patch-grid row of each video region, None for audio.
        col: int32 [N] patch-grid column of each video region, None for audio.
        frame_index: int32 [N] index of the source video frame in the input, None for audio.
    """

    values: np.ndarray
    t_us: np.ndarray
    row: Optional[np.ndarray] = None
    col: Optional[np.ndarray] = None
    frame_index: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])


@runtime_checkable
class FeatureExtractor(Protocol):
    """What every extractor offers.

    ``extract(data, t_us)`` takes, for audio, mono float samples [L] and the segment start time
    (int, microseconds); for video, uint8 RGB frames [F, H, W, 3] and per-frame times int64 [F].
    """

    modality: Literal["audio", "video"]
    dim: int

    def extract(self, data: np.ndarray, t_us, /) -> Features: ...


# --------------------------------------------------------------------------------------------
# Input checks


def _check_audio(samples: np.ndarray) -> np.ndarray:
    if not isinstance(samples, np.ndarray):
        raise InvalidInputError("samples", f"must be a numpy array, got {type(samples).__name__}")
    if samples.ndim != 1:
        raise InvalidInputError("samples", f"must be mono 1-D [num_samples], got shape {samples.shape}")
    if samples.dtype.kind != "f":
        raise InvalidInputError("samples", f"must be float PCM in [-1, 1], got dtype {samples.dtype}")
    if samples.size == 0:
        raise InvalidInputError("samples", "empty audio segment (0 samples)")
    if not np.isfinite(samples).all():
        raise InvalidInputError("samples", "contains NaN or inf")
    return samples.astype(np.float32, copy=False)


def check_frames(frames: np.ndarray, t_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(frames, t_us)``: uint8 RGB ``[F, H, W, 3]`` (F > 0) and int64 ``[F]``.

    Raises:
        InvalidInputError: Naming ``frames`` or ``t_us``.
    """
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = getattr(frames, "shape", None)
        raise InvalidInputError("frames", f"must be uint8 RGB [F, H, W, 3], got shape {shape}")
    if frames.dtype != np.uint8:
        raise InvalidInputError("frames", f"must be uint8, got dtype {frames.dtype}")
    if frames.shape[0] == 0:
        raise InvalidInputError("frames", "empty video segment (0 frames)")
    t = np.asarray(t_us)
    if t.shape != (frames.shape[0],) or t.dtype.kind not in "iu":
        raise InvalidInputError("t_us", f"must be int64 [{frames.shape[0]}], got {t.dtype} {t.shape}")
    return frames, t.astype(np.int64, copy=False)


def _check_t_start(t_start_us) -> int:
    if not isinstance(t_start_us, (int, np.integer)) or isinstance(t_start_us, bool):
        raise InvalidInputError("t_start_us", f"must be an int (microseconds), got {type(t_start_us).__name__}")
    return int(t_start_us)


# --------------------------------------------------------------------------------------------
# Audio: log-mel


@dataclass(frozen=True)
class LogMelConfig:
    """Log-mel parameters (defaults match Whisper's front end).

    Attributes:
        sample_rate_hz: Expected input sample rate.
        window_samples: STFT window length (400 = 25 ms at 16 kHz), periodic Hann.
        hop_samples: Frame hop (160 = 10 ms at 16 kHz).
        num_mels: Mel bands.
        min_frequency_hz: Lowest filter edge.
        max_frequency_hz: Highest filter edge.
        floor_power: Power floor before the log (log10(1e-10) = -10 is the silence value).
    """

    sample_rate_hz: int = 16_000
    window_samples: int = 400
    hop_samples: int = 160
    num_mels: int = 80
    min_frequency_hz: float = 0.0
    max_frequency_hz: float = 8_000.0
    floor_power: float = 1e-10

    def __post_init__(self) -> None:
        check_fields(self, positive=("sample_rate_hz", "window_samples", "hop_samples", "num_mels", "floor_power"),
                     non_negative=("min_frequency_hz",))
        if not self.min_frequency_hz < self.max_frequency_hz <= self.sample_rate_hz / 2:
            raise InvalidInputError("max_frequency_hz", f"need min_frequency_hz < max_frequency_hz <= sample_rate_hz / 2, "
                                    f"got {self.min_frequency_hz}..{self.max_frequency_hz} at {self.sample_rate_hz} Hz")


def _hz_to_slaney_mel(hz: np.ndarray) -> np.ndarray:
    # Slaney's scale: linear (200/3 Hz per mel) below 1 kHz, logarithmic (27 mels per factor 6.4) above.
    hz = np.asarray(hz, np.float64)
    log_part = 15.0 + 27.0 * np.log(np.maximum(hz, 1e-10) / 1000.0) / np.log(6.4)
    return np.where(hz >= 1000.0, log_part, 3.0 * hz / 200.0)


def _slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (mel - 15.0)), 200.0 * mel / 3.0)


def slaney_mel_filters(num_frequency_bins: int, num_mels: int, min_hz: float, max_hz: float, sample_rate_hz: int) -> np.ndarray:
    """Triangular mel filters on the Slaney scale with Slaney (unit-area) normalisation.

    The filterbank of Whisper's and librosa's defaults, built here so that starting a tokenizer
    does not import transformers. Returns float64 ``[num_frequency_bins, num_mels]``.
    """
    fft_hz = np.linspace(0.0, sample_rate_hz // 2, num_frequency_bins)
    edges = _slaney_mel_to_hz(np.linspace(_hz_to_slaney_mel(min_hz), _hz_to_slaney_mel(max_hz), num_mels + 2))
    width = np.diff(edges)
    slopes = edges[None, :] - fft_hz[:, None]
    rising, falling = -slopes[:, :-2] / width[:-1], slopes[:, 2:] / width[1:]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return filters * (2.0 / (edges[2:] - edges[:-2]))[None, :]


class LogMelExtractor:
    """Audio log-mel features, ``log10(max(mel_power, floor))`` per 10 ms frame.

    The value is Whisper's log-mel *before* its dynamic-range clamp and ``(x + 4) / 4`` scaling
    (those depend on the whole 30 s window, so they do not belong in a streaming feature).
    The mel filterbank is Whisper's: Slaney mel scale and area normalisation
    (:func:`slaney_mel_filters`).

    Args:
        config: Parameters; defaults are 16 kHz / 25 ms / 10 ms / 80 mels.
        device: torch device the STFT runs on ("cpu", "cuda", ...).
    """

    modality = "audio"

    def __init__(self, config: LogMelConfig = LogMelConfig(), device: str | torch.device = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)
        fb = slaney_mel_filters(config.window_samples // 2 + 1, config.num_mels, config.min_frequency_hz,
                                config.max_frequency_hz, config.sample_rate_hz)
        self._filters = torch.from_numpy(np.asarray(fb, dtype=np.float32)).to(self.device)  # [F, M]
        self._window = torch.hann_window(config.window_samples, periodic=True, device=self.device)
        self.dim = config.num_mels

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Batched log-mel: float [B, L] -> float32 [B, frames, num_mels] on ``self.device``.

        Frame ``i`` is centred on sample ``i * hop``; frames whose centre falls at or after ``L``
        are dropped, so a batch yields ``ceil(L / hop)`` frames per waveform.
        """
        cfg = self.config
        w = waveforms.to(self.device, torch.float32)
        length = w.shape[-1]
        half = cfg.window_samples // 2
        if length <= half:  # reflect padding needs more samples than half a window: zero-extend
            w = torch.nn.functional.pad(w, (0, half + 1 - length))
        spec = torch.stft(w, n_fft=cfg.window_samples, hop_length=cfg.hop_samples, window=self._window,
                          center=True, pad_mode="reflect", return_complex=True)
        power = spec.abs() ** 2                                   # [B, F, T]
        mel = torch.matmul(power.transpose(1, 2), self._filters)  # [B, T, M]
        n_frames = -(-length // cfg.hop_samples)
        return torch.log10(torch.clamp(mel[:, :n_frames], min=cfg.floor_power))

    def frame_times_us(self, num_frames: int, t_start_us: int) -> np.ndarray:
        """int64 [num_frames] centre time of each frame."""
        i = np.arange(num_frames, dtype=np.int64)
        return t_start_us + (i * self.config.hop_samples * _US_PER_S + self.config.sample_rate_hz // 2) \
            // self.config.sample_rate_hz

    def extract(self, samples: np.ndarray, t_start_us: int, /) -> Features:
        """Log-mel frames of one mono segment.

        Args:
            samples: float32/float64 [L] PCM at ``sample_rate_hz``.
            t_start_us: Time of ``samples[0]``, microseconds.

        Returns:
            Features with values [ceil(L / hop), num_mels] and frame-centre ``t_us``.

        Raises:
            InvalidInputError: empty, not 1-D, not float, NaN/inf.
        """
        x = _check_audio(samples)
        t0 = _check_t_start(t_start_us)
        values = self.log_mel(torch.from_numpy(x)[None])[0].cpu().numpy()
        return Features(values=np.ascontiguousarray(values, dtype=np.float32),
                        t_us=self.frame_times_us(values.shape[0], t0))


# --------------------------------------------------------------------------------------------
# Video: region features


@dataclass(frozen=True)
class RegionConfig:
    """Video region features.

    Attributes:
        resize_height_px: Frames are resized (bilinear, antialiased) to this height ...
        resize_width_px: ... and this width before cutting patches.
        patch_px: Square patch side; resize sides must be multiples of it.
        dim: Output feature dimension (random projection of the patch pixels).
        seed: Seed of the fixed projection matrix.
    """

    resize_height_px: int = 224
    resize_width_px: int = 224
    patch_px: int = 16
    dim: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.resize_height_px % self.patch_px or self.resize_width_px % self.patch_px:
            raise InvalidInputError("patch_px", "resize sides must be multiples of patch_px")


class RegionExtractor:
    """Per-patch features of video frames, with exact frame time and (row, col) per patch.

    Each patch's pixels are scaled to [-1, 1], the patch mean is kept as the DC term, and the
    vector is multiplied by a fixed Gaussian matrix (seeded, scaled by 1/sqrt(in_dim)) -- a
    Johnson-Lindenstrauss projection that preserves distances between patches in expectation,
    with no fitting and no state.

    Args:
        config: Grid and projection parameters.
        device: torch device for the resize and projection.
    """

    modality = "video"

    def __init__(self, config: RegionConfig = RegionConfig(), device: str | torch.device = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)
        in_dim = 3 * config.patch_px * config.patch_px
        gen = torch.Generator().manual_seed(config.seed)
        self._proj = (torch.randn(in_dim, config.dim, generator=gen) / in_dim ** 0.5).to(self.device)
        self.grid_rows = config.resize_height_px // config.patch_px
        self.grid_cols = config.resize_width_px // config.patch_px
        self.dim = config.dim

    def extract(self, frames: np.ndarray, t_us: np.ndarray, /) -> Features:
        """Region features of ``F`` frames.

        Args:
            frames: uint8 RGB [F, H, W, 3].
            t_us: int64 [F] frame times, microseconds.

        Returns:
            Features with ``F * grid_rows * grid_cols`` rows in (frame, row, col) raster order.

        Raises:
            InvalidInputError: empty, wrong shape/dtype, or ``t_us`` not matching the frames.
        """
        frames, t = check_frames(frames, t_us)
        cfg = self.config
        x = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        x = torch.nn.functional.interpolate(x, size=(cfg.resize_height_px, cfg.resize_width_px),
                                            mode="bilinear", align_corners=False, antialias=True)
        p = cfg.patch_px
        f = x.shape[0]
        # [F, 3, R*p, C*p] -> [F, R, C, 3*p*p]
        patches = x.reshape(f, 3, self.grid_rows, p, self.grid_cols, p).permute(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(f * self.grid_rows * self.grid_cols, 3 * p * p)
        values = (patches @ self._proj).cpu().numpy().astype(np.float32)
        return _grid_features(values, t, f, self.grid_rows, self.grid_cols)


def _grid_features(values: np.ndarray, t: np.ndarray, f: int, rows: int, cols: int) -> Features:
    per = rows * cols
    r, c = np.divmod(np.arange(per, dtype=np.int32), cols)
    return Features(values=np.ascontiguousarray(values), t_us=np.repeat(t, per),
                    row=np.tile(r.astype(np.int32), f), col=np.tile(c.astype(np.int32), f),
                    frame_index=np.repeat(np.arange(f, dtype=np.int32), per))


# --------------------------------------------------------------------------------------------
# Pretrained encoders (local Hugging Face directories)


class HFEncoderExtractor:
    """Features from a pretrained Hugging Face encoder in a local directory.

    Vision models (``main_input_name == "pixel_values"``, e.g. ViT) turn each frame into patch
    tokens with (row, col); audio models (``"input_values"``, e.g. Wav2Vec2) turn a waveform into
    frame tokens stamped at ``t_start_us + i * stride`` where ``stride`` is the product of the
    model's conv strides. The last hidden state is the feature. Nothing is downloaded.

    Args:
        model_dir: Directory written by ``save_pretrained``.
        device: torch device to run on.

    Raises:
        InvalidInputError: the directory cannot be loaded, or the model's input is neither
            ``pixel_values`` nor ``input_values``.
    """

    def __init__(self, model_dir: str | Path, device: str | torch.device = "cpu") -> None:
        from transformers import AutoModel

        try:
            with no_progress_bars():
                self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise InvalidInputError(str(model_dir), f"cannot load a Hugging Face model: {exc}") from exc
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        cfg = self.model.config
        name = self.model.main_input_name
        if name == "pixel_values":
            self.modality = "video"
            self.image_size = int(cfg.image_size)
            self.patch_size = int(cfg.patch_size)
        elif name == "input_values":
            self.modality = "audio"
            self.sample_rate_hz = 16_000
            self.stride_samples = int(np.prod(cfg.conv_stride))
        else:
            raise InvalidInputError(str(model_dir), f"unsupported model input {name!r}")
        self.dim = int(cfg.hidden_size)

    @torch.no_grad()
    def extract(self, data: np.ndarray, t_us, /) -> Features:
        """Encoder features: see the class docstring for the two input kinds."""
        if self.modality == "video":
            frames, t = check_frames(data, t_us)
            x = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            x = torch.nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                                                align_corners=False, antialias=True)
            hidden = self.model(pixel_values=x).last_hidden_state  # [F, (1 +) P, H]
            side = self.image_size // self.patch_size
            hidden = hidden[:, -side * side:]  # drop the CLS / register tokens in front
            values = hidden.reshape(-1, hidden.shape[-1]).float().cpu().numpy()
            return _grid_features(values, t, frames.shape[0], side, side)
        x = _check_audio(data)
        t0 = _check_t_start(t_us)
        wav = torch.from_numpy(x).to(self.device)[None]
        hidden = self.model(input_values=wav).last_hidden_state[0].float().cpu().numpy()
        i = np.arange(hidden.shape[0], dtype=np.int64)
        times = t0 + (i * self.stride_samples * _US_PER_S) // self.sample_rate_hz
        return Features(values=np.ascontiguousarray(hidden, dtype=np.float32), t_us=times)
