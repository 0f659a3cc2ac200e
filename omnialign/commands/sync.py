"""``omnialign sync``: estimate the audio–video offset, drift and warp of a file."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser(
        "sync",
        help="estimate A/V offset (ms), drift (ppm) and a piecewise-linear warp of a file",
        description="Estimate audio-video sync. Sign convention: t_audio = offset + t_video*(1+drift_ppm*1e-6); "
        "positive offset = audio late. Confidence below 0.3 means a best guess (the global lag), not a "
        "measurement.",
    )
    p.add_argument("file", help="media file (or finite URL) with audio and video")
    p.add_argument("--json", action="store_true",
                   help='print {"offset_ms", "drift_ppm", "confidence", "warp": [[t_video_s, t_audio_s], ...]}')
    p.add_argument("--plot", metavar="OUT.png",
                   help="write a PNG of the cue signals, the lag-correlation curve with the chosen peak, the DTW "
                        "path and matched onsets, the fitted warp and the confidence")
    p.add_argument("--max-offset-ms", type=float, default=600.0, help="largest |offset| searched (default 600)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.align.config import SyncConfig
    from engine.align.sync import estimate_sync

    est = estimate_sync(args.file, SyncConfig(max_offset_ms=args.max_offset_ms))
    if args.plot:
        plot_estimate(est, args.plot, title=args.file)
    if args.json:
        print(json.dumps(est.to_json()))
        return 0
    verdict = ("" if not est.low_confidence else
               "  (low confidence: best global estimate, not a measurement)" if est.method == "global" else
               "  (no evidence in the cues: no estimate)")
    print(f"{args.file}: offset {est.offset_ms:+.1f} ms (positive = audio late), drift {est.drift_ppm:+.0f} ppm, "
          f"confidence {est.confidence:.2f}{verdict}")
    if len(est.runs) > 1:
        for r in est.runs:
            why = f"{r.n_pairs} matched onsets" if r.n_pairs else "continuous cues on this side"
            print(f"  from {r.t_video_start_s:7.2f} s: offset {r.offset_ms:+.1f} ms ({why})")
    src = est.diagnostics.global_lag.source if est.diagnostics and est.diagnostics.global_lag else "-"
    print(f"  method: {est.method} (global lag from {src}); warp: {len(est.warp)} points, "
          f"{est.n_pairs} matched onsets")
    return 0


def plot_estimate(est, path: str, title: str = "") -> None:
    """Writes a PNG with five panels: the onset cues; the continuous cue pair that set the
    global lag (audio shifted by it, so coupled signals line up); the lag-correlation curve with
    the chosen peak, the naive peer's peak, the two interleaved halves' peaks and a splice's two
    lags; the DTW path with the matched onsets; and the fitted warp as offset ``warp(t) - t``
    against video time (splices and drift show there). The title carries offset, drift and
    confidence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    d = est.diagnostics
    fig, axes = plt.subplots(5, 1, figsize=(10, 12))
    g = d.global_lag if d is not None else None
    if d is not None:
        t = d.t0_s + np.arange(len(d.video_cue)) / d.cue_rate_hz
        axes[0].plot(t, d.video_cue, lw=0.8, label="video novelty")
        axes[0].plot(t[: len(d.audio_cue)], -d.audio_cue, lw=0.8, label="audio onset (negated)")
        if d.coupled_video is not None and g is not None:
            tv = d.t0_s + (np.arange(len(d.coupled_video)) + 0.5) / d.cue_rate_hz
            ta = d.t0_s + (np.arange(len(d.coupled_audio)) + 0.5) / d.cue_rate_hz
            axes[1].plot(tv, d.coupled_video, lw=0.7, label=f"video ({g.source.split('~')[0]})")
            axes[1].plot(ta - g.lag_ms / 1000.0, d.coupled_audio, lw=0.7, alpha=0.8,
                         label=f"audio ({g.source.split('~')[-1]}), shifted by the lag")
        if len(d.dtw_path):
            p = d.dtw_path
            axes[3].plot(d.t0_s + p[:, 0] / d.cue_rate_hz, (p[:, 1] - p[:, 0]) * 1000.0 / d.cue_rate_hz,
                         lw=0.8, color="grey", label="DTW path lag")
        if len(d.pairs_t_video_s):
            lag = (d.pairs_t_audio_s - d.pairs_t_video_s) * 1000.0
            axes[3].plot(d.pairs_t_video_s[d.inliers], lag[d.inliers], "o", ms=4, label="matched onsets")
            axes[3].plot(d.pairs_t_video_s[~d.inliers], lag[~d.inliers], "x", ms=5, label="rejected")
    if g is not None:
        m = (len(g.curve) - 1) // 2
        lags_ms = (np.arange(len(g.curve)) - m) * 1000.0 / (d.cue_rate_hz if d is not None else 100.0)
        axes[2].plot(lags_ms, g.curve, lw=0.9, label=f"correlation ({g.source})")
        axes[2].axvline(g.lag_ms, color="red", lw=0.8, label=f"peak {g.lag_ms:+.1f} ms")
        axes[2].axvline(g.naive_lag_ms, color="grey", ls="--", lw=0.8, label=f"naive peak {g.naive_lag_ms:+.1f} ms")
        for h in g.half_lags_ms:
            axes[2].axvline(h, color="orange", ls=":", lw=0.8)
        axes[3].axhline(g.lag_ms, color="red", lw=0.6, ls="--", label="global lag")
    sp = d.split if d is not None else None
    if sp is not None:
        # A splice found on the continuous cues: each side's own peak on the lag axis.
        for side, lag in (("before", sp.before.lag_ms), ("after", sp.after.lag_ms)):
            axes[2].axvline(lag, color="purple", lw=1.0, ls="-." if side == "before" else "-",
                            label=f"splice at {d.t0_s + sp.t_split_s:.1f} s: {side} {lag:+.1f} ms")
    w = est.warp
    axes[4].plot(w[:, 0], (w[:, 1] - w[:, 0]) * 1000.0, "-o", ms=3, label=f"warp(t) - t ({est.method})")
    axes[0].set_ylabel("onset cues")
    axes[1].set_ylabel("coupled cues (z)")
    axes[4].ticklabel_format(useOffset=False)
    axes[0].set_xlabel("time (s)")
    axes[2].set_ylabel("correlation")
    axes[2].set_xlabel("audio lag (ms); dotted: the two interleaved halves' peaks")
    axes[3].set_ylabel("audio lag (ms)")
    axes[4].set_ylabel("offset (ms)")
    axes[4].set_xlabel("video time (s)")
    for ax in axes:
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
    note = " LOW CONFIDENCE" if est.low_confidence else ""
    fig.suptitle(f"{title}  offset {est.offset_ms:+.1f} ms, drift {est.drift_ppm:+.0f} ppm, "
                 f"confidence {est.confidence:.2f}{note}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
