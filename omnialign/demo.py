"""``make demo`` / ``omnialign demo``: the main job end to end on embedded defaults.

Current stage: synthesize a clip with a known A/V offset and drift, decode it into segments on
the unified timeline, and print the segment table with the ground truth beside it.
"""

from __future__ import annotations

import time
from pathlib import Path

from omnialign.commands.common import print_table
from omnialign.commands.segments import SEGMENT_COLUMNS, segment_row


def run_demo(out_dir: str) -> int:
    """Runs the demo in ``out_dir``; returns an exit status."""
    from engine.media import MediaConfig, SegmentReader
    from engine.synth import SynthSpec, synthesize

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = SynthSpec(duration_s=10.0, offset_ms=120.0, drift_ppm=200.0, speech=True, seed=7)
    clip = out / "demo_clip.mp4"
    truth = synthesize(spec, clip)
    truth.write_json(out / "demo_clip.truth.json")
    print(f"synthesized {clip}: {spec.duration_s:.0f} s, {spec.width}x{spec.height}@{spec.fps:g} fps H.264 + "
          f"{spec.sample_rate_hz} Hz AAC, true offset {spec.offset_ms:+.0f} ms, drift {spec.drift_ppm:+.0f} ppm, "
          f"{len(truth.events)} paired A/V events")

    t0 = time.perf_counter()
    rows = []
    with SegmentReader(str(clip), MediaConfig(segment_s=2.0)) as reader:
        info = reader.info
        for seg in reader:
            rows.append(segment_row(seg))
    wall = time.perf_counter() - t0
    media_s = rows[-1]["t_end_us"] / 1e6
    print(f"decoded {info.stream_id}: audio {info.audio_in_rate_hz} Hz -> 16000 Hz mono, video {info.width}x{info.height} "
          f"@ {info.video_fps:g} fps")
    print_table(rows, SEGMENT_COLUMNS)
    print(f"{len(rows)} segments, {media_s:.2f} s of media in {wall:.2f} s ({media_s / wall:.0f}x real time)")
    return 0
