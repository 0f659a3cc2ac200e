"""Pieces shared by several subcommands: media options, tables, exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

EXIT_FAILED_INPUTS = 1  # some inputs failed; the others completed


def add_media_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--segment-s", type=float, default=2.0, help="segment length in seconds (default 2.0)")
    p.add_argument("--width", type=int, help="resize frames to this width (with --height)")
    p.add_argument("--height", type=int, help="resize frames to this height (with --width)")
    p.add_argument("--max-fps", type=float, help="keep at most this many frames per second")
    p.add_argument("--live", action="store_true", help="read files at real-time speed, as a live source")
    p.add_argument("--require-audio", action="store_true", help="fail inputs without an audio stream")
    p.add_argument("--require-video", action="store_true", help="fail inputs without a video stream")


def media_config(args: argparse.Namespace):
    from engine.media.decode import MediaConfig

    return MediaConfig(
        segment_s=args.segment_s,
        video_width=args.width,
        video_height=args.height,
        video_max_fps=args.max_fps,
        pace=args.live,
        require_audio=args.require_audio,
        require_video=args.require_video,
    )


def print_table(rows: Sequence[dict], columns: Sequence[str], out=None) -> None:
    """Prints rows as a right-aligned text table (to ``out``, default the current stdout)."""
    out = out or sys.stdout
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) if rows else len(c) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)), file=out)
    for r in rows:
        print("  ".join(str(r[c]).rjust(w) for c, w in zip(columns, widths)), file=out)
