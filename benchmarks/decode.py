"""Decode + segment speed (× real time) against a plain PyAV decode loop of the same file.

Peer: the loop a user would write with PyAV alone — demux both streams, decode every frame,
convert video to RGB ndarrays and resample audio to 16 kHz mono float32 — i.e. the same decoding
work without timeline bookkeeping or segmenting. Both use FFmpeg's automatic decoder threading.
Each is run ``--repeats`` times, alternating, and the median is reported.

    python benchmarks/decode.py [--duration-s 30] [--repeats 3] [--out benchmarks/results/decode.json]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.provenance import write_results  # noqa: E402
from engine.media.decode import MediaConfig, SegmentReader  # noqa: E402
from engine.media.synth import SynthSpec, synthesize  # noqa: E402

CASES = (
    ("320x240@25", SynthSpec(width=320, height=240, fps=25.0, speech=True, seed=1)),
    ("640x360@30", SynthSpec(width=640, height=360, fps=30.0, speech=True, seed=2)),
)


def plain_pyav(path: str) -> tuple[int, int]:
    """The peer: decode everything with PyAV, RGB frames + 16 kHz mono audio, no segmenting."""
    n_frames = n_samples = 0
    with av.open(path) as container:
        streams = [container.streams.video[0], container.streams.audio[0]]
        for s in streams:
            s.thread_type = "AUTO"
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16_000)
        for frame in container.decode(*streams):
            if isinstance(frame, av.VideoFrame):
                frame.to_ndarray(format="rgb24")
                n_frames += 1
            else:
                for out in resampler.resample(frame):
                    n_samples += out.to_ndarray().shape[-1]
    return n_frames, n_samples


def omnialign_segments(path: str) -> tuple[int, int]:
    n_frames = n_samples = 0
    with SegmentReader(path, MediaConfig(segment_s=2.0)) as reader:
        for seg in reader:
            n_frames += seg.n_video_frames
            n_samples += seg.n_audio_samples
    return n_frames, n_samples


def _time(fn, path: str) -> tuple[float, tuple[int, int]]:
    t0 = time.perf_counter()
    result = fn(path)
    return time.perf_counter() - t0, result


def run(duration_s: float, repeats: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, base in CASES:
            spec = SynthSpec(**{**base.__dict__, "duration_s": duration_s})
            path = str(Path(tmp) / f"{name.replace('@', '_')}.mp4")
            synthesize(spec, path)
            plain_pyav(path)  # warm caches and lazy codec init for both
            times = {"plain_pyav": [], "omnialign": []}
            counts = {}
            for _ in range(repeats):
                for label, fn in (("plain_pyav", plain_pyav), ("omnialign", omnialign_segments)):
                    dt, counts[label] = _time(fn, path)
                    times[label].append(dt)
            med = {k: statistics.median(v) for k, v in times.items()}
            rows.append(
                {
                    "case": name,
                    "media_s": duration_s,
                    "plain_pyav_s": med["plain_pyav"],
                    "omnialign_s": med["omnialign"],
                    "plain_pyav_x_realtime": duration_s / med["plain_pyav"],
                    "omnialign_x_realtime": duration_s / med["omnialign"],
                    "ratio_vs_plain": med["plain_pyav"] / med["omnialign"],
                    "frames": {k: v[0] for k, v in counts.items()},
                    "audio_samples": {k: v[1] for k, v in counts.items()},
                    "repeats": repeats,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/decode.json")
    args = parser.parse_args()
    rows = run(args.duration_s, args.repeats)
    meta = {"machine": platform.machine(), "cpus": __import__("os").cpu_count(), "pyav": av.__version__, "numpy": np.__version__}
    write_results(args.out, {"meta": meta, "rows": rows})
    print(f"{'case':<12} {'plain PyAV ×RT':>15} {'omnialign ×RT':>14} {'ratio':>6}")
    for r in rows:
        print(f"{r['case']:<12} {r['plain_pyav_x_realtime']:>15.1f} {r['omnialign_x_realtime']:>14.1f} {r['ratio_vs_plain']:>6.2f}")
    print(f"(median of {args.repeats}; ratio = omnialign speed / plain PyAV speed, goal ≥ 0.8) -> {args.out}")


if __name__ == "__main__":
    main()
