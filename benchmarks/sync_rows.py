"""Sync as stored: the alignment each row carries after the Ray ingest pipeline, on the coupled
dev clips (issue #12's streaming path), with the rows stamped at once (``sync_settle_s = 0``)
beside the product default (stamped with the estimate in force ``sync_settle_s`` later).

For each stored row: |audio time its warp gives at the segment's middle - the truth| (ms); per
setting: median, p90, worst, rows over 80 ms, confident rows (``sync_confidence >= 0.5``) over
80 ms, and for the paced (live) runs the end-to-end row latency that settling costs.

Usage::

    python -m benchmarks.sync_rows [--cache DIR] [--no-live]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np

from benchmarks.data.coupled import truth_audio_s
from benchmarks.data.devsets import build as build_devsets
from benchmarks.provenance import write_results

WRONG_MS = 80.0
CONFIDENT = 0.5


def _warp_at(warp: np.ndarray, t: float) -> float:
    """The row's warp at video time ``t`` (linear beyond its ends, as ``SyncEstimate.warp_at``)."""
    w = np.asarray(warp, np.float64)
    if len(w) < 2:
        return float("nan")
    if t < w[0, 0]:
        return float(w[0, 1] + (t - w[0, 0]) * (w[1, 1] - w[0, 1]) / (w[1, 0] - w[0, 0]))
    if t > w[-1, 0]:
        return float(w[-1, 1] + (t - w[-1, 0]) * (w[-1, 1] - w[-2, 1]) / (w[-1, 0] - w[-2, 0]))
    return float(np.interp(t, w[:, 0], w[:, 1]))


def run(clips: list[dict], codebooks: str, db: Path, settle_s: float, live: bool) -> dict:
    """Ingests the clips (one stream each) and scores every stored row against the truth."""
    import lancedb

    from actors.pipeline import run_ingest
    from engine.ingest.pipeline import PipelineConfig
    from engine.media.sources import default_stream_id

    shutil.rmtree(db, ignore_errors=True)
    commits: list = []
    config = PipelineConfig(db_dir=str(db), codebooks_dir=codebooks, live=live, sync_settle_s=settle_s,
                            image_encoder=None, asr=None, writer_batch_rows=8, queue_max_segments=32)
    t0 = time.perf_counter()
    summary = run_ingest([c["path"] for c in clips], config, on_row=lambda row, s: commits.append(row))
    wall = time.perf_counter() - t0
    by_id = {default_stream_id(c["path"]): c for c in clips}
    tbl = lancedb.connect(str(db)).open_table(config.table).to_arrow()
    errs, confident_wrong = [], 0
    for r in tbl.select(["stream_id", "t_start_us", "t_end_us", "warp", "sync_confidence"]).to_pylist():
        c = by_id[r["stream_id"]]
        t = (r["t_start_us"] + r["t_end_us"]) / 2e6
        truth = float(truth_audio_s(np.array([t]), c["offset_ms"], c["drift_ppm"], c["splices"])[0])
        e = abs(_warp_at(np.array(r["warp"]), t) - truth) * 1000.0
        errs.append(e)
        confident_wrong += int((r["sync_confidence"] or 0.0) >= CONFIDENT and e > WRONG_MS)
    e = np.array(errs)
    lat = [c.wall_committed_s - c.wall_decoded_s for c in commits]
    return {"settle_s": settle_s, "live": live, "rows": len(e), "median_ms": round(float(np.median(e)), 2),
            "p90_ms": round(float(np.percentile(e, 90)), 2), "worst_ms": round(float(e.max()), 2),
            "over_80ms": int((e > WRONG_MS).sum()), "confident_over_80ms": confident_wrong,
            "latency_s_p50": round(statistics.median(lat), 2), "latency_s_p95": round(float(np.percentile(lat, 95)), 2),
            "errors": [s.error for s in summary.streams if s.error], "wall_s": round(wall, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, default=None, help="dev-set cache (default ~/.cache/omnialign/devsets)")
    p.add_argument("--live", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the clips paced as live streams (latency of settling)")
    args = p.parse_args()
    from actors.runtime import init_ray
    from engine.ingest.pipeline import PipelineConfig
    from engine.media.decode import MediaConfig, iter_segments
    from engine.tokenize.tokenizer import Tokenizer

    t_start = time.perf_counter()
    clips = build_devsets(args.cache)["coupled"]
    root = Path(tempfile.mkdtemp(prefix="omnialign-sync-rows-"))
    codebooks = root / "codebooks"
    segs = (s for c in clips[:2] for s in islice(iter_segments(c["path"], MediaConfig(video_max_fps=5)), 6))
    Tokenizer.fit(segs).save(codebooks)
    init_ray(None)
    default_settle = PipelineConfig(db_dir="x", codebooks_dir="x").sync_settle_s
    runs = []
    for live in ((False, True) if args.live else (False,)):
        for settle in (0.0, default_settle):
            r = run(clips, str(codebooks), root / f"db_{int(live)}_{settle:g}", settle, live)
            runs.append(r)
            print(f"{'live' if live else 'file'} settle {settle:g} s: rows {r['rows']}, median {r['median_ms']} ms, "
                  f"p90 {r['p90_ms']} ms, worst {r['worst_ms']} ms, over 80 ms {r['over_80ms']} "
                  f"(confident {r['confident_over_80ms']}), latency p50 {r['latency_s_p50']} s / p95 "
                  f"{r['latency_s_p95']} s")
    shutil.rmtree(root, ignore_errors=True)
    out = write_results("sync_rows", {
        "benchmark": "sync_rows",
        "definition": "per stored row: |warp(t_mid) - true audio time| ms on the 14 coupled dev clips ingested by "
                      "actors.pipeline.run_ingest (ASR and encoders off), one stream per clip; latency: "
                      "decoded -> committed per row",
        "default_settle_s": default_settle, "runs": runs, "run_s": round(time.perf_counter() - t_start, 1)})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
