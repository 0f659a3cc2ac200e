"""``omnialign segments``: decode sources and list their segments."""

from __future__ import annotations

import argparse
import json
import sys

from omnialign.commands.common import EXIT_FAILED_INPUTS, add_media_args, media_config, print_table


def register(sub) -> None:
    p = sub.add_parser("segments", help="decode sources and list their segments on the unified timeline")
    p.add_argument("sources", nargs="+", help="files or URLs (rtsp/rtmp/http(s)/udp/srt/tcp)")
    add_media_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per segment")
    p.set_defaults(func=run)


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


def run(args: argparse.Namespace) -> int:
    from engine.errors import MediaError
    from engine.media.decode import SegmentReader
    from omnialign.progress import Progress

    config = media_config(args)
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
