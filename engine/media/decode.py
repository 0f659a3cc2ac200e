"""Decoding media into fixed-length segments on the unified timeline.

:class:`SegmentReader` demuxes one source (file or live URL) with PyAV, decodes audio and video as
they interleave, and yields :class:`Segment` objects as soon as both streams have passed a
segment's end — so a live source produces segments while it plays and memory stays bounded to
about one segment plus the streams' interleaving skew.

Audio is resampled to mono float32 at ``audio_rate_hz`` and laid on a sample grid anchored by
PTS: every full segment holds exactly ``segment_s × audio_rate_hz`` samples, sliced by sample
time, not by codec frame. Video frames keep their own PTS-derived ``t_us``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from engine.errors import (
    EmptyMediaError,
    InvalidInputError,
    MissingStreamError,
    SourceConnectionError,
    TruncatedMediaError,
)
from engine.media.sources import SourceRef, classify, default_stream_id, open_container
from engine.media.timeline import (
    US_PER_S,
    Discontinuity,
    PtsMonitor,
    pts_to_us,
    sample_to_us,
    samples_per_span,
    us_to_sample,
)

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediaConfig:
    """How a source is cut into segments.

    Attributes:
        segment_s: Segment length in seconds; must be a whole number of audio samples.
        audio_rate_hz: Output audio sample rate (mono float32).
        video_width: Output frame width in pixels (None keeps the source's).
        video_height: Output frame height in pixels (None keeps the source's).
        video_max_fps: Keep at most this many frames per second, chosen by timestamp (None: all).
        decode_audio: Decode the audio stream if there is one.
        decode_video: Decode the video stream if there is one.
        require_audio: Raise :class:`MissingStreamError` if there is no audio stream.
        require_video: Raise :class:`MissingStreamError` if there is no video stream.
        pace: Release each segment no earlier than its end in media time after the first
            (makes a file behave like a live source).
        open_timeout_s: Network sources: time allowed to connect.
        read_timeout_s: Network sources: time allowed between reads.
        max_skew_s: If one stream runs this far ahead of the other, segments are released with
            what the lagging stream has (bounds memory on badly interleaved input).
        truncation_tolerance_s: A file whose data ends more than this before its declared
            duration is reported as truncated (after its decodable segments are yielded).
        max_corrupt_fraction: Packets that fail to decode are skipped (FFmpeg resyncs): real
            files carry damaged frames (opencv's Megamind.avi starts with a cut AC3 frame). More
            than this share of a stream's packets (and > 2), or a stream ending in one, fails
            the source with an error naming the stream's codec.
        decode_threads: FFmpeg decoder and scaler threads per stream. 1 (default): concurrent
            streams are the parallelism, and single-threaded decoding costs the least CPU per
            frame (frame threading measured ~30 % more here); 0: FFmpeg's choice (frame + slice
            threads), for a single high-resolution stream that must decode faster than one core
            allows.
    """

    segment_s: float = 2.0
    audio_rate_hz: int = 16_000
    video_width: int | None = None
    video_height: int | None = None
    video_max_fps: float | None = None
    decode_audio: bool = True
    decode_video: bool = True
    require_audio: bool = False
    require_video: bool = False
    pace: bool = False
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    max_skew_s: float = 10.0
    truncation_tolerance_s: float = 0.5
    max_corrupt_fraction: float = 0.01
    decode_threads: int = 1

    @property
    def segment_us(self) -> int:
        """Segment length in microseconds."""
        return int(round(self.segment_s * US_PER_S))

    def __post_init__(self) -> None:
        # Raises InvalidInputError naming the field on inconsistent settings.
        if self.segment_s <= 0:
            raise InvalidInputError("segment_s", f"must be positive, got {self.segment_s}")
        samples_per_span(self.segment_us, self.audio_rate_hz)
        if (self.video_width is None) != (self.video_height is None):
            raise InvalidInputError("video_width/video_height", "give both or neither")
        if self.video_max_fps is not None and self.video_max_fps <= 0:
            raise InvalidInputError("video_max_fps", f"must be positive, got {self.video_max_fps}")
        if self.decode_threads < 0:
            raise InvalidInputError("decode_threads", f"must be >= 0, got {self.decode_threads}")
        if not 0.0 <= self.max_corrupt_fraction <= 1.0:
            raise InvalidInputError("max_corrupt_fraction", f"must be in [0, 1], got {self.max_corrupt_fraction}")


@dataclass
class StreamInfo:
    """What was found when a source was opened.

    Attributes:
        source_uri: The source as given.
        stream_id: Id used for its segments.
        is_live: True for network sources.
        has_audio: An audio stream is decoded.
        has_video: A video stream is decoded.
        audio_in_rate_hz: The source's audio sample rate (None without audio).
        video_fps: The source's average frame rate (None without video or if unknown).
        width: Source frame width in pixels.
        height: Source frame height in pixels.
        origin_us: The source PTS time (µs) taken as 0 on this stream's timeline.
        duration_us: Declared duration (None for live or unknown).
        corrupt_packets: Packets skipped because they failed to decode (see
            ``MediaConfig.max_corrupt_fraction``), by ``"<type> (<codec>)"``.
    """

    source_uri: str
    stream_id: str
    is_live: bool
    has_audio: bool
    has_video: bool
    audio_in_rate_hz: int | None = None
    video_fps: float | None = None
    width: int | None = None
    height: int | None = None
    origin_us: int = 0
    duration_us: int | None = None
    corrupt_packets: dict[str, int] = field(default_factory=dict)


@dataclass
class Segment:
    """One fixed-length slice of a stream on the unified timeline.

    Attributes:
        stream_id: The stream it belongs to.
        index: 0-based segment number; ``t_start_us == index * segment_us``.
        t_start_us: Start (inclusive) on the stream's timeline.
        t_end_us: End (exclusive); equals the next segment's ``t_start_us``.
        audio: Mono float32 samples at ``audio_rate_hz``, exactly covering the segment (zeros where
            the source had no audio), or None if the source has no audio.
        audio_rate_hz: Sample rate of ``audio``.
        frames: The RGB uint8 frames ``[H, W, 3]`` whose PTS fall in the segment, one array per
            frame, or None without video. :attr:`video` stacks them into ``[F, H, W, 3]`` on
            first use: a consumer that needs only some frames (the tokenizer samples 5 per
            second) or small views of them (sync cues) never pays for the full-size stack.
        video_t_us: int64 ``[F]`` PTS-derived time of each frame.
        is_final: This is the stream's last segment (it may be shorter than ``segment_s``).
        discontinuities: PTS discontinuities first seen while filling this segment.
    """

    stream_id: str
    index: int
    t_start_us: int
    t_end_us: int
    audio: np.ndarray | None
    audio_rate_hz: int
    frames: list[np.ndarray] | None
    video_t_us: np.ndarray
    is_final: bool = False
    discontinuities: tuple[Discontinuity, ...] = ()
    _video: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def video(self) -> np.ndarray | None:
        """The frames stacked as uint8 ``[F, H, W, 3]`` (built once, then cached), or None."""
        if self.frames is None:
            return None
        if self._video is None:
            self._video = np.stack(self.frames) if self.frames else np.zeros((0, 0, 0, 3), np.uint8)
        return self._video

    @property
    def duration_us(self) -> int:
        return self.t_end_us - self.t_start_us

    @property
    def n_audio_samples(self) -> int:
        return 0 if self.audio is None else int(self.audio.shape[0])

    @property
    def n_video_frames(self) -> int:
        return int(self.video_t_us.shape[0])


class _AudioGrid:
    """Resampled audio laid on an absolute sample grid (sample i at ``i / rate`` s)."""

    def __init__(self, rate_hz: int, gap_tolerance_us: int) -> None:
        self.rate_hz = rate_hz
        self.monitor = PtsMonitor("audio", gap_tolerance_us)
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=rate_hz)
        self._chunks: list[np.ndarray] = []
        self._buf_start = 0  # grid index of the first buffered sample
        self._write = None  # grid index where the next resampled sample goes
        self.limit_sample: int | None = None  # samples at or past this are dropped (declared end)
        self._skip = 0  # samples still to drop after a backward PTS jump

    @property
    def written(self) -> int:
        return 0 if self._write is None else self._write

    def push(self, frame: av.AudioFrame, t_us: int) -> Discontinuity | None:
        duration_us = sample_to_us(frame.samples, frame.sample_rate)
        disc = self.monitor.observe(t_us, duration_us)
        anchor = us_to_sample(t_us, self.rate_hz)
        if self._write is None:
            self._write = anchor
            self._buf_start = max(0, anchor)
        elif disc is not None:
            # Re-anchor on the PTS: flush the resampler's filter tail first, then pad a gap with
            # zeros or skip samples that go back in time.
            self._append(self._resampled(None))
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.rate_hz)
            if anchor > self._write:
                self._append(np.zeros(anchor - self._write, np.float32))
            else:
                self._skip = self._write - anchor
        self._append(self._resampled(frame))
        return disc

    def flush(self) -> None:
        self._append(self._resampled(None))

    def _resampled(self, frame: av.AudioFrame | None) -> np.ndarray:
        out = self._resampler.resample(frame)
        if not out:
            return np.zeros(0, np.float32)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in out]).astype(np.float32, copy=False)

    def _append(self, samples: np.ndarray) -> None:
        if self._skip:
            drop = min(self._skip, len(samples))
            samples, self._skip = samples[drop:], self._skip - drop
        if self._write is not None and self._write < 0:  # live origin after this audio: drop
            drop = min(-self._write, len(samples))
            samples, self._write = samples[drop:], self._write + drop
        if self.limit_sample is not None and self._write is not None:
            samples = samples[: max(0, self.limit_sample - self._write)]
        if len(samples):
            self._chunks.append(samples)
            self._write += len(samples)

    def take(self, start: int, end: int) -> np.ndarray:
        """Returns grid samples [start, end) (zeros where nothing was decoded); frees older ones."""
        out = np.zeros(end - start, np.float32)
        buf = np.concatenate(self._chunks) if len(self._chunks) > 1 else (self._chunks[0] if self._chunks else np.zeros(0, np.float32))
        lo, hi = max(start, self._buf_start), min(end, self._buf_start + len(buf))
        if hi > lo:
            out[lo - start : hi - start] = buf[lo - self._buf_start : hi - self._buf_start]
        keep_from = max(end, self._buf_start) - self._buf_start
        rest = buf[keep_from:]
        self._chunks = [rest] if len(rest) else []
        self._buf_start = max(end, self._buf_start)
        return out


class SegmentReader:
    """Reads one source and yields its segments; a context manager.

    Example:
        >>> with SegmentReader("clip.mp4", MediaConfig(segment_s=2.0)) as reader:
        ...     for seg in reader:
        ...         print(seg.index, seg.t_start_us, seg.n_audio_samples)
    """

    def __init__(self, source: str, config: MediaConfig | None = None, stream_id: str | None = None) -> None:
        self.config = config or MediaConfig()
        self.ref: SourceRef = classify(source)
        self.stream_id = stream_id or default_stream_id(source)
        self.info: StreamInfo | None = None
        self._container = None

    # -- opening ---------------------------------------------------------------------------
    def open(self) -> StreamInfo:
        """Opens the source and selects streams (idempotent)."""
        if self.info is not None:
            return self.info
        cfg = self.config
        self._container = open_container(self.ref, cfg.open_timeout_s, cfg.read_timeout_s)
        c = self._container
        self._astream = c.streams.best("audio") if cfg.decode_audio else None
        self._vstream = c.streams.best("video") if cfg.decode_video else None
        if self._astream is None and cfg.require_audio:
            self.close()
            raise MissingStreamError(self.ref.uri, "no audio stream (audio is required)")
        if self._vstream is None and cfg.require_video:
            self.close()
            raise MissingStreamError(self.ref.uri, "no video stream (video is required)")
        if self._astream is None and self._vstream is None:
            self.close()
            raise MissingStreamError(self.ref.uri, "no audio or video stream")
        for s in (self._astream, self._vstream):
            if s is not None:
                s.codec_context.thread_count = cfg.decode_threads
                if cfg.decode_threads != 1:
                    s.thread_type = "AUTO"  # frame + slice threads
        starts = [pts_to_us(s.start_time, s.time_base) for s in (self._astream, self._vstream) if s is not None and s.start_time is not None]
        self._origin_us: int | None = min(starts) if starts else None
        duration_us = None
        if not self.ref.is_live and c.duration is not None:
            duration_us = int(c.duration * US_PER_S // av.time_base)
        fps = None
        if self._vstream is not None and self._vstream.average_rate:
            fps = float(self._vstream.average_rate)
        self.info = StreamInfo(
            source_uri=self.ref.uri,
            stream_id=self.stream_id,
            is_live=self.ref.is_live,
            has_audio=self._astream is not None,
            has_video=self._vstream is not None,
            audio_in_rate_hz=self._astream.rate if self._astream is not None else None,
            video_fps=fps,
            width=self._vstream.width if self._vstream is not None else None,
            height=self._vstream.height if self._vstream is not None else None,
            origin_us=self._origin_us or 0,
            duration_us=duration_us,
        )
        return self.info

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> SegmentReader:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def buffered_video_frames(self) -> int:
        """Decoded frames held for segments not yet emitted (bounded: no whole-file buffering)."""
        return len(getattr(self, "_frames", ()))

    def __iter__(self) -> Iterator[Segment]:
        return self.segments()

    # -- decoding --------------------------------------------------------------------------
    def segments(self) -> Iterator[Segment]:
        """Yields segments in order while decoding; raises a :class:`MediaError` after the last
        good segment if the source breaks off (truncated file, dropped connection)."""
        info = self.open()
        cfg = self.config
        seg_us = cfg.segment_us
        self._seg_samples = samples_per_span(seg_us, cfg.audio_rate_hz)
        nominal_frame_us = int(US_PER_S / info.video_fps) if info.video_fps else 40_000
        self._frame_us = nominal_frame_us
        self._audio = _AudioGrid(cfg.audio_rate_hz, gap_tolerance_us=5_000) if self._astream is not None else None
        self._vmon = PtsMonitor("video", gap_tolerance_us=nominal_frame_us // 2) if self._vstream is not None else None
        if self._audio is not None and self._astream.duration is not None and self._origin_us is not None:
            end_us = pts_to_us((self._astream.start_time or 0) + self._astream.duration, self._astream.time_base) - self._origin_us
            self._audio.limit_sample = us_to_sample(end_us, cfg.audio_rate_hz)
        self._frames: list[tuple[int, np.ndarray]] = []
        self._reformatter = VideoReformatter()
        self._video_reached_us = -1
        self._video_end_us = 0
        self._next_keep_us = None
        self._pending_disc: list[Discontinuity] = []
        self._next_index = 0
        self._wall0 = time.monotonic()  # pace: media time 0 is "now"

        streams = [s for s in (self._astream, self._vstream) if s is not None]
        error: Exception | None = None
        packets: dict[str, int] = {}
        last_bad: dict[str, int] = {}  # stream -> index of its last corrupt packet
        name, where, decoding = "container", "", None  # decoding: the stream a failure is named by
        try:
            for packet in self._container.demux(streams):
                name = decoding = f"{packet.stream.type} ({packet.stream.codec_context.name})"
                packets[name] = packets.get(name, 0) + (packet.size > 0)  # not the end-of-stream flush
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError as exc:
                    decoding = None
                    if packet.size == 0:  # the end-of-stream flush: no packet of the file
                        continue
                    # Not fatal (FFmpeg resyncs): counted, judged at the end (see below).
                    self.info.corrupt_packets[name] = self.info.corrupt_packets.get(name, 0) + 1
                    last_bad[name] = packets[name]
                    if self.info.corrupt_packets[name] == 1:
                        _LOG.warning("%s: skipping a corrupt %s packet: %s", self.ref.uri, name, exc)
                    continue
                for frame in frames:
                    (self._push_audio if packet.stream.type == "audio" else self._push_video)(frame)
                decoding = None
                yield from self._ready(final=False)
        except (av.error.FFmpegError, OSError) as exc:
            error = exc
            where = f" in the {decoding} stream" if decoding is not None else ""
        if self._audio is not None:
            self._audio.flush()
        end_us = self._end_us()
        if end_us is None or end_us <= 0:
            self.close()
            if error is not None and self.ref.is_live:
                raise SourceConnectionError(self.ref.uri, f"no data received: {error}")
            if error is not None:
                raise TruncatedMediaError(self.ref.uri, f"no decodable data{where}: {error}")
            if self.info.corrupt_packets:
                raise TruncatedMediaError(self.ref.uri, "no decodable data: every packet is corrupt in "
                                                        + ", ".join(sorted(self.info.corrupt_packets)))
            raise EmptyMediaError(self.ref.uri, "no decodable audio or video frames")
        yield from self._ready(final=True, end_us=end_us)
        self.close()
        if error is not None and self.ref.is_live:
            raise SourceConnectionError(self.ref.uri, f"stream broke off at {end_us / US_PER_S:.2f}s: {error}")
        for name, bad in self.info.corrupt_packets.items():  # a few among good ones are damage
            # Nothing decoded after it: the data was cut there (a TS "declares" what it holds).
            if last_bad[name] == packets[name]:
                raise TruncatedMediaError(
                    self.ref.uri, f"data ends at {end_us / US_PER_S:.2f}s in a corrupt packet of the {name} stream "
                                  "(truncated)")
            if bad > 2 and bad > cfg.max_corrupt_fraction * packets[name]:
                raise TruncatedMediaError(
                    self.ref.uri, f"{bad} of {packets[name]} packets of the {name} stream are corrupt (decoded up to "
                                  f"{end_us / US_PER_S:.2f}s)")
        if error is not None:
            raise TruncatedMediaError(self.ref.uri, f"decoding failed at {end_us / US_PER_S:.2f}s{where}: {error}")
        declared = info.duration_us
        if declared is not None and declared - end_us > cfg.truncation_tolerance_s * US_PER_S:
            raise TruncatedMediaError(
                self.ref.uri, f"data ends at {end_us / US_PER_S:.2f}s of a declared {declared / US_PER_S:.2f}s (truncated)"
            )

    def _timeline_us(self, frame) -> int | None:
        pts = frame.pts
        if pts is None:
            return None
        t = pts_to_us(pts, frame.time_base)
        if self._origin_us is None:  # live source without start_time: first item is time 0
            self._origin_us = t
            self.info.origin_us = t
        return t - self._origin_us

    def _push_audio(self, frame: av.AudioFrame) -> None:
        t_us = self._timeline_us(frame)
        if t_us is None:
            t_us = sample_to_us(self._audio.written, self.config.audio_rate_hz)
        disc = self._audio.push(frame, t_us)
        if disc is not None:
            self._pending_disc.append(disc)

    def _push_video(self, frame: av.VideoFrame) -> None:
        t_us = self._timeline_us(frame)
        if t_us is None:
            return  # no timestamp at all: a frame we cannot place on the timeline is not invented
        disc = self._vmon.observe(t_us, self._frame_us)
        if disc is not None:
            self._pending_disc.append(disc)
        self._video_reached_us = max(self._video_reached_us, t_us)
        self._video_end_us = max(self._video_end_us, t_us + self._frame_us)
        if t_us < 0:
            return
        cfg = self.config
        if cfg.video_max_fps is not None:
            if self._next_keep_us is not None and t_us < self._next_keep_us:
                return
            # At most one frame per fixed window of 1/max_fps, chosen by timestamp, so the kept
            # frames stay on their true times whatever the source's (variable) rate.
            step = int(US_PER_S / cfg.video_max_fps)
            self._next_keep_us = (t_us // step + 1) * step
        # One reformatter per reader: ``VideoFrame.reformat`` builds a fresh swscale context per
        # call, which cost 3x the H.264 decode itself. AREA: the anti-aliased choice for the
        # large downscales ingest makes (and among the fastest).
        if _has_alpha(frame.format.name):
            # A picture with transparency (clip-art PNG, WebP): composited on white, as a viewer
            # shows it; dropping alpha would leave whatever colour the transparent pixels hold.
            rgba = self._reformatter.reformat(frame, width=cfg.video_width, height=cfg.video_height, format="rgba",
                                              interpolation="AREA", threads=cfg.decode_threads)
            self._frames.append((t_us, _on_white(rgba)))
            return
        rgb = self._reformatter.reformat(frame, width=cfg.video_width, height=cfg.video_height, format="rgb24",
                                         interpolation="AREA", threads=cfg.decode_threads)
        self._frames.append((t_us, _rgb_view(rgb)))

    def _reached_us(self) -> tuple[int | None, int | None]:
        a = None if self._audio is None else sample_to_us(self._audio.written, self.config.audio_rate_hz)
        v = None if self._vstream is None else self._video_reached_us
        return a, v

    def _end_us(self) -> int | None:
        ends = []
        if self._audio is not None and self._audio.written > 0:
            ends.append(sample_to_us(self._audio.written, self.config.audio_rate_hz))
        if self._vstream is not None and self._video_end_us > 0:
            ends.append(self._video_end_us)
        return max(ends) if ends else None

    def _ready(self, final: bool, end_us: int | None = None) -> Iterator[Segment]:
        seg_us = self.config.segment_us
        skew_us = int(self.config.max_skew_s * US_PER_S)
        while True:
            k = self._next_index
            t0, t1 = k * seg_us, (k + 1) * seg_us
            if final:
                if t0 >= end_us:
                    return
                is_final = t1 >= end_us
                t1 = min(t1, end_us)
            else:
                a, v = self._reached_us()
                # A stream is "past" the segment when it has data beyond its end; the decoder
                # emits in PTS order, so nothing earlier can still arrive.
                a_ok = a is None or a >= t1
                v_ok = v is None or v >= t1
                lead = max(x for x in (a, v) if x is not None) if (a is not None or v is not None) else -1
                if not (a_ok and v_ok) and lead < t1 + skew_us:
                    return
                is_final = False
            yield self._emit(k, t0, t1, is_final)
            self._next_index += 1
            if is_final:
                return

    def _emit(self, k: int, t0: int, t1: int, is_final: bool) -> Segment:
        rate = self.config.audio_rate_hz
        audio = None
        if self._audio is not None:
            s0 = us_to_sample(t0, rate)
            s1 = s0 + self._seg_samples if not is_final else us_to_sample(t1, rate)
            audio = self._audio.take(s0, s1)
        frames = None
        t_list: list[int] = []
        if self._vstream is not None:
            inside = [(t, img) for t, img in self._frames if t0 <= t < t1]
            self._frames = [(t, img) for t, img in self._frames if t >= t1]
            t_list = [t for t, _ in inside]
            frames = [img for _, img in inside]  # zero-copy views of the converted frames
        disc, self._pending_disc = tuple(self._pending_disc), []
        seg = Segment(
            stream_id=self.stream_id,
            index=k,
            t_start_us=t0,
            t_end_us=t1,
            audio=audio,
            audio_rate_hz=rate,
            frames=frames,
            video_t_us=np.asarray(t_list, dtype=np.int64),
            is_final=is_final,
            discontinuities=disc,
        )
        if self.config.pace:
            self._wait_until(t1)
        return seg

    def _wait_until(self, t_us: int) -> None:
        # A live source cannot deliver a segment before its end has been played.
        delay = self._wall0 + t_us / US_PER_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def _has_alpha(pix_fmt: str) -> bool:
    """Whether frames of this pixel format carry transparency."""
    return pix_fmt == "pal8" or pix_fmt.startswith(("rgba", "bgra", "argb", "abgr", "ya", "yuva", "gbrap"))


def _on_white(rgba: av.VideoFrame) -> np.ndarray:
    """[H, W, 3] uint8 of an rgba frame composited over white."""
    plane = rgba.planes[0]
    px = np.frombuffer(plane, np.uint8).reshape(rgba.height, plane.line_size)[:, : rgba.width * 4]
    px = px.reshape(rgba.height, rgba.width, 4).astype(np.uint16)
    a = px[..., 3:4]
    return ((px[..., :3] * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def _rgb_view(rgb: av.VideoFrame) -> np.ndarray:
    """Zero-copy [H, W, 3] view of an rgb24 frame's plane (rows may be padded to line_size)."""
    plane = rgb.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(rgb.height, plane.line_size)
    return rows[:, : rgb.width * 3].reshape(rgb.height, rgb.width, 3)


def iter_segments(source: str, config: MediaConfig | None = None, stream_id: str | None = None) -> Iterator[Segment]:
    """Yields the segments of one source (see :class:`SegmentReader`)."""
    with SegmentReader(source, config, stream_id) as reader:
        yield from reader.segments()
