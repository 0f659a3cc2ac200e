"""Masked RVQ code reconstruction as a learned sync score (issue #14, stage 2 loss (b)).

A :class:`~engine.train.masked.MaskedCodeModel` learns to fill masked spans of audio codes from
the rest of the audio and the video's region codes, on coupled real-recording clips built in
sync (real photographs, clip-art, recorded speech and sounds: :mod:`benchmarks.data.coupled`;
none of the speech or sound files of the dev set's clips). It is then scored on the dev set's
coupled clips (``benchmarks.data.devsets``, the ones ``sync_accuracy`` scores), which it never
saw:

* the **shift curve**: its loss against an artificial A/V shift, on each clip put in sync by its
  truth; it must be lowest at zero shift;
* the **learned sync score**: on each clip as recorded (secret offset), the offset the curve's
  minimum implies, against the truth, beside omnialign sync and the naive peer run on the same
  clips in the same run (errors as ``sync_accuracy`` measures them).

Clips with splices are left out (one offset per clip is what a curve gives).

    python -m benchmarks.shift_curve [--train-clips 40] [--steps 800] [--mask-ratio 0.4] [--span-ms 400]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.data import devsets
from benchmarks.data.coupled import FPS, build_coupled_clip, compose, truth_audio_s
from benchmarks.data.fetch import fetch_all
from benchmarks.provenance import write_results
from benchmarks.sync_accuracy import run_coupled

KINDS = ("cuts", "brightness", "scale", "mouth", "mouth_gap")
SHIFTS_MS = np.arange(-600, 601, 20)


def _held_out_files(manifest: dict, assets: dict) -> set[str]:
    """The speech and sound files the dev set's clips are made of (re-derived from their seeds:
    composing a clip's audio is deterministic and cheap; its frames are never rendered here)."""
    used: set[str] = set()
    for c in manifest["coupled"]:
        rng = np.random.default_rng(c["seed"])
        speech = assets["speech_ru"] if c.get("speech") == "ru" else assets["speech"]
        used |= set(compose(c["kind"], Path("/dev/null"), c["duration_s"], assets["pictures"], assets["sprites"],
                            speech, assets["sounds"], rng)["used"])
    return used


def train_clips(cache: Path, manifest: dict, n: int, log=print) -> list[Path]:
    """``n`` coupled clips in sync (offset 0, no drift), cached; none uses a dev clip's recordings."""
    assets = devsets.coupled_assets(fetch_all(cache, log))
    held = _held_out_files(manifest, assets)
    free = {k: [f for f in v if f not in held] for k, v in assets.items()}
    log(f"training recordings: {len(free['speech'])}/{len(assets['speech'])} speech, "
        f"{len(free['speech_ru'])}/{len(assets['speech_ru'])} Russian speech, "
        f"{len(free['sounds'])}/{len(assets['sounds'])} sounds (the rest are the dev clips')")
    out = cache / "shift_train-v1"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for k in range(n):
        kind = KINDS[k % len(KINDS)]
        spec = {"name": f"train_{k:03d}", "kind": kind, "duration_s": float(rng.choice([12.0, 14.0, 16.0])),
                "speech": str(rng.choice(["cs", "nl", "ru"])), "seed": 50_000 + k, "offset_ms": 0.0,
                "drift_ppm": 0.0, "splices": []}
        path = out / f"{spec['name']}_{kind}.mp4"
        if not path.exists():
            build_coupled_clip(spec, path, free)
        paths.append(path)
    return paths


def _segments(path: Path):
    from engine.media.decode import MediaConfig, SegmentReader

    with SegmentReader(str(path), MediaConfig(segment_s=2.0)) as reader:
        yield from reader


def _error_ms(clip: dict, offset_ms: float) -> float:
    """Mean error of a constant offset over the clip, on the grid ``sync_accuracy`` scores its
    warps on (drift makes the true offset move by a few ms)."""
    t = np.arange(0.5, clip["duration_s"] - 0.5, 0.1)
    true_off = truth_audio_s(t, clip["offset_ms"], clip["drift_ppm"], []) - t
    return float(np.mean(np.abs(offset_ms / 1e3 - true_off)) * 1e3)


def _in_sync(streams, clip: dict):
    """Audio frames re-timed onto the video's timeline by the clip's truth."""
    t = (streams.audio_t_us - clip["offset_ms"] * 1e3) / (1 + clip["drift_ppm"] * 1e-6)
    return streams.with_audio_times(np.round(t).astype(np.int64))


def main(argv: list[str] | None = None) -> int:
    import torch

    from engine.align.config import SyncConfig
    from engine.tokenize.tokenizer import Tokenizer, TokenizerConfig
    from engine.train.code_streams import code_streams
    from engine.train.masked import MaskedCodeModel, MaskedConfig
    from engine.train.shift_curve import MaskedTrainConfig, curve_offset_us, shift_curve, train_masked
    from engine.train.windows import WindowConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-clips", type=int, default=40)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--mask-ratio", type=float, default=WindowConfig.mask_ratio,
                    help="share of the audio tokens masked (more makes the model lean on the video)")
    ap.add_argument("--span-ms", type=int, default=WindowConfig.span_us // 1000)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--out", default="shift_curve")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    t_all = time.perf_counter()
    cache = Path(args.cache or devsets.default_cache())
    manifest = devsets.build(cache)
    paths = train_clips(cache, manifest, args.train_clips)
    t0 = time.perf_counter()
    # Every frame gets tokens (the product's 5 fps sampling is for storage; sync needs the frames).
    tcfg = TokenizerConfig(audio_quantizers=2, audio_codebook_size=128, video_quantizers=2, video_codebook_size=128,
                           video_token_fps=None, max_fit_vectors=100_000)
    tok = Tokenizer.fit((s for p in paths for s in _segments(p)), tcfg)
    train = [code_streams(p.stem, tok, _segments(p)) for p in paths]
    tokenize_s = time.perf_counter() - t0
    windows = WindowConfig(mask_ratio=args.mask_ratio, span_us=args.span_ms * 1000)
    regions = train[0].video_codes.shape[1]
    mcfg = MaskedConfig(2, 128, 2, 128, regions, d_model=96, n_layers=3, n_heads=4)
    model = MaskedCodeModel(mcfg)
    tcfg_train = MaskedTrainConfig(steps=args.steps, batch_size=32, lr=1e-3)
    t0 = time.perf_counter()
    history = train_masked(model, train, windows, tcfg_train, log=print)
    train_s = time.perf_counter() - t0

    clips = [c for c in manifest["coupled"] if not c["splices"]]
    # The peers on the same clips, in this run: omnialign sync and the naive cross-correlation.
    sync_rows = {r["clip"]: r for r in run_coupled({"coupled": clips}, SyncConfig(), None, log=lambda *_: None)}
    shifts_us = SHIFTS_MS * 1000
    rows, curves = [], {}
    t0 = time.perf_counter()
    for clip in clips:
        streams = code_streams(clip["name"], tok, _segments(Path(clip["path"])))
        aligned = shift_curve(model, _in_sync(streams, clip), windows, shifts_us)
        zero_ms, contrast = curve_offset_us(aligned, shifts_us)
        learned_ms, learned_contrast = curve_offset_us(shift_curve(model, streams, windows, shifts_us), shifts_us)
        s = sync_rows[clip["name"]]
        rows.append({"clip": clip["name"], "kind": clip["kind"], "offset_true_ms": clip["offset_ms"],
                     "drift_true_ppm": clip["drift_ppm"],
                     "curve_min_in_sync_ms": round(zero_ms / 1e3, 2), "contrast": round(contrast, 4),
                     "learned_offset_ms": round(learned_ms / 1e3, 2),
                     "learned_error_ms": round(_error_ms(clip, learned_ms / 1e3), 2),
                     "learned_contrast": round(learned_contrast, 4),
                     "ours_ms": s.get("ours_ms"), "naive_ms": s.get("naive_ms")})
        curves[clip["name"]] = [round(float(v), 4) for v in aligned]
        print(json.dumps(rows[-1]))
    eval_s = time.perf_counter() - t0

    def med(key):
        vals = [r[key] for r in rows if r[key] is not None]
        return round(float(np.median(vals)), 2) if vals else None

    summary = {"n_clips": len(rows), "median_abs_curve_min_in_sync_ms": round(float(np.median(
                   [abs(r["curve_min_in_sync_ms"]) for r in rows])), 2),
               "curve_min_within_40ms": int(sum(abs(r["curve_min_in_sync_ms"]) <= 40 for r in rows)),
               "median_contrast": med("contrast"),
               "learned_median_error_ms": med("learned_error_ms"),
               "learned_worst_error_ms": round(max(r["learned_error_ms"] for r in rows), 2),
               "ours_median_ms": med("ours_ms"), "naive_median_ms": med("naive_ms")}
    payload = {"benchmark": "shift_curve", "summary": summary, "rows": rows,
               "shifts_ms": SHIFTS_MS.tolist(), "curves_in_sync": curves,
               "model": {**mcfg.to_dict(), "params": sum(p.numel() for p in model.parameters())},
               "windows": vars(windows), "train": {**vars(tcfg_train), "clips": len(paths),
                                                   "media_s": round(sum(len(t.video_t_us) for t in train) / FPS, 1),
                                                   "loss_by_tenth": [round(h, 4) for h in history]},
               "tokenizer": {"audio": "2x128 over log-mel", "video": "2x128 over 7x7 regions, every frame",
                             "codebook_version": tok.codebook_version},
               "devset_manifest": {"version": manifest["version"], "seed": manifest["seed"]},
               "wall_s": {"tokenize": round(tokenize_s, 1), "train": round(train_s, 1), "eval": round(eval_s, 1),
                          "total": round(time.perf_counter() - t_all, 1)}}
    path = write_results(args.out, payload, default=lambda o: o.item())
    _plot(payload, path.with_suffix(".png"))
    print(json.dumps(summary, indent=1))
    return 0


def _plot(d: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in d["rows"]:
        c = np.asarray(d["curves_in_sync"][r["clip"]])
        ax.plot(d["shifts_ms"], c / np.median(c), lw=1, label=f"{r['clip']}")
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("artificial video shift (ms)")
    ax.set_ylabel("masked-code loss / median")
    ax.set_title("masked RVQ audio reconstruction vs A/V shift (dev clips in sync)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
