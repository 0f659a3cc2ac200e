"""Sync accuracy on synthetic clips: engine.align.sync vs a naive global cross-correlation baseline.

Every clip is a real encode (H.264 + AAC in MP4) decoded through engine.media.decode. Both methods see
the same decoded cues in the same run:

* ``sync``: the full estimator (coarse search, banded DTW, onset matching, robust warp fit);
* ``xcorr``: one global offset from cross-correlating the same 100 Hz cues (no drift, no warp).

Error at each ground-truth event: ``|warp(t_video_event) - t_audio_event|`` in ms, with the
project's sign convention ``t_audio = offset + t_video * (1 + drift_ppm * 1e-6)``.

Usage::

    python benchmarks/sync_accuracy.py [--duration-s 16] [--out benchmarks/results/sync_accuracy.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.media.synth import SynthSpec, synthesize  # noqa: E402
from engine.align.config import SyncConfig  # noqa: E402
from engine.align.sync import estimate_from_cues, extract_cues, global_xcorr_offset_ms  # noqa: E402

OFFSETS_MS = (-500, -200, 0, 150, 500)
DRIFTS_PPM = (-1000, 0, 1000)
# (offset_ms, drift_ppm, splices): audio jumping later and earlier, with and without drift.
SPLICE_CASES = (
    (-200, 0, ((8.0, 200.0),)),
    (300, -1000, ((7.0, -100.0),)),
    (100, 500, ((9.0, -300.0),)),
    (0, 1000, ((6.0, 250.0), (11.0, -150.0))),
)


def _cases(duration_s: float) -> list[dict]:
    cases = []
    for offset in OFFSETS_MS:
        for drift in DRIFTS_PPM:
            cases.append({"offset_ms": offset, "drift_ppm": drift, "splices": ()})
    for offset, drift, splices in SPLICE_CASES:
        cases.append({"offset_ms": offset, "drift_ppm": drift,
                      "splices": tuple((t * duration_s / 16.0, o) for t, o in splices)})
    return cases


def run(duration_s: float, out: Path) -> dict:
    config = SyncConfig()
    rows = []
    all_err = {"sync": [], "xcorr": []}
    with tempfile.TemporaryDirectory() as tmp:
        for k, case in enumerate(_cases(duration_s)):
            spec = SynthSpec(duration_s=duration_s, offset_ms=case["offset_ms"], drift_ppm=case["drift_ppm"],
                             splices=case["splices"], speech=True, vfr_jitter=0.3 if k % 2 else 0.0, seed=100 + k)
            path = Path(tmp) / f"clip{k}.mp4"
            truth = synthesize(spec, path)
            t0 = time.perf_counter()
            video, audio, end_us = extract_cues(str(path), config)
            t_cues = time.perf_counter() - t0
            t0 = time.perf_counter()
            est = estimate_from_cues(video, audio, config, t_start_us=0, t_end_us=end_us, keep_diagnostics=False)
            t_est = time.perf_counter() - t0
            naive_ms = global_xcorr_offset_ms(video, audio, config)
            tv = np.array([e.t_video_s for e in truth.events])
            ta = np.array([e.t_audio_s for e in truth.events])
            err_sync = np.abs(est.warp_at(tv) - ta) * 1000.0
            naive = 0.0 if naive_ms is None else naive_ms / 1000.0
            err_xcorr = np.abs(tv + naive - ta) * 1000.0
            all_err["sync"].extend(err_sync.tolist())
            all_err["xcorr"].extend(err_xcorr.tolist())
            rows.append({
                "offset_ms": case["offset_ms"], "drift_ppm": case["drift_ppm"],
                "splices": [list(s) for s in case["splices"]], "n_events": len(tv),
                "sync_offset_ms": round(est.offset_ms, 2), "sync_drift_ppm": round(est.drift_ppm, 1),
                "sync_confidence": round(est.confidence, 3), "sync_runs": len(est.runs),
                "sync_median_ms": round(float(np.median(err_sync)), 2), "sync_worst_ms": round(float(err_sync.max()), 2),
                "xcorr_offset_ms": None if naive_ms is None else round(naive_ms, 2),
                "xcorr_median_ms": round(float(np.median(err_xcorr)), 2),
                "xcorr_worst_ms": round(float(err_xcorr.max()), 2),
                "cue_extract_s": round(t_cues, 3), "estimate_s": round(t_est, 3),
            })
    overall = {
        m: {"median_ms": round(float(np.median(e)), 2), "p95_ms": round(float(np.percentile(e, 95)), 2),
            "worst_ms": round(float(np.max(e)), 2), "n_events": len(e)}
        for m, e in all_err.items()
    }
    result = {
        "benchmark": "sync_accuracy",
        "clip": {"duration_s": duration_s, "container": "mp4 (libx264 + aac)", "speech": True, "fps": 25.0},
        "error_definition": "|warp(t_video_event) - t_audio_event| at ground-truth events, ms",
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "rows": rows,
        "overall": overall,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result


def print_table(result: dict) -> None:
    cols = ("offset_ms", "drift_ppm", "splices", "sync_median_ms", "sync_worst_ms", "sync_confidence",
            "xcorr_median_ms", "xcorr_worst_ms")
    rows = [{**r, "splices": ";".join(f"{t:g}s:{o:+g}" for t, o in r["splices"]) or "-"} for r in result["rows"]]
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r[c]).rjust(w) for c, w in zip(cols, widths)))
    for m, o in result["overall"].items():
        print(f"overall {m:5s}: median {o['median_ms']} ms, p95 {o['p95_ms']} ms, worst {o['worst_ms']} ms "
              f"over {o['n_events']} events")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration-s", type=float, default=16.0)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "sync_accuracy.json")
    args = p.parse_args()
    t0 = time.perf_counter()
    result = run(args.duration_s, args.out)
    print_table(result)
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
