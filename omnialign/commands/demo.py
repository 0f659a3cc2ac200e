"""``omnialign demo``: the main job end to end on embedded defaults."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the main job end to end on embedded defaults")
    p.add_argument("--out", default="demo_out", help="working folder (default ./demo_out)")
    p.add_argument("--speech", help="a recording with English speech for the ASR step (make demo fetches one)")
    p.add_argument("--media", help="a folder with pictures/ and sounds/ for the any-to-any search step "
                                   "(make demo fetches one)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omnialign.demo import run_demo

    return run_demo(args.out, args.speech, args.media)
