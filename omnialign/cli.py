"""The ``omnialign`` command line.

Each subcommand lives in its own small function; heavy imports (PyAV, torch, Ray) happen inside
them so ``omnialign --help`` is instant. Engine errors become one clear line on stderr and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from omnialign import __version__

EXIT_FAILED_INPUTS = 1  # some inputs failed; the others completed
EXIT_USAGE = 2


def _add_media_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--segment-s", type=float, default=2.0, help="segment length in seconds (default 2.0)")
    p.add_argument("--width", type=int, help="resize frames to this width (with --height)")
    p.add_argument("--height", type=int, help="resize frames to this height (with --width)")
    p.add_argument("--max-fps", type=float, help="keep at most this many frames per second")
    p.add_argument("--live", action="store_true", help="read files at real-time speed, as a live source")
    p.add_argument("--require-audio", action="store_true", help="fail inputs without an audio stream")
    p.add_argument("--require-video", action="store_true", help="fail inputs without a video stream")


def _media_config(args: argparse.Namespace):
    from engine.media import MediaConfig

    return MediaConfig(
        segment_s=args.segment_s,
        video_width=args.width,
        video_height=args.height,
        video_max_fps=args.max_fps,
        pace=args.live,
        require_audio=args.require_audio,
        require_video=args.require_video,
    )


# -- synth ---------------------------------------------------------------------------------
def _parse_splice(text: str) -> tuple[float, float]:
    try:
        t_s, offset_ms = text.split(":")
        return float(t_s), float(offset_ms)
    except ValueError:
        raise argparse.ArgumentTypeError(f"splice must be T_VIDEO_S:OFFSET_MS, got {text!r}") from None


def _add_synth(sub) -> None:
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
    p.set_defaults(func=cmd_synth)


def cmd_synth(args: argparse.Namespace) -> int:
    from engine.synth import SynthSpec, synthesize

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


# -- segments ------------------------------------------------------------------------------
def _add_segments(sub) -> None:
    p = sub.add_parser("segments", help="decode sources and list their segments on the unified timeline")
    p.add_argument("sources", nargs="+", help="files or URLs (rtsp/rtmp/http(s)/udp/srt/tcp)")
    _add_media_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per segment")
    p.set_defaults(func=cmd_segments)


SEGMENT_COLUMNS = ("index", "t_start_us", "t_end_us", "n_audio_samples", "n_video_frames")


def segment_row(seg) -> dict:
    """The summary fields of a segment, as printed by ``segments``."""
    return {
        "stream_id": seg.stream_id,
        "index": seg.index,
        "t_start_us": seg.t_start_us,
        "t_end_us": seg.t_end_us,
        "n_audio_samples": seg.n_audio_samples,
        "n_video_frames": seg.n_video_frames,
        "is_final": seg.is_final,
        "discontinuities": [f"{d.stream}:{d.kind}:{d.jump_us}us" for d in seg.discontinuities],
    }


def print_table(rows: Sequence[dict], columns: Sequence[str], out=None) -> None:
    """Prints rows as a right-aligned text table (to ``out``, default the current stdout)."""
    out = out or sys.stdout
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) if rows else len(c) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)), file=out)
    for r in rows:
        print("  ".join(str(r[c]).rjust(w) for c, w in zip(columns, widths)), file=out)


def cmd_segments(args: argparse.Namespace) -> int:
    from engine.errors import MediaError
    from engine.media import SegmentReader
    from omnialign.progress import Progress

    config = _media_config(args)
    failed = 0
    for source in args.sources:
        rows = []
        progress = Progress(label=source)
        try:
            with SegmentReader(source, config) as reader:
                for seg in reader:
                    row = segment_row(seg)
                    progress.update(segments=seg.index + 1, media_s=seg.t_end_us / 1e6)
                    if args.json:
                        print(json.dumps({"source": source, **row}), flush=True)
                    else:
                        rows.append(row)
        except MediaError as exc:
            progress.done()
            failed += 1
            print(f"omnialign: error: {exc}", file=sys.stderr)
            if args.json:
                print(json.dumps({"source": source, "error": type(exc).__name__, "message": str(exc)}), flush=True)
            continue
        progress.done()
        if not args.json:
            print(f"# {source} ({len(rows)} segments)")
            print_table(rows, SEGMENT_COLUMNS)
    return EXIT_FAILED_INPUTS if failed else 0


# -- demo ----------------------------------------------------------------------------------
def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="run the main job end to end on embedded defaults")
    p.add_argument("--out", default="demo_out", help="working folder (default ./demo_out)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from omnialign.demo import run_demo

    return run_demo(args.out)


# -- entry point ---------------------------------------------------------------------------
COMMANDS: tuple[Callable, ...] = (_add_synth, _add_segments, _add_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnialign",
        description="Streaming multimodal alignment: live video/audio -> time-aligned tokens -> LanceDB.",
    )
    parser.add_argument("--version", action="version", version=f"omnialign {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit status (also used by the console script)."""
    args = build_parser().parse_args(argv)
    from engine.errors import OmniAlignError

    try:
        return args.func(args)
    except OmniAlignError as exc:
        print(f"omnialign: error: {exc}", file=sys.stderr)
        return EXIT_FAILED_INPUTS
    except KeyboardInterrupt:
        print("omnialign: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
