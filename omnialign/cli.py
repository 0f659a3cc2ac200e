"""The ``omnialign`` command line.

Each subcommand is one module in ``omnialign.commands`` with ``register(subparsers)``; heavy
imports (PyAV, torch, Ray) happen inside the commands so ``omnialign --help`` is instant. Engine
errors become one clear line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from omnialign import __version__
from omnialign.commands import (
    backfill,
    demo,
    embed,
    ingest,
    model,
    rvq,
    search,
    segments,
    serve,
    sync,
    synth,
    train,
)
from omnialign.commands.common import EXIT_FAILED_INPUTS

#: Registered subcommands, in --help order.
COMMANDS = (synth, segments, sync, rvq, model, ingest, backfill, train, embed, search, serve, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnialign",
        description="Streaming multimodal alignment: live video/audio -> time-aligned tokens -> LanceDB.",
    )
    parser.add_argument("--version", action="version", version=f"omnialign {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(sub)
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
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
