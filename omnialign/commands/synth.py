"""``omnialign synth``: write a synthetic clip and its ground truth."""

from __future__ import annotations

import argparse


def _parse_splice(text: str) -> tuple[float, float]:
    try:
        t_s, offset_ms = text.split(":")
        return float(t_s), float(offset_ms)
    except ValueError:
        raise argparse.ArgumentTypeError(f"splice must be T_VIDEO_S:OFFSET_MS, got {text!r}") from None


def register(sub) -> None:
    p = sub.add_parser(
        "synth",
        help="write a synthetic clip with known A/V offset/drift and its ground truth JSON",
        description="Write a deterministic clip (events + ground truth). Sign convention: "
        "t_audio = offset + t_video*(1+drift_ppm*1e-6); positive offset = audio late.",
    )
    p.add_argument("out", help="output file: .mp4 .mov .mkv .ts .webm (video+audio) or .wav .flac .ogg .mp3")
    p.add_argument("--duration-s", type=float, default=10.0)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--sample-rate-hz", type=int, default=48_000)
    p.add_argument("--offset-ms", type=float, default=0.0, help="A/V offset, positive = audio late")
    p.add_argument("--drift-ppm", type=float, default=0.0, help="audio clock drift in ppm")
    p.add_argument("--splice", type=_parse_splice, action="append", default=[], metavar="T_S:OFFSET_MS",
                   help="from video time T_S on, the offset becomes OFFSET_MS (repeatable)")
    p.add_argument("--drop-frames", default="", help="comma-separated frame indices not to write")
    p.add_argument("--vfr-jitter", type=float, default=0.0, help="PTS jitter as a fraction of a frame period")
    p.add_argument("--event-every-s", type=float, default=1.0)
    p.add_argument("--speech", action="store_true", help="add speech-like modulated noise")
    p.add_argument("--no-audio", action="store_true")
    p.add_argument("--no-video", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truth", help="ground-truth JSON path (default: OUT + .json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.media.synth import SynthSpec, synthesize

    drops = tuple(int(x) for x in args.drop_frames.split(",") if x.strip())
    spec = SynthSpec(
        duration_s=args.duration_s, fps=args.fps, width=args.width, height=args.height,
        sample_rate_hz=args.sample_rate_hz, offset_ms=args.offset_ms, drift_ppm=args.drift_ppm,
        splices=tuple(args.splice), dropped_frames=drops, vfr_jitter=args.vfr_jitter,
        event_every_s=args.event_every_s, speech=args.speech, with_audio=not args.no_audio,
        with_video=not args.no_video, seed=args.seed,
    )
    truth = synthesize(spec, args.out)
    truth_path = args.truth or args.out + ".json"
    truth.write_json(truth_path)
    print(f"wrote {args.out} ({len(truth.video_frame_t_us)} frames, {truth.audio_samples} audio samples, "
          f"{len(truth.events)} events) and {truth_path}")
    return 0
