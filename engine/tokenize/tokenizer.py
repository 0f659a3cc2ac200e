"""Segment tokenizer: features → RVQ codes → hierarchical compression, with fitted codebooks.

A :class:`Tokenizer` bundles the audio and video feature extractors, their residual quantizers
and the compression settings. It is fitted once on media (``omnialign rvq fit``), saved as a
folder with a manifest whose ``codebook_version`` is a content hash (stored on every row, so a
row can always be decoded with the codebooks that made it), and loaded by every tokenizer actor.

Folder layout::

    DIR/manifest.json        format_version, codebook_version, extractor/quantizer/compression configs
    DIR/audio/               ResidualVQ.save() of the audio (log-mel) quantizer + normalizer.safetensors
    DIR/video/               ResidualVQ.save() of the video (region) quantizer + normalizer.safetensors

Features are standardized per dimension (mean/std fitted with the codebooks) before
quantization: log-mels sit around a large constant (-10 for silence), and without centring the
codebooks would spend their bits on that offset and errors relative to ``||x||`` would look
deceptively small.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from engine.tokenize.compress import (
    AudioTokens,
    CompressionConfig,
    VideoTokens,
    merge_audio_runs,
    merge_regions,
    select_keyframes,
)
from engine.errors import InvalidInputError, check_fields
from engine.tokenize.features import LogMelConfig, LogMelExtractor, RegionConfig, RegionExtractor
from engine.media.decode import Segment
from engine.tokenize.rvq import ResidualVQ
from engine.media.segment_views import token_frame_indices, token_view

FORMAT_VERSION = 1
_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class TokenizerConfig:
    """What a tokenizer is made of.

    Attributes:
        audio_quantizers: RVQ stages for audio log-mel frames.
        audio_codebook_size: Codewords per audio stage.
        video_quantizers: RVQ stages for video region features.
        video_codebook_size: Codewords per video stage.
        log_mel: Audio front end.
        region: Video front end (grid, projection dim).
        compression: Keyframe / merging settings.
        video_token_fps: Frames per second that get region tokens, chosen by timestamp (one per
            ``1/video_token_fps`` window, like omni models' 2-fps video sampling); the rest of
            the frames still serve sync, which needs every frame's PTS. None: every frame.
        max_fit_vectors: Per modality, at most this many feature vectors are kept (uniform
            reservoir sample) for fitting, so fitting memory is bounded for any amount of media.
        seed: Seed for sampling and k-means.
    """

    audio_quantizers: int = 4
    audio_codebook_size: int = 256
    video_quantizers: int = 4
    video_codebook_size: int = 256
    log_mel: LogMelConfig = field(default_factory=LogMelConfig)
    region: RegionConfig = field(default_factory=lambda: RegionConfig(resize_height_px=112, resize_width_px=112))
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    video_token_fps: float | None = 5.0
    max_fit_vectors: int = 200_000
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, positive=("audio_quantizers", "audio_codebook_size", "video_quantizers",
                                     "video_codebook_size", "video_token_fps", "max_fit_vectors"))

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TokenizerConfig:
        return cls(
            **{k: v for k, v in data.items() if k not in ("log_mel", "region", "compression")},
            log_mel=LogMelConfig(**data["log_mel"]),
            region=RegionConfig(**data["region"]),
            compression=CompressionConfig(**data["compression"]),
        )


@dataclass(frozen=True)
class SegmentTokens:
    """Tokens of one segment; a part is None when the segment has no such modality.

    Attributes:
        audio: Run-length merged audio tokens (exact frame-centre ``t_us``).
        video: Keyframe + merged region tokens (exact frame ``t_us``, ``row``, ``col``).
        audio_embedding: float32 [2·D_audio] search vector: per-dimension mean and standard
            deviation of the segment's standardized log-mel frames, L2-normalized.
        video_embedding: float32 [2·D_video] the same over the segment's kept region tokens.
        video_frames: Indices (into the segment's frames) of the frames that were tokenized;
            ``video.keyframes`` index into these.
    """

    audio: AudioTokens | None
    video: VideoTokens | None
    audio_embedding: np.ndarray | None = None
    video_embedding: np.ndarray | None = None
    video_frames: np.ndarray | None = None


@dataclass(frozen=True)
class FeatureNormalizer:
    """Per-dimension standardization ``(x - mean) / std`` fitted on training features."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> FeatureNormalizer:
        std = x.std(axis=0)
        # A constant dimension (e.g. a mel band above a band-limited source) must not blow up.
        return cls(x.mean(axis=0).astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)

    def save(self, directory: Path) -> None:
        from safetensors.numpy import save_file

        save_file({"mean": self.mean, "std": self.std}, str(directory / "normalizer.safetensors"))

    @classmethod
    def load(cls, directory: Path) -> FeatureNormalizer:
        from safetensors.numpy import load_file

        path = directory / "normalizer.safetensors"
        if not path.is_file():
            raise InvalidInputError(str(directory), "missing normalizer.safetensors")
        data = load_file(str(path))
        return cls(data["mean"], data["std"])


class _Reservoir:
    """Uniform sample of at most ``capacity`` rows from a stream of row blocks (Algorithm R)."""

    def __init__(self, capacity: int, seed: int) -> None:
        self.capacity = capacity
        self.rng = np.random.default_rng(seed)
        self.rows: list[np.ndarray] = []
        self.seen = 0

    def add(self, block: np.ndarray) -> None:
        for row in block:
            if len(self.rows) < self.capacity:
                self.rows.append(row)
            else:
                j = int(self.rng.integers(0, self.seen + 1))
                if j < self.capacity:
                    self.rows[j] = row
            self.seen += 1

    def array(self) -> np.ndarray:
        return np.stack(self.rows).astype(np.float32) if self.rows else np.zeros((0, 0), np.float32)


class Tokenizer:
    """Fitted audio/video tokenizer for segments (stateless per call; safe to share in an actor).

    Args:
        config: The configuration.
        audio_rvq: Fitted audio quantizer (None: audio is not tokenized).
        video_rvq: Fitted video quantizer (None: video is not tokenized).
        device: torch device for feature extraction and encoding ("cpu", "cuda").
    """

    def __init__(self, config: TokenizerConfig, audio_rvq: ResidualVQ | None, video_rvq: ResidualVQ | None,
                 device: str = "cpu", audio_norm: FeatureNormalizer | None = None,
                 video_norm: FeatureNormalizer | None = None) -> None:
        self.config = config
        self.audio_extractor = LogMelExtractor(config.log_mel, device=device)
        self.video_extractor = RegionExtractor(config.region, device=device)
        for name, ext, rvq in (("audio_rvq", self.audio_extractor, audio_rvq), ("video_rvq", self.video_extractor, video_rvq)):
            if rvq is not None and rvq.dim != ext.dim:
                raise InvalidInputError(name, f"dim {rvq.dim} does not match its feature dim {ext.dim}")
        self.audio_rvq, self.video_rvq = audio_rvq, video_rvq
        self.audio_norm, self.video_norm = audio_norm, video_norm
        self.device = device
        self.codebook_version = _codebook_version(audio_rvq, video_rvq, audio_norm, video_norm)

    # -- fitting -------------------------------------------------------------------------------
    @classmethod
    def fit(cls, segments: Iterable[Segment], config: TokenizerConfig | None = None) -> Tokenizer:
        """Fits both quantizers on the features of ``segments`` (any number: reservoir-sampled).

        Raises:
            InvalidInputError: If the segments hold no audio and no video at all.
        """
        config = config or TokenizerConfig()
        tok = cls(config, None, None)
        audio = _Reservoir(config.max_fit_vectors, config.seed)
        video = _Reservoir(config.max_fit_vectors, config.seed + 1)
        for seg in segments:
            if seg.audio is not None and seg.n_audio_samples > 0:
                audio.add(tok.audio_extractor.extract(seg.audio, seg.t_start_us).values)
            if seg.frames is not None and seg.n_video_frames > 0:
                keep = tok.token_frames(seg.video_t_us)  # fit on the frames that get tokens
                video.add(tok.video_extractor.extract(np.stack([seg.frames[i] for i in keep]), seg.video_t_us[keep]).values)
        fitted = {}
        for name, res, q, k, dim in (
            ("audio", audio, config.audio_quantizers, config.audio_codebook_size, tok.audio_extractor.dim),
            ("video", video, config.video_quantizers, config.video_codebook_size, tok.video_extractor.dim),
        ):
            if res.rows:
                x = res.array()
                if float(x.std(axis=0).max()) == 0.0:
                    # Silence or a frozen picture: encoding such segments is fine, but codebooks
                    # fitted on them would map all real content to one code.
                    raise InvalidInputError(name, f"all {len(x)} {name} feature vectors are identical "
                                                  f"(silent or static input): cannot fit codebooks on them")
                norm = FeatureNormalizer.fit(x)
                rvq = ResidualVQ(q, k, dim, seed=config.seed)
                rvq.fit(norm(x))
                fitted[name] = (rvq, norm)
        if not fitted:
            raise InvalidInputError("segments", "no audio or video data to fit codebooks on")
        a, v = fitted.get("audio", (None, None)), fitted.get("video", (None, None))
        return cls(config, a[0], v[0], audio_norm=a[1], video_norm=v[1])

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Writes the manifest and both quantizers into ``directory``."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for name, rvq, norm in (("audio", self.audio_rvq, self.audio_norm), ("video", self.video_rvq, self.video_norm)):
            if rvq is not None:
                rvq.save(path / name)
                norm.save(path / name)
        manifest = {
            "format_version": FORMAT_VERSION,
            "codebook_version": self.codebook_version,
            "config": self.config.to_json(),
            "modalities": [m for m, r in (("audio", self.audio_rvq), ("video", self.video_rvq)) if r is not None],
        }
        (path / _MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> Tokenizer:
        """Loads a folder written by :meth:`save`.

        Raises:
            InvalidInputError: Missing manifest, unknown format, or codebooks that do not match
                the manifest's version hash (a corrupted or mixed folder).
        """
        path = Path(directory)
        if not (path / _MANIFEST).is_file():
            raise InvalidInputError(str(path), f"no {_MANIFEST}: not a codebook folder (make one with `omnialign rvq fit`)")
        manifest = json.loads((path / _MANIFEST).read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise InvalidInputError(str(path), f"format_version {manifest.get('format_version')!r} is not supported")
        config = TokenizerConfig.from_json(manifest["config"])
        present = manifest["modalities"]
        rvqs = {m: ResidualVQ.load(path / m) if m in present else None for m in ("audio", "video")}
        norms = {m: FeatureNormalizer.load(path / m) if m in present else None for m in ("audio", "video")}
        tok = cls(config, rvqs["audio"], rvqs["video"], device=device, audio_norm=norms["audio"], video_norm=norms["video"])
        if tok.codebook_version != manifest["codebook_version"]:
            raise InvalidInputError(str(path), "codebooks do not match the manifest's codebook_version")
        return tok

    # -- encoding ------------------------------------------------------------------------------
    def encode_segment(self, segment: Segment) -> SegmentTokens:
        """Tokenizes one segment; every kept token keeps its source token's exact ``t_us``.

        Raises:
            InvalidInputError: A modality present in the segment has no fitted quantizer, or its
                data is invalid (NaN, wrong shape).
        """
        audio = video = audio_emb = video_emb = None
        if segment.audio is not None and segment.n_audio_samples > 0:
            if self.audio_rvq is None:
                raise InvalidInputError("audio", f"segment {segment.stream_id}#{segment.index} has audio but the codebooks have none")
            feats = self.audio_extractor.extract(segment.audio, segment.t_start_us)
            x = self.audio_norm(feats.values) if self.audio_norm else feats.values
            codes = np.asarray(self.audio_rvq.encode(x))
            audio = merge_audio_runs(codes, feats.t_us, self._hop_us, self.config.compression.audio_match_stages)
            audio_emb = pooled_embedding(x)
        if segment.frames is not None and segment.n_video_frames > 0:
            if self.video_rvq is None:
                raise InvalidInputError("video", f"segment {segment.stream_id}#{segment.index} has video but the codebooks have none")
            keep = self.token_frames(segment.video_t_us)
            frames = np.stack([segment.frames[i] for i in keep])  # only the sampled frames
            feats = self.video_extractor.extract(frames, segment.video_t_us[keep])
            if self.video_norm:
                feats = replace(feats, values=self.video_norm(feats.values))
            codes = np.asarray(self.video_rvq.encode(feats.values))
            n_frames = int(feats.frame_index.max()) + 1
            keyframes = select_keyframes(feats.values.reshape(n_frames, -1), self.config.compression)
            video = merge_regions(feats, codes, keyframes, segment.duration_us, self.config.compression)
            video_emb = pooled_embedding(video.values)
        return SegmentTokens(audio=audio, video=video, audio_embedding=audio_emb, video_embedding=video_emb,
                             video_frames=keep if video is not None else None)

    def token_frames(self, t_us: np.ndarray) -> np.ndarray:
        """Indices of the frames that get tokens: the first frame of each 1/video_token_fps window."""
        return token_frame_indices(t_us, self.config.video_token_fps)

    def token_view(self, segment: Segment) -> Segment:
        """The segment with only the frames that get tokens (see :func:`token_view`)."""
        return token_view(segment, self.config.video_token_fps)

    @staticmethod
    def load_config(directory: str | Path) -> TokenizerConfig:
        """The configuration of a codebook folder, without loading its codebooks."""
        path = Path(directory) / _MANIFEST
        if not path.is_file():
            raise InvalidInputError(str(directory), f"no {_MANIFEST}: not a codebook folder (make one with `omnialign rvq fit`)")
        return TokenizerConfig.from_json(json.loads(path.read_text())["config"])

    def embed_audio(self, samples: np.ndarray, t_start_us: int = 0) -> np.ndarray:
        """Search vector of a mono 16 kHz clip, computed exactly as for ingested segments."""
        x = self.audio_extractor.extract(samples, t_start_us).values
        return pooled_embedding(self.audio_norm(x) if self.audio_norm else x)

    def embed_frames(self, frames: np.ndarray, t_us: np.ndarray) -> np.ndarray:
        """Search vector of RGB frames [F, H, W, 3] (e.g. one image), as for ingested video."""
        feats = self.video_extractor.extract(frames, t_us)
        return pooled_embedding(self.video_norm(feats.values) if self.video_norm else feats.values)

    @property
    def audio_embedding_dim(self) -> int:
        return 2 * self.audio_extractor.dim

    @property
    def video_embedding_dim(self) -> int:
        return 2 * self.video_extractor.dim

    @property
    def _hop_us(self) -> int:
        c = self.config.log_mel
        return c.hop_samples * 1_000_000 // c.sample_rate_hz


def pooled_embedding(x: np.ndarray) -> np.ndarray:
    """Segment search vector: [mean, std] over rows, L2-normalized (float32 [2·D]).

    Mean alone blurs segments of similar average spectrum together; the spread keeps events
    (bursts, cuts) visible. Cosine similarity of these is what search ranks by.
    """
    v = np.concatenate([x.mean(axis=0), x.std(axis=0)]).astype(np.float32)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _codebook_version(*parts: ResidualVQ | FeatureNormalizer | None) -> str:
    """Content hash of codebooks and normalizers (first 16 hex digits of SHA-256)."""
    h = hashlib.sha256()
    for part in parts:
        if part is None:
            h.update(b"none")
        elif isinstance(part, FeatureNormalizer):
            h.update(part.mean.tobytes() + part.std.tobytes())
        else:
            h.update(np.ascontiguousarray(part.codebooks.numpy()).tobytes())
    return h.hexdigest()[:16]
