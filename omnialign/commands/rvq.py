"""``omnialign rvq fit|encode``: fit audio/video codebooks on media, tokenize a file with them."""

from __future__ import annotations

import argparse
import json
import sys

from omnialign.commands.common import EXIT_FAILED_INPUTS, print_table


def register(sub) -> None:
    p = sub.add_parser("rvq", help="fit RVQ codebooks on media / encode media into codes")
    rsub = p.add_subparsers(dest="rvq_command", metavar="ACTION", required=True)

    fit = rsub.add_parser("fit", help="fit audio (log-mel) and video (region) codebooks on media files")
    fit.add_argument("--input", nargs="+", required=True, metavar="FILE", help="media files or URLs")
    fit.add_argument("--out", required=True, help="codebook folder to write")
    fit.add_argument("--audio-quantizers", type=int, default=4, help="RVQ stages for audio (default 4)")
    fit.add_argument("--audio-codebook-size", type=int, default=256)
    fit.add_argument("--video-quantizers", type=int, default=4, help="RVQ stages for video (default 4)")
    fit.add_argument("--video-codebook-size", type=int, default=256)
    fit.add_argument("--max-fps", type=float, default=5.0, help="frames per second used for fitting (default 5)")
    fit.add_argument("--max-fit-vectors", type=int, default=200_000, help="per modality, reservoir-sampled")
    fit.add_argument("--seed", type=int, default=0)
    fit.set_defaults(func=run_fit)

    enc = rsub.add_parser("encode", help="tokenize a media file with fitted codebooks")
    enc.add_argument("file", help="media file or URL")
    enc.add_argument("--codebooks", required=True, help="folder written by `rvq fit`")
    enc.add_argument("--segment-s", type=float, default=2.0)
    enc.add_argument("--json", action="store_true", help="one JSON object per segment: codes with their times")
    enc.set_defaults(func=run_encode)


def _segments(sources, segment_s: float, max_fps: float | None, failures: list):
    from engine.errors import MediaError
    from engine.media.decode import MediaConfig, SegmentReader

    config = MediaConfig(segment_s=segment_s, video_max_fps=max_fps)
    for source in sources:
        try:
            with SegmentReader(source, config) as reader:
                yield from reader
        except MediaError as exc:
            failures.append(exc)
            print(f"omnialign: error: {exc}", file=sys.stderr)


def run_fit(args: argparse.Namespace) -> int:
    from engine.tokenize.tokenizer import Tokenizer, TokenizerConfig

    config = TokenizerConfig(
        audio_quantizers=args.audio_quantizers, audio_codebook_size=args.audio_codebook_size,
        video_quantizers=args.video_quantizers, video_codebook_size=args.video_codebook_size,
        max_fit_vectors=args.max_fit_vectors, seed=args.seed,
    )
    failures: list = []
    tok = Tokenizer.fit(_segments(args.input, 2.0, args.max_fps, failures), config)
    tok.save(args.out)
    print(f"wrote {args.out} (codebook_version {tok.codebook_version})")
    for name, rvq in (("audio", tok.audio_rvq), ("video", tok.video_rvq)):
        if rvq is not None and rvq.fit_report is not None:
            errs = ", ".join(f"{e:.3f}" for e in rvq.fit_report.stage_rel_sq_error)
            print(f"  {name}: {rvq.num_quantizers}x{rvq.codebook_size} codes over {rvq.dim}-d, "
                  f"relative squared error after each stage: {errs} "
                  f"(fitted on {rvq.fit_report.num_vectors} vectors)")
    return EXIT_FAILED_INPUTS if failures else 0


def _segment_json(seg, tokens, codebook_version: str) -> dict:
    a, v = tokens.audio, tokens.video
    out = {"stream_id": seg.stream_id, "index": seg.index, "t_start_us": seg.t_start_us,
           "t_end_us": seg.t_end_us, "codebook_version": codebook_version, "audio": None, "video": None}
    if a is not None:
        out["audio"] = {"codes": a.codes.tolist(), "t_us": a.t_us.tolist(), "dur_us": a.duration_us.tolist(),
                        "tokens_in": a.tokens_in, "tokens_out": a.tokens_out}
    if v is not None:
        out["video"] = {"codes": v.codes.tolist(), "t_us": v.t_us.tolist(), "row": v.row.tolist(),
                        "col": v.col.tolist(), "keyframe_t_us": seg.video_t_us[tokens.video_frames[v.keyframes]].tolist(),
                        "tokens_in": v.tokens_in, "tokens_out": v.tokens_out}
    return out


def run_encode(args: argparse.Namespace) -> int:
    from engine.tokenize.tokenizer import Tokenizer

    tok = Tokenizer.load(args.codebooks)
    failures: list = []
    rows = []
    for seg in _segments([args.file], args.segment_s, None, failures):
        tokens = tok.encode_segment(seg)
        if args.json:
            print(json.dumps(_segment_json(seg, tokens, tok.codebook_version)), flush=True)
            continue
        a, v = tokens.audio, tokens.video
        rows.append({"index": seg.index, "t_start_us": seg.t_start_us,
                     "audio_in": a.tokens_in if a else 0, "audio_out": a.tokens_out if a else 0,
                     "video_in": v.tokens_in if v else 0, "video_out": v.tokens_out if v else 0,
                     "keyframes": len(v.keyframes) if v else 0})
    if not args.json:
        print_table(rows, ("index", "t_start_us", "audio_in", "audio_out", "video_in", "video_out", "keyframes"))
        tin = sum(r["audio_in"] + r["video_in"] for r in rows)
        tout = sum(r["audio_out"] + r["video_out"] for r in rows)
        print(f"{tin} tokens -> {tout} after compression ({tin / max(tout, 1):.1f}x)")
    return EXIT_FAILED_INPUTS if failures else 0
