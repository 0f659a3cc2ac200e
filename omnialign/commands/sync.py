"""``omnialign sync``: estimate the audio–video offset, drift and warp of a file."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser(
        "sync",
        help="estimate A/V offset (ms), drift (ppm) and a piecewise-linear warp of a file",
        description="Estimate audio-video sync. Sign convention: t_audio = offset + t_video*(1+drift_ppm*1e-6); "
        "positive offset = audio late. Confidence below 0.3 means no trustworthy estimate.",
    )
    p.add_argument("file", help="media file (or finite URL) with audio and video")
    p.add_argument("--json", action="store_true",
                   help='print {"offset_ms", "drift_ppm", "confidence", "warp": [[t_video_s, t_audio_s], ...]}')
    p.add_argument("--plot", metavar="OUT.png", help="write a PNG of the cues, the DTW path and the fitted warp")
    p.add_argument("--max-offset-ms", type=float, default=1000.0, help="largest |offset| searched (default 1000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.align.config import LOW_CONFIDENCE, SyncConfig
    from engine.align.sync import estimate_sync

    est = estimate_sync(args.file, SyncConfig(max_offset_ms=args.max_offset_ms))
    if args.plot:
        plot_estimate(est, args.plot, title=args.file)
    if args.json:
        print(json.dumps(est.to_json()))
        return 0
    verdict = "" if est.confidence >= LOW_CONFIDENCE else "  (low confidence: not a reliable estimate)"
    print(f"{args.file}: offset {est.offset_ms:+.1f} ms (positive = audio late), drift {est.drift_ppm:+.0f} ppm, "
          f"confidence {est.confidence:.2f}{verdict}")
    if len(est.runs) > 1:
        for r in est.runs:
            print(f"  from {r.t_video_start_s:7.2f} s: offset {r.offset_ms:+.1f} ms ({r.n_pairs} matched onsets)")
    print(f"  warp: {len(est.warp)} points, {est.n_pairs} matched onsets")
    return 0


def plot_estimate(est, path: str, title: str = "") -> None:
    """Writes a PNG: the two cue signals, the DTW path and matched onsets, and the fitted warp
    (drawn as offset ``warp(t) - t`` against video time, where splices and drift are visible)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    d = est.diagnostics
    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    if d is not None:
        t = d.t0_s + np.arange(len(d.video_cue)) / d.cue_rate_hz
        axes[0].plot(t, d.video_cue, lw=0.8, label="video novelty")
        axes[0].plot(t[: len(d.audio_cue)], -d.audio_cue, lw=0.8, label="audio onset (negated)")
        if len(d.dtw_path):
            p = d.dtw_path
            axes[1].plot(d.t0_s + p[:, 0] / d.cue_rate_hz, (p[:, 1] - p[:, 0]) * 1000.0 / d.cue_rate_hz,
                         lw=0.8, color="grey", label="DTW path lag")
        if len(d.pairs_t_video_s):
            lag = (d.pairs_t_audio_s - d.pairs_t_video_s) * 1000.0
            axes[1].plot(d.pairs_t_video_s[d.inliers], lag[d.inliers], "o", ms=4, label="matched onsets")
            axes[1].plot(d.pairs_t_video_s[~d.inliers], lag[~d.inliers], "x", ms=5, label="rejected")
    w = est.warp
    axes[2].plot(w[:, 0], (w[:, 1] - w[:, 0]) * 1000.0, "-o", ms=3, label="warp(t) - t")
    axes[0].set_ylabel("cue")
    axes[1].set_ylabel("audio lag (ms)")
    axes[2].set_ylabel("offset (ms)")
    axes[2].set_xlabel("video time (s)")
    for ax in axes:
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title}  offset {est.offset_ms:+.1f} ms, drift {est.drift_ppm:+.0f} ppm, "
                 f"confidence {est.confidence:.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
