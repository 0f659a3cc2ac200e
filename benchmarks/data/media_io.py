"""PyAV helpers of the dev-set build: decode a sound to mono float, re-mux a real video with its
audio shifted and drifted, encode a composed clip.

Shift/drift convention (the project's): audio content heard at ``tau`` in the source is heard at
``shift_s + tau * (1 + drift_ppm * 1e-6)`` in the re-mux; the video packets are copied unchanged.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def decode_audio(path: str | Path, rate_hz: int = 16_000, max_s: float | None = None) -> np.ndarray:
    """Mono float32 samples of a sound file's first audio stream at ``rate_hz``; corrupt
    packets are skipped."""
    out: list[np.ndarray] = []
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate_hz)
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        for packet in c.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue  # one corrupt packet (Megamind.avi's first AC3 one) is skipped, not fatal
            for frame in frames:
                for r in resampler.resample(frame):
                    out.append(r.to_ndarray().reshape(-1))
            if max_s is not None and sum(len(o) for o in out) >= max_s * rate_hz:
                break
        for r in resampler.resample(None):
            out.append(r.to_ndarray().reshape(-1))
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def container_for(src: str | Path) -> str:
    """Extension of the re-mux of ``src``: ``.mkv`` where Matroska takes its video codec."""
    with av.open(str(src)) as c:
        return ".mkv" if c.streams.video[0].codec_context.name in ("h264", "hevc", "vp9", "av1") else ".avi"


def _audio_start_s(path: str | Path) -> float:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        if s.start_time is not None:
            return float(s.start_time * s.time_base)
        for frame in c.decode(s):
            return float(frame.time) if frame.time is not None else 0.0
    return 0.0


def warp_samples(x: np.ndarray, rate_hz: int, shift_s: float, drift_ppm: float, t0_s: float = 0.0) -> np.ndarray:
    """Resamples ``x`` (starting at ``t0_s``) so content at ``tau`` moves to ``shift + tau*(1+d)``;
    the output starts at ``t0_s`` too and is as long as the input (zeros where nothing maps)."""
    scale = 1.0 + drift_ppm * 1e-6
    tau_out = t0_s + np.arange(len(x)) / rate_hz
    src = ((tau_out - shift_s) / scale - t0_s) * rate_hz
    return np.interp(src, np.arange(len(x)), x, left=0.0, right=0.0).astype(np.float32)


def remux_shifted(src: str | Path, dst: str | Path, shift_ms: float, drift_ppm: float) -> dict:
    """Writes ``dst``: the video packets of ``src`` copied, the audio decoded, shifted by
    ``shift_ms`` and resampled for ``drift_ppm``, re-encoded at its own rate — FLAC in ``.mkv``,
    16-bit PCM in ``.avi`` (PyAV's Matroska muxer refuses msvideo1, so those go to AVI).

    Returns:
        What was written (source audio codec/rate, start time, samples).
    """
    with av.open(str(src)) as c:
        a = c.streams.audio[0]
        rate = a.codec_context.sample_rate or 16_000
        a_codec = a.codec_context.name
    x = decode_audio(src, rate)
    t0 = _audio_start_s(src)
    y = warp_samples(x, rate, shift_ms / 1000.0, drift_ppm, t0)
    with av.open(str(src)) as cin, av.open(str(dst), "w") as cout:
        vin = cin.streams.video[0]
        vout = cout.add_stream_from_template(vin)
        aout = cout.add_stream("pcm_s16le" if str(dst).endswith(".avi") else "flac", rate=rate)
        aout.layout = "mono"
        tb = Fraction(1, rate)
        start = int(round(t0 * rate))
        for k in range(0, len(y), 4096):
            block = (np.clip(y[k:k + 4096], -1, 1) * 32767).astype(np.int16)[None, :]
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start + k, tb
            for p in aout.encode(frame):
                cout.mux(p)
        for p in aout.encode(None):
            cout.mux(p)
        try:
            for pkt in cin.demux(vin):
                if pkt.dts is None and pkt.pts is None:
                    continue
                pkt.stream = vout
                cout.mux(pkt)
        except av.error.FFmpegError:
            pass  # a corrupt tail: the packets before it are the clip
    return {"audio_codec": a_codec, "audio_rate_hz": rate, "audio_t0_s": round(t0, 6), "samples": len(y)}


def encode_clip(dst: str | Path, frames, fps: float, audio: np.ndarray, rate_hz: int) -> None:
    """Encodes RGB frames (an iterable of ``[H, W, 3]`` uint8, constant ``fps``) and mono audio
    as H.264 + AAC."""
    with av.open(str(dst), "w") as c:
        v = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        first = True
        for img in frames:
            if first:
                v.width, v.height, v.pix_fmt = img.shape[1], img.shape[0], "yuv420p"
                v.options = {"preset": "veryfast", "crf": "20"}
                a = c.add_stream("aac", rate=rate_hz)
                a.layout, a.bit_rate = "mono", 128_000
                first = False
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        fmt = a.codec_context.format.name
        n = a.codec_context.frame_size or 1024
        for k in range(0, len(audio), n):
            block = np.clip(audio[k:k + n], -1, 1).astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(block, format=fmt, layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate_hz, k, Fraction(1, rate_hz)
            for p in a.encode(frame):
                c.mux(p)
        for p in a.encode(None):
            c.mux(p)
