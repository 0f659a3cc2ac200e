"""Ingest throughput on this machine: the Ray pipeline vs a single-process loop of the same stages.

Peer: :func:`engine.ingest.pipeline.run_local` — decode → align → tokenize → write in one process, no
Ray — on the same clips, in the same run. Both write real LanceDB tables.

For 1, 4 and 8 concurrent streams of 320×240@25 H.264 + 16 kHz (resampled from 48 kHz AAC):

* ``wall_s`` / ``realtime_factor``: media seconds ingested per wall second, start-up included;
* ``steady_realtime_factor`` (Ray): media committed between the first and the last committed row
  over that time — throughput once actors are up (it includes draining what the sources decoded
  while the actors started);
* ``concurrent_realtime_factor`` (Ray): media committed between the first commit and the moment
  the last segment was decoded, over that time — the rate while every stage runs at once, which
  is what an unbounded live source sees at full load (None when decoding ended first);
* per-stage time: the loop times each stage; for Ray, the median wall latency decode→tokenized
  and tokenized→committed of the rows (stages overlap across streams, so these are latencies);
* ``ray_overhead`` / ``ray_overhead_all_stages``: loop throughput / Ray steady (all-stages)
  throughput for the same streams (< 1 means Ray is
  faster, e.g. because streams decode in parallel).

The ``understanding`` rows (:mod:`benchmarks.understanding`, real speech over real photographs):
ASR + encoders on vs off at 1, 4 and 8 streams and on one long program, 4 and 8 live streams'
lag, the ASR stage's CPU s per audio s and WER vs standalone faster-whisper, and the VAD's skip
share on music. ``--understanding-clip-s 0`` leaves them out.

``--live-minutes M`` adds a live (real-time paced) run of 8 streams for M minutes that samples the
RSS of every Ray worker process and the driver every few seconds; the plot
``benchmarks/results/ingest_rss.png`` shows whether memory stays flat.

A run writes its own results only (never merged with an earlier file): ``--out``, by default
``benchmarks/results/ingest.json``, or ``ingest_live.json`` for a soak-only run (``--streams`` with no counts).

    python benchmarks/ingest.py [--clip-s 300] [--streams 1 4 8] [--understanding-clip-s 120] [--live-minutes 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.provenance import write_results  # noqa: E402

RESULTS = Path("benchmarks/results")


def make_clips(root: Path, n: int, clip_s: float) -> list[str]:
    from engine.media.synth import SynthSpec, synthesize

    clips = []
    for i in range(n):
        path = root / f"s{i}.mp4"
        if not path.exists():
            synthesize(SynthSpec(duration_s=clip_s, width=320, height=240, fps=25.0, offset_ms=40.0 * i,
                                 speech=True, seed=200 + i), path)
        clips.append(str(path))
    return clips


def fit_codebooks(root: Path, clips: list[str]) -> str:
    from itertools import islice

    from engine.media.decode import MediaConfig, iter_segments
    from engine.tokenize.tokenizer import Tokenizer

    out = root / "codebooks"
    if not (out / "manifest.json").exists():
        segs = (s for c in clips[:2] for s in islice(iter_segments(c, MediaConfig(video_max_fps=5)), 10))
        Tokenizer.fit(segs).save(out)
    return str(out)


def bench_loop(clips: list[str], codebooks: str, db: Path) -> dict:
    from engine.ingest.pipeline import PipelineConfig, run_local

    shutil.rmtree(db, ignore_errors=True)
    t0 = time.perf_counter()
    results = run_local(clips, PipelineConfig(db_dir=str(db), codebooks_dir=codebooks, writer_batch_rows=8))
    wall = time.perf_counter() - t0
    media_s = sum(r.segments_written for r in results) * 2.0
    stages = {k: sum(r.stage_s[k] for r in results) for k in results[0].stage_s}
    return {"wall_s": wall, "media_s": media_s, "realtime_factor": media_s / wall, "stage_s": stages,
            "errors": [r.error for r in results if r.error]}


def bench_ray(clips: list[str], codebooks: str, db: Path, live: bool = False) -> dict:
    from actors.pipeline import run_ingest
    from engine.ingest.pipeline import PipelineConfig

    shutil.rmtree(db, ignore_errors=True)
    rows: list = []  # CommitRecord of every committed segment
    config = PipelineConfig(db_dir=str(db), codebooks_dir=codebooks, live=live, writer_batch_rows=8,
                            tokenizer_min_actors=1, tokenizer_max_actors=2, queue_max_segments=32)
    summary = run_ingest(clips, config, on_row=lambda row, s: rows.append(row))
    rows.sort(key=lambda r: r.wall_committed_s)
    first = rows[0].wall_committed_s if rows else 0.0
    span = rows[-1].wall_committed_s - first if rows else 0.0
    # media committed after the first commit, over the time that took (start-up excluded)
    steady_media = sum((r.t_end_us - r.t_start_us) / 1e6 for r in rows if r.wall_committed_s > first)
    last_decoded = max(r.wall_decoded_s for r in rows) if rows else first
    both_media = sum((r.t_end_us - r.t_start_us) / 1e6 for r in rows
                     if first < r.wall_committed_s <= last_decoded)
    return {
        "concurrent_realtime_factor": both_media / (last_decoded - first) if last_decoded - first >= 2.0 else None,
        "concurrent_s": max(0.0, last_decoded - first),
        "wall_s": summary.wall_s, "media_s": summary.media_s, "realtime_factor": summary.realtime_factor,
        "steady_realtime_factor": steady_media / span if span > 0 else None,
        "latency_decode_to_tokenized_s_p50": statistics.median(r.wall_tokenized_s - r.wall_decoded_s for r in rows),
        "latency_tokenized_to_committed_s_p50": statistics.median(r.wall_committed_s - r.wall_tokenized_s for r in rows),
        "latency_end_to_end_s_p50": statistics.median(r.wall_committed_s - r.wall_decoded_s for r in rows),
        "rows": summary.rows_total, "errors": [s.error for s in summary.streams if s.error],
    }


def _rss_mb() -> float:
    """RSS of the driver plus every Ray worker / raylet process (MiB)."""
    import psutil

    total = psutil.Process().memory_info().rss
    for p in psutil.process_iter(["name", "cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if "ray::" in cmd or "raylet" in cmd or "gcs_server" in cmd or (p.info["name"] or "").startswith("ray::"):
                total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 2**20


def bench_live_rss(root: Path, codebooks: str, minutes: float, streams: int = 8) -> dict:
    clip_s = minutes * 60
    clips = []
    for i in range(streams):
        path = root / f"live{i}.mp4"
        if not path.exists():
            from engine.media.synth import SynthSpec, synthesize

            synthesize(SynthSpec(duration_s=clip_s, width=320, height=240, speech=True, seed=300 + i), path)
        clips.append(str(path))
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def sample():
        while not stop.is_set():
            samples.append((time.monotonic() - t0, _rss_mb()))
            stop.wait(5.0)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        result = bench_ray(clips, codebooks, root / "db_live", live=True)
    finally:
        stop.set()
        thread.join()
    t, rss = np.array(samples).T
    half = len(rss) // 2
    result.update(rss_mb_first_half_median=float(np.median(rss[1:half])), rss_mb_second_half_median=float(np.median(rss[half:])),
                  rss_mb_max=float(rss.max()), samples=samples)
    _plot_rss(t, rss, minutes, streams)
    return result


def _plot_rss(t, rss, minutes, streams) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(t / 60, rss, "-")
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS, driver + Ray processes (MiB)")
    ax.set_title(f"{streams} live streams at real-time pace for {minutes:g} min")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / "ingest_rss.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip-s", type=float, default=300.0,
                        help="seconds per stream (long enough that decoding outlasts actor start-up)")
    parser.add_argument("--streams", type=int, nargs="*", default=[1, 4, 8], help="stream counts (none: soak only)")
    parser.add_argument("--live-minutes", type=float, default=0.0, help="also run an RSS soak of this length")
    parser.add_argument("--understanding-clip-s", type=float, default=120.0,
                        help="seconds per real-speech stream of the understanding rows (0: leave them out)")
    parser.add_argument("--understanding-long-s", type=float, default=600.0, help="the long program's seconds (0: none)")
    parser.add_argument("--programs", type=int, default=10, help="speech programs the WER and ASR CPU are measured on")
    parser.add_argument("--out", help="default: benchmarks/results/ingest.json, ingest_live.json for a soak-only run")
    args = parser.parse_args()
    args.out = args.out or str(RESULTS / ("ingest.json" if args.streams else "ingest_live.json"))
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    RESULTS.mkdir(parents=True, exist_ok=True)

    from actors.runtime import init_ray

    root = Path(tempfile.mkdtemp(prefix="omnialign-bench-"))
    clips = make_clips(root, max(args.streams or [2]), args.clip_s)
    codebooks = fit_codebooks(root, clips)
    init_ray(None)
    rows = []
    for n in args.streams:
        loop = bench_loop(clips[:n], codebooks, root / "db_loop")
        ray_res = bench_ray(clips[:n], codebooks, root / "db_ray")
        steady = ray_res["steady_realtime_factor"]
        rows.append({"streams": n, "loop": loop, "ray": ray_res,
                     "ray_overhead": loop["realtime_factor"] / steady if steady else None,
                     "ray_overhead_all_stages": (loop["realtime_factor"] / ray_res["concurrent_realtime_factor"]
                                                 if ray_res["concurrent_realtime_factor"] else None)})
    understanding = None
    if args.streams and args.understanding_clip_s > 0:
        from benchmarks.understanding import measure, print_tables

        understanding = measure(args.understanding_clip_s, tuple(args.streams), (4, 8), args.programs,
                                args.understanding_long_s)
    live = bench_live_rss(root, codebooks, args.live_minutes) if args.live_minutes > 0 else None
    meta = {"machine": platform.machine(), "cpus": os.cpu_count(), "clip_s": args.clip_s,
            "video": "320x240@25 H.264", "audio": "48 kHz AAC -> 16 kHz mono"}
    # this run's results only, in its own file (a soak-only run defaults to ingest_live.json)
    write_results(args.out, {"meta": meta, "rows": rows, "live": live, "understanding": understanding})
    print(f"{'streams':>7} {'loop xRT':>9} {'ray xRT':>8} {'ray steady xRT':>15} {'all-stages xRT':>15} {'overhead':>9} "
          f"{'loop decode/align/tok/write s':>30} {'ray e2e p50 s':>13}")
    for r in rows:
        st = r["loop"]["stage_s"]
        stages = "/".join(f"{st[k]:.1f}" for k in ("decode", "align", "tokenize", "write"))
        conc = r["ray"].get("concurrent_realtime_factor")
        print(f"{r['streams']:>7} {r['loop']['realtime_factor']:>9.1f} {r['ray']['realtime_factor']:>8.1f} "
              f"{(r['ray']['steady_realtime_factor'] or 0):>15.1f} {('-' if conc is None else f'{conc:.1f}'):>15} "
              f"{(r['ray_overhead'] or 0):>9.2f} {stages:>30} {r['ray']['latency_end_to_end_s_p50']:>13.2f}")
    if live and args.live_minutes > 0:
        print(f"live soak: {args.live_minutes:g} min x 8 streams, RSS median {live['rss_mb_first_half_median']:.0f} MiB "
              f"(first half) vs {live['rss_mb_second_half_median']:.0f} MiB (second half), max {live['rss_mb_max']:.0f} MiB "
              f"-> {RESULTS / 'ingest_rss.png'}")
    if understanding is not None:
        print_tables(understanding)
    print(f"-> {args.out}")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
