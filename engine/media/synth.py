"""Deterministic synthetic clips with ground truth, for tests, benchmarks and the demo.

A clip pairs visual events (flashes, scene cuts, a moving object appearing) with audio events
(tone bursts, clicks, noise bursts) under a known A/V relation, using the project's one sign
convention::

    t_audio = offset_s + t_video × (1 + drift_ppm · 1e-6)      (positive offset = audio late)

where ``offset_s`` may jump at given video times (splices). Video frame times come from the PTS
actually written, so variable frame rate and dropped frames are part of the ground truth.
Event spacing is jittered (seeded) so that no offset is ambiguous by periodicity.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from engine.errors import InvalidInputError, check_fields
from engine.media.timeline import US_PER_S

#: Time base used for synthesized video PTS: fine enough for VFR jitter, standard for MPEG.
VIDEO_TIME_BASE = Fraction(1, 90_000)

# container extension -> (video encoder or None, audio encoder or None). Audio-only formats
# carry no video; opus needs 48 kHz.
_FORMATS: dict[str, tuple[str | None, str | None]] = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "aac"),
    ".ts": ("libx264", "aac"),  # MPEG-TS: what udp:// and srt:// live sources carry
    ".webm": ("libvpx", "libopus"),
    ".wav": (None, "pcm_s16le"),
    ".flac": (None, "flac"),
    ".ogg": (None, "libopus"),
    ".mp3": (None, "libmp3lame"),
}

VIDEO_EVENT_KINDS = ("flash", "cut", "object")
AUDIO_EVENT_KINDS = ("tone", "click", "noise")


@dataclass(frozen=True)
class SynthSpec:
    """What to synthesize.

    Attributes:
        duration_s: Length of both streams in seconds.
        fps: Nominal video frame rate.
        width: Frame width in pixels.
        height: Frame height in pixels.
        sample_rate_hz: Audio sample rate written to the file.
        offset_ms: A/V offset at the start (positive = audio late).
        drift_ppm: Audio clock drift relative to video, parts per million.
        splices: ``(t_video_s, offset_ms)`` pairs: from video time ``t_video_s`` on, the offset
            becomes ``offset_ms`` (an edit that cut audio and video at different points).
        dropped_frames: Indices of nominal frames that are not written (PTS gaps).
        vfr_jitter: Each frame's PTS is moved by up to ± this fraction of a frame period / 2
            (0 = constant frame rate).
        event_every_s: Mean spacing of events; actual spacing is drawn from ±40 % around it.
        speech: Adds speech-like modulated noise (syllable-rate envelope) under the events.
        with_audio: Write an audio stream.
        with_video: Write a video stream.
        seed: Seed for every random choice (jitter, noise, colours).
    """

    duration_s: float = 10.0
    fps: float = 25.0
    width: int = 320
    height: int = 240
    sample_rate_hz: int = 48_000
    offset_ms: float = 0.0
    drift_ppm: float = 0.0
    splices: tuple[tuple[float, float], ...] = ()
    dropped_frames: tuple[int, ...] = ()
    vfr_jitter: float = 0.0
    event_every_s: float = 1.0
    speech: bool = False
    with_audio: bool = True
    with_video: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, positive=("duration_s", "fps", "width", "height", "sample_rate_hz", "event_every_s"))
        if not 0 <= self.vfr_jitter < 1:
            raise InvalidInputError("vfr_jitter", f"must be in [0, 1), got {self.vfr_jitter}")

    def offset_s_at(self, t_video_s: float) -> float:
        """Offset in force at a video time, splices applied."""
        offset_ms = self.offset_ms
        for t_splice_s, new_offset_ms in sorted(self.splices):
            if t_video_s >= t_splice_s:
                offset_ms = new_offset_ms
        return offset_ms / 1000.0

    def audio_time_s(self, t_video_s: float) -> float:
        """Where an event at ``t_video_s`` lands in the audio (the project's sign convention)."""
        return self.offset_s_at(t_video_s) + t_video_s * (1.0 + self.drift_ppm * 1e-6)


@dataclass
class SynthEvent:
    """One paired A/V event of the ground truth (times in seconds and microseconds)."""

    video_kind: str
    audio_kind: str
    frame_index: int
    t_video_us: int
    t_audio_us: int

    @property
    def t_video_s(self) -> float:
        return self.t_video_us / US_PER_S

    @property
    def t_audio_s(self) -> float:
        return self.t_audio_us / US_PER_S


@dataclass
class GroundTruth:
    """What was written, exactly.

    Attributes:
        path: The media file.
        spec: The spec it was made from.
        events: Paired events whose both halves lie inside the clip.
        video_frame_t_us: PTS (µs) of every written frame, in order.
        audio_samples: Number of audio samples written.
    """

    path: str
    spec: SynthSpec
    events: list[SynthEvent] = field(default_factory=list)
    video_frame_t_us: list[int] = field(default_factory=list)
    audio_samples: int = 0

    def to_json(self) -> dict:
        """JSON-ready dict (events with both µs and s fields)."""
        return {
            "path": self.path,
            "spec": asdict(self.spec),
            "sign_convention": "t_audio = offset_s + t_video * (1 + drift_ppm*1e-6); positive offset = audio late",
            "events": [
                {**asdict(e), "t_video_s": e.t_video_s, "t_audio_s": e.t_audio_s} for e in self.events
            ],
            "video_frame_t_us": self.video_frame_t_us,
            "audio_samples": self.audio_samples,
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1))


def _validate(spec: SynthSpec, path: Path) -> tuple[str | None, str | None]:
    ext = path.suffix.lower()
    if ext not in _FORMATS:
        raise InvalidInputError("path", f"{path}: unsupported extension {ext!r}; one of {sorted(_FORMATS)}")
    vcodec, acodec = _FORMATS[ext]
    vcodec = vcodec if spec.with_video else None
    acodec = acodec if spec.with_audio else None
    if vcodec is None and acodec is None:
        raise InvalidInputError("spec", f"{path}: nothing to write (no stream this container can hold)")
    # (value ranges are checked when the SynthSpec is made)
    if acodec == "libopus" and spec.sample_rate_hz != 48_000:
        raise InvalidInputError("sample_rate_hz", "opus (webm/ogg) needs 48000 Hz")
    return vcodec, acodec


def _frame_times_us(spec: SynthSpec, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(nominal index, PTS in 90 kHz units) of every frame written."""
    n = int(np.floor(spec.duration_s * spec.fps))
    period_s = 1.0 / spec.fps
    jitter = rng.uniform(-0.5, 0.5, size=n) * spec.vfr_jitter * period_s
    jitter[0] = 0.0  # the clip starts at 0 on both streams
    dropped = set(spec.dropped_frames)
    out = []
    for i in range(n):
        if i in dropped:
            continue
        out.append((i, int(round((i * period_s + jitter[i]) / VIDEO_TIME_BASE))))
    return out


def _plan_events(spec: SynthSpec, frames: list[tuple[int, int]], rng: np.random.Generator) -> list[SynthEvent]:
    times_s = []
    t = 0.5
    while t < spec.duration_s - 0.4:
        times_s.append(t)
        t += spec.event_every_s * rng.uniform(0.6, 1.4)
    frame_t_s = np.array([pts * float(VIDEO_TIME_BASE) for _, pts in frames]) if frames else None
    events = []
    for k, target_s in enumerate(times_s):
        if frame_t_s is not None:
            j = int(np.searchsorted(frame_t_s, target_s))
            if j >= len(frames) - 2:  # keep the whole event (2 frames) inside the clip
                break
            frame_index = j
            t_video_us = int(round(frames[j][1] * VIDEO_TIME_BASE * US_PER_S))
        else:
            frame_index = -1
            t_video_us = int(round(target_s * US_PER_S))
        t_audio_s = spec.audio_time_s(t_video_us / US_PER_S)
        # Audio events start on a sample: the ground truth is that sample's exact time.
        sample = int(round(t_audio_s * spec.sample_rate_hz))
        t_audio_us = int(round(Fraction(sample * US_PER_S, spec.sample_rate_hz)))
        if sample < 0 or t_audio_s > spec.duration_s - 0.25:
            continue
        events.append(
            SynthEvent(
                video_kind=VIDEO_EVENT_KINDS[k % len(VIDEO_EVENT_KINDS)],
                audio_kind=AUDIO_EVENT_KINDS[k % len(AUDIO_EVENT_KINDS)],
                frame_index=frame_index,
                t_video_us=t_video_us,
                t_audio_us=t_audio_us,
            )
        )
    return events


def _render_audio(spec: SynthSpec, events: list[SynthEvent], rng: np.random.Generator) -> np.ndarray:
    sr = spec.sample_rate_hz
    n = int(round(spec.duration_s * sr))
    t = np.arange(n) / sr
    sig = (rng.standard_normal(n) * 0.003).astype(np.float64)  # -50 dBFS floor: never digital silence
    if spec.speech:
        # Band-limited noise with a ~4 Hz syllable envelope: speech-like rhythm without words.
        noise = np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same")
        envelope = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6.28)), 0, None) ** 2
        sig += 0.08 * noise * envelope
    for e in events:
        start = int(round(e.t_audio_us * sr / US_PER_S))
        if e.audio_kind == "tone":
            length = int(0.10 * sr)
            # Cosine phase: full amplitude on the first sample, so the onset is one sample sharp.
            burst = 0.5 * np.cos(2 * np.pi * 1000.0 * np.arange(length) / sr)
        elif e.audio_kind == "click":
            length = int(0.01 * sr)
            burst = 0.8 * np.exp(-np.arange(length) / (0.002 * sr)) * np.sign(rng.standard_normal(length))
        else:
            length = int(0.08 * sr)
            burst = 0.4 * rng.standard_normal(length).clip(-2.0, 2.0)
            burst[:4] = 0.8 * np.sign(burst[:4] + 1e-9)  # a sharp leading edge, like a real hit
        end = min(n, start + length)
        sig[start:end] += burst[: end - start]
    return np.clip(sig, -1.0, 1.0).astype(np.float32)


def _render_frame(spec: SynthSpec, t_s: float, state: dict, event: SynthEvent | None, flash_on: bool) -> np.ndarray:
    h, w = spec.height, spec.width
    if event is not None and event.video_kind == "cut":
        state["bg"] = state["rng"].integers(30, 200, size=3)
    if event is not None and event.video_kind == "object":
        state["objects"] += 1
    img = np.empty((h, w, 3), np.uint8)
    img[:] = state["bg"].astype(np.uint8)
    # A square that always moves (steady motion energy, like real footage) ...
    size = max(8, h // 6)
    x = int((w - size) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.2 * t_s)))
    y = int((h - size) * (0.5 + 0.5 * np.cos(2 * np.pi * 0.13 * t_s)))
    img[y : y + size, x : x + size] = (230, 60, 40)
    # ... and one more static object per "object" event.
    for k in range(state["objects"]):
        ox = (37 * (k + 1)) % max(1, w - size)
        oy = (53 * (k + 1)) % max(1, h - size)
        img[oy : oy + size // 2, ox : ox + size // 2] = (40, 200, 90)
    if flash_on:
        img[:] = 255
    return img


def _to_sample_format(block: np.ndarray, fmt: str) -> np.ndarray:
    """Float samples in [-1, 1] to the encoder's sample format (mono, so planar == packed)."""
    base = fmt.rstrip("p")
    if base == "s16":
        return (block * 32767).astype(np.int16)
    if base == "s32":
        return (block.astype(np.float64) * 2147483647).astype(np.int32)
    if base == "dbl":
        return block.astype(np.float64)
    return block.astype(np.float32)


def synthesize(spec: SynthSpec, path: str | Path) -> GroundTruth:
    """Writes a clip to ``path`` (container chosen by extension) and returns its ground truth.

    Args:
        spec: What to synthesize.
        path: Output file; ``.mp4 .mov .mkv .ts .webm`` hold video (+ audio), ``.wav .flac .ogg .mp3``
            audio only.

    Returns:
        The ground truth: paired events, every written frame's PTS, sample count.

    Raises:
        InvalidInputError: On an unsupported extension or inconsistent spec.
    """
    path = Path(path)
    vcodec, acodec = _validate(spec, path)
    rng = np.random.default_rng(spec.seed)
    frames = _frame_times_us(spec, rng) if vcodec else []
    events = _plan_events(spec, frames, rng)
    truth = GroundTruth(path=str(path), spec=spec, events=events)

    container = av.open(str(path), "w")
    try:
        vstream = astream = None
        if vcodec:
            vstream = container.add_stream(vcodec, rate=Fraction(spec.fps).limit_denominator(1001))
            vstream.width, vstream.height, vstream.pix_fmt = spec.width, spec.height, "yuv420p"
            vstream.codec_context.time_base = VIDEO_TIME_BASE
            if vcodec == "libx264":
                vstream.options = {"preset": "veryfast", "crf": "18"}
            else:
                vstream.bit_rate = 2_000_000
        if acodec:
            astream = container.add_stream(acodec, rate=spec.sample_rate_hz)
            astream.layout = "mono"
            if acodec in ("aac", "libopus", "libmp3lame"):
                astream.bit_rate = 192_000  # transparent enough that onsets stay within ~0.1 ms
        if vstream is not None:
            by_frame = {e.frame_index: e for e in events}
            flash_frames = {e.frame_index + d for e in events if e.video_kind == "flash" for d in (0, 1)}
            state = {"rng": np.random.default_rng(spec.seed + 1), "bg": np.array([60, 80, 110]), "objects": 0}
            for j, (_, pts) in enumerate(frames):
                img = _render_frame(spec, pts * float(VIDEO_TIME_BASE), state, by_frame.get(j), j in flash_frames)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts, frame.time_base = pts, VIDEO_TIME_BASE
                truth.video_frame_t_us.append(int(round(pts * VIDEO_TIME_BASE * US_PER_S)))
                container.mux(vstream.encode(frame))
            container.mux(vstream.encode(None))
        if astream is not None:
            audio = _render_audio(spec, events, rng)
            truth.audio_samples = len(audio)
            fmt = astream.codec_context.format.name if astream.codec_context.format else "fltp"
            chunk = astream.codec_context.frame_size or 1024
            for start in range(0, len(audio), chunk):
                block = audio[start : start + chunk]
                frame = av.AudioFrame.from_ndarray(_to_sample_format(block, fmt)[None, :], format=fmt, layout="mono")
                frame.sample_rate = spec.sample_rate_hz
                frame.pts, frame.time_base = start, Fraction(1, spec.sample_rate_hz)
                container.mux(astream.encode(frame))
            container.mux(astream.encode(None))
    finally:
        container.close()
    return truth
