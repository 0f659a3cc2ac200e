"""The README's benchmark numbers, generated from ``benchmarks/results/*.json``.

One small markdown table per benchmark with its headline numbers; every row names the results
file it comes from and the commit that file's run measured (short hash). Nothing here measures
anything, and nothing but the JSON files goes into the output (no dates, no machine state), so
the same results always render the same text.

    python -m benchmarks.report                    # print the block
    python -m benchmarks.report --write README.md  # replace it between the markers

The block sits in README.md between ``<!-- benchmarks:begin -->`` and ``<!-- benchmarks:end -->``;
``tests/benchmarks/test_report.py`` checks that it equals :func:`render`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

RESULTS = Path(__file__).resolve().parent / "results"
BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"

Table = tuple[str, list[str], list[list[str]]]  # title, header, rows


def source(name: str, data: dict, part: str | None = None) -> str:
    """The last cell of a row: ``file @ commit``, with † for backfilled and "dirty" for a dirty tree.

    Args:
        name: the results file name.
        data: its parsed JSON.
        part: a top-level key whose own commit (``provenance.parts``) applies, if any.

    Returns:
        A markdown cell such as ``decode.json @ 89b8fb6``.
    """
    prov = data.get("provenance") or {}
    commit = ((prov.get("parts") or {}).get(part) or {}).get("commit") if part else None
    commit = commit or data.get("commit") or prov.get("commit")
    mark = "†" if prov.get("backfilled") else ""
    dirty = " (dirty)" if prov.get("dirty") else ""
    return f"`{name}` @ " + (f"`{commit[:7]}`{mark}{dirty}" if commit else "no commit")


def num(x: Any, fmt: str) -> str:
    """Formats a number, or ``–`` for a missing one."""
    return "–" if x is None or isinstance(x, bool) else format(x, fmt)


def pct(x: Any) -> str:
    """A fraction as a signed percentage (``0.064`` → ``+6.4 %``)."""
    return "–" if x is None else f"{x * 100:+.1f} %"


def cores(data: dict) -> str:
    """``; N cores`` when the run recorded them."""
    n = (data.get("provenance") or {}).get("cores") or (data.get("meta") or {}).get("cpus")
    return f"; {n} cores" if n else ""


def decode(name: str, d: dict) -> list[Table]:
    """decode.json: × real time of omnialign's decode + segment vs a plain PyAV loop."""
    rows = [[r["case"], num(r["omnialign_x_realtime"], ".1f"), num(r["plain_pyav_x_realtime"], ".1f"),
             num(r["ratio_vs_plain"], ".2f"), source(name, d)] for r in d["rows"]]
    reps = d["rows"][0].get("repeats") if d["rows"] else None
    return [(f"decode + segment, × real time (median of {reps}){cores(d)}",
             ["case", "omnialign", "plain PyAV", "ratio", "results"], rows)]


def rvq(name: str, d: dict) -> list[Table]:
    """rvq.json: vectors/s and held-out error of each quantizer, error relative to faiss."""
    ok = [r for r in d["rows"] if "error" not in r]
    faiss = next((r for r in ok if r["name"].startswith("faiss")), None)
    rows = []
    for r in d["rows"]:
        if "error" in r:
            rows.append([r["name"], "error", "–", "–", source(name, d)])
            continue
        vs = r["rel_sq_error"] / faiss["rel_sq_error"] if faiss else None
        rows.append([r["name"], num(r["vectors_per_s"], ",.0f"), num(r["rel_sq_error"], ".4f"),
                     "–" if vs is None else f"×{vs:.3f}", source(name, d)])
    return [(f"RVQ encode, {d.get('bits_per_vector')} bits/vector, {d.get('threads')} thread, held-out error",
             ["quantizer", "vectors/s", "rel. sq. error", "error vs faiss", "results"], rows)]


def dtw(name: str, d: dict) -> list[Table]:
    """dtw.json: exact DTW (with path) cells/s per library, and OLTW update latency."""
    exact = [r for r in d["rows"] if r["kind"] == "dtw" and r.get("with_path")]
    cases = sorted({(r["dim"], r["n"]) for r in exact})

    def best(dim: int, n: int, prefix: str) -> str:
        got = [r["mcells_per_s"] for r in exact if r["dim"] == dim and r["n"] == n and r["impl"].startswith(prefix)
               and "mcells_per_s" in r]
        return num(max(got), ".0f") if got else "–"

    rows = [[str(dim), str(n), best(dim, n, "omnialign"), best(dim, n, "dtaidistance"), best(dim, n, "librosa"),
             source(name, d)] for dim, n in cases]
    oltw = [[str(r["window_frames"]), str(r["dim"]), num(r["p50_ms"], ".4f"), num(r["p99_ms"], ".4f"),
             source(name, d)] for r in d["rows"] if r["kind"] == "oltw"]
    return [("exact DTW with path, M cells/s (1 thread; best variant of each library)",
             ["dim", "N = M", "omnialign", "dtaidistance", "librosa", "results"], rows),
            ("OLTW update latency (one frame of each stream)",
             ["window", "dim", "p50 ms", "p99 ms", "results"], oltw)]


def sync_accuracy(name: str, d: dict) -> list[Table]:
    """sync_accuracy.json: per dev set, omnialign sync vs the naive peer (issue #12);
    sync_accuracy_streaming.json: tracker vs offline, OLTW vs banded DTW. Older single-set files
    (``overall``) render as before."""
    if "overall" in d:
        label = {"sync": "omnialign sync (DTW + onsets + warp fit)", "xcorr": "naive global cross-correlation"}
        rows = [[label.get(m, m), num(o["median_ms"], ".2f"), num(o["p95_ms"], ".2f"), num(o["worst_ms"], ".2f"),
                 str(o["n_events"]), source(name, d)] for m, o in d["overall"].items()]
        return [(f"A/V sync error at ground-truth events, {len(d['rows'])} synthetic clips",
                 ["method", "median ms", "p95 ms", "worst ms", "events", "results"], rows)]
    if "sets" in d:
        rows = []
        for set_name, s in d["sets"].items():
            summ = s["summary"]
            for m, label in (("ours", "omnialign sync"), ("naive", "naive peer")):
                o = summ[m]
                cw = "–" if o.get("confident_wrong") is None else str(o["confident_wrong"])
                rows.append([set_name, label, str(summ["n_clips"]), num(o["median_ms"], ".2f"), num(o["worst_ms"], ".2f"),
                             cw, str(o["no_estimate"]), source(name, d)])
        return [("A/V sync error per clip (mean over its points; real videos relative to the unshifted copy)",
                 ["set", "method", "clips", "median ms", "worst ms", "confident-wrong", "no estimate", "results"], rows)]
    summ = d.get("summary") or {}
    fp = summ.get("fine_path") or {}
    diffs = sorted(r["max_warp_diff_ms"] for r in d.get("rows", []))
    within = f"{summ.get('tracker_within_5ms', '?')}/{summ.get('n_clips', '?')} within 5 ms"
    rows = [[f"SyncTracker vs offline, max warp difference per clip ({within})",
             num(diffs[len(diffs) // 2] if diffs else None, ".2f"),
             num(diffs[min(len(diffs) - 1, int(0.9 * len(diffs)))] if diffs else None, ".2f"),
             num(summ.get("tracker_max_warp_diff_ms"), ".2f"), num(summ.get("tracker_cpu_ms_per_s_median"), ".2f"),
             source(name, d)]]
    for m, label in (("dtw", "fine path: banded DTW, 8 s window every 2 s (product)"), ("oltw", "fine path: OLTW")):
        if m in fp:
            rows.append([f"{label}, |path lag - true lag| at events", num(fp[m]["median_ms"], ".2f"),
                         num(fp[m]["p90_ms"], ".2f"), "–", num(fp[m]["cpu_ms_per_s"], ".2f"), source(name, d)])
    return [(f"Streaming sync, {summ.get('n_clips', '?')} dev clips",
             ["what", "median ms", "p90 ms", "worst ms", "CPU ms per s of stream", "results"], rows)]


def sync_rows(name: str, d: dict) -> list[Table]:
    """sync_rows.json: the alignment stored rows carry after Ray ingest, stamped at once vs settled."""
    rows = [[("live" if r["live"] else "file") + f", settle {r['settle_s']:g} s", str(r["rows"]),
             num(r["median_ms"], ".2f"), num(r["p90_ms"], ".2f"), num(r["worst_ms"], ".2f"), str(r["over_80ms"]),
             str(r["confident_over_80ms"]), num(r["latency_s_p50"], ".2f"), num(r["latency_s_p95"], ".2f"),
             source(name, d)] for r in d["runs"]]
    return [("Sync on stored rows, coupled dev clips through the Ray ingest pipeline (error at each row's middle)",
             ["ingest", "rows", "median ms", "p90 ms", "worst ms", "> 80 ms", "confident > 80 ms",
              "latency p50 s", "latency p95 s", "results"], rows)]


def search(name: str, d: dict) -> list[Table]:
    """search.json: recall@10, latency and build time at scale, ours vs the HNSW peers; filters
    and appends."""
    out = []
    for dim, r in d["dims"].items():
        rows = []
        ours = r.get("ours") or {}
        if "chosen" in ours:
            ch = ours["chosen"]
            rows.append([f"ours: IVF_SQ, {ours['plan']['num_partitions']} partitions, probes {ch['nprobes']}, "
                         f"refine {ch['refine_factor']}x", num(ch["recall_at_10"], ".3f"), num(ch["p50_ms"], ".2f"),
                         num(ch["p95_ms"], ".2f"), num(ours["build_s"], ".1f"), num(ours.get("build_rss_growth_mb"), ".0f"),
                         source(name, d)])
            fl = ours["flat"]
            rows.append(["ours: exact flat scan (before the index)", num(fl["recall_at_10"], ".3f"),
                         num(fl["p50_ms"], ".2f"), num(fl["p95_ms"], ".2f"), "–", "–", source(name, d)])
        for peer in ("faiss_hnsw", "hnswlib"):
            p = r.get(peer) or {}
            if not p.get("sweep"):
                continue
            best = next((x for x in sorted(p["sweep"], key=lambda x: x["p50_ms"]) if x["recall_at_10"] >= 0.95),
                        p["sweep"][-1])
            params = ", ".join(f"{k} {v}" for k, v in p["params"].items())
            rows.append([f"{peer} ({params}), ef {best['ef']}", num(best["recall_at_10"], ".3f"),
                         num(best["p50_ms"], ".2f"), num(best["p95_ms"], ".2f"), num(p["build_s"], ".1f"),
                         num(p.get("build_rss_growth_mb"), ".0f"), source(name, d)])
        out.append((f"vector search, {d['rows']:,} × {dim}-d {d['distance']}, {d['queries']} queries, one at a time"
                    f"{cores(d)} (peers: fastest ef with recall ≥ 0.95)",
                    ["index", "recall@10", "p50 ms", "p95 ms", "build s", "RSS growth over build MB", "results"],
                    rows))
        if "filters" in ours:
            frows = [[k.replace("_", " "), str(f["matching_rows_median"]), str(f["short_results"]),
                      num(f["recall_at_10"], ".3f"), num(f["p50_ms"], ".2f"), source(name, d)]
                     for k, f in ours["filters"].items()]
            app = ours["append"]
            frows.append([f"{app['rows']:,} appended rows, before folding", "–", "–",
                          num(app["before_fold"]["recall_at_10"], ".3f"), num(app["before_fold"]["p50_ms"], ".2f"),
                          source(name, d)])
            frows.append([f"… folded in ({num(app['fold_s'], '.1f')} s), after", "–", "–",
                          num(app["after_fold"]["recall_at_10"], ".3f"), num(app["after_fold"]["p50_ms"], ".2f"),
                          source(name, d)])
            out.append((f"filtered and fresh queries, {d['rows']:,} × {dim}-d",
                        ["query", "matching rows", "short results", "recall@10", "p50 ms", "results"], frows))
    return out


def ingest(name: str, d: dict) -> list[Table]:
    """ingest*.json: real-time factors per stream count, and the live soak's RSS."""
    out = []
    if d.get("rows"):
        rows = [[str(r["streams"]), num(r["loop"]["realtime_factor"], ".1f"), num(r["ray"]["realtime_factor"], ".1f"),
                 num(r["ray"].get("steady_realtime_factor"), ".1f"), num(r["ray"].get("concurrent_realtime_factor"), ".1f"),
                 num(r["ray"].get("latency_end_to_end_s_p50"), ".2f"), source(name, d, "rows")] for r in d["rows"]]
        clip = (d.get("meta") or {}).get("clip_s")
        out.append((f"ingest, × real time ({num(clip, 'g')} s clips per stream){cores(d)}",
                    ["streams", "single-process loop", "Ray (wall)", "Ray steady", "Ray all stages", "e2e p50 s",
                     "results"], rows))
    live = d.get("live")
    if live:
        minutes = (live["samples"][-1][0] / 60) if live.get("samples") else None
        out.append(("live soak (real-time pace), RSS of driver + Ray processes",
                    ["minutes", "media s", "× real time", "RSS MiB 1st half", "RSS MiB 2nd half", "RSS MiB max",
                     "results"],
                    [[num(minutes, ".0f"), num(live["media_s"], ".0f"), num(live["realtime_factor"], ".2f"),
                      num(live["rss_mb_first_half_median"], ".0f"), num(live["rss_mb_second_half_median"], ".0f"),
                      num(live["rss_mb_max"], ".0f"), source(name, d, "live")]]))
    if d.get("understanding"):
        # Measured in the same run: the parent's provenance applies.
        out += understanding(name, {**d["understanding"], "commit": d.get("commit"), "provenance": d.get("provenance")})
    return out


def share(x: Any) -> str:
    """A fraction as an unsigned percentage (``0.076`` → ``7.6 %``)."""
    return "–" if x is None else f"{x * 100:.1f} %"


def image_retrieval(name: str, d: dict) -> list[Table]:
    """image_retrieval.json: precision@5 by category, pretrained image_emb vs pixel statistics."""
    labels = {"image_emb": "image_emb (" + (d.get("encoders") or {}).get("image_emb", "?").split("@")[0] + ")",
              "video_emb": "video_emb (pooled pixel-statistics region features)"}
    rows = [[labels.get(c, c), num(r["precision_at_5"], ".3f"), num(r["median_query_ms"], ".1f"), source(name, d)]
            for c, r in d["columns"].items()]
    return [(f"image → image retrieval by category, {d['pictures']} openclipart pictures in "
             f"{len(d['categories'])} categories (chance {num(d['chance'], '.3f')})",
             ["column", "precision@5", "median query ms", "results"], rows)]


def audio_retrieval(name: str, d: dict) -> list[Table]:
    """audio_retrieval.json: precision@5 by spoken phrase, Whisper-encoder audio_enc_emb vs log-mel statistics."""
    labels = {"audio_enc_emb": "audio_enc_emb (" + (d.get("encoders") or {}).get("audio_enc_emb", "?").split("@")[0] + " encoder, pooled)",
              "audio_emb": "audio_emb (pooled log-mel features)"}
    rows = [[labels.get(c, c), num(r["precision_at_5"], ".3f"), num(r["top1"], ".3f"), num(r["median_query_ms"], ".1f"),
             source(name, d)] for c, r in d["columns"].items()]
    return [(f"audio → audio retrieval by spoken phrase, {d['clips']} Hedgewars voice clips ({d['phrases']} phrases × "
             f"{len(d['voices'])} voices, chance {num(d['chance'], '.3f')})",
             ["column", "precision@5", "top-1", "median query ms", "results"], rows)]


def retrieval(name: str, d: dict) -> list[Table]:
    """retrieval.json: any-to-any retrieval through the text-anchored adapters vs ConSE, the bridge
    over today's columns and chance; adapters' size and stage-1 time."""
    def rk(m: dict | None) -> str:
        return "–" if not m else f"{m['R@1']:.3f} / {m['R@5']:.3f} / {m['R@10']:.3f} / {m['median_rank']:.0f}"

    rows = []
    for direction, r in d["directions"].items():
        o = r["ours"]
        lo, hi = o["R@1_ci95"]
        rows.append([direction, "yes" if r["trained_as_pair"] else "no (emergent)", f"{o['queries']}×{o['candidates']}",
                     rk(o) + f" (R@1 CI {lo:.3f}–{hi:.3f})", rk(r.get("conse")), rk(r.get("bridge")),
                     f"{o['chance_R@1']:.4f} / {o['chance_R@10']:.4f}", source(name, d)])
    ad = [[m, f"{a['params']:,}", f"{a['share_of_frozen_encoder']:.1%}", str(a["train_pairs"]), num(a["wall_s"], ".1f"),
           source(name, d)] for m, a in d["adapters"].items()]
    h = d["held_out_kinds"]
    held = [["adapter space", num(h["precision_at_5_adapter"], ".3f"), num(h["chance"], ".3f"), source(name, d)],
            ["image_emb (frozen EfficientNet-Lite0)", num(h["precision_at_5_image_emb"], ".3f"), num(h["chance"], ".3f"),
             source(name, d)]]
    return [("any-to-any retrieval on the eval split, R@1 / R@5 / R@10 / median rank (dev set: openclipart, "
             "scratch, sonic-pi, hedgewars)",
             ["direction", "trained as a pair", "queries×candidates", "ours (stage 1 adapters)", "ConSE (zero-shot)",
              "bridge over today's columns", "chance R@1 / R@10", "results"], rows),
            ("alignment adapters: trainable parameters and stage 1 on Ray Train (1 worker, 1 CPU" + cores(d) + ")",
             ["modality", "trainable params", "of its frozen encoder", "training pairs", "stage 1 wall s", "results"], ad),
            (f"picture kinds never trained on ({', '.join(h['kinds'])}): precision@5 of same-kind neighbours, "
             f"{h['queries']} queries", ["space", "precision@5", "chance", "results"], held)]


def understanding(name: str, d: dict) -> list[Table]:
    """ingest.json's ``understanding`` (formerly understanding.json): ASR cost vs standalone
    faster-whisper; ingest with ASR + encoder on/off."""
    c, music = d["asr_cost"], d["vad_skip"]["music"]
    programs = f"{c['programs']} programs, " if c.get("programs") else ""
    out = [(f"speech recognition stage vs standalone faster-whisper, {programs}{num(c['audio_s'], '.0f')} s of read speech",
            ["", "CPU s per audio s", "WER", "results"],
            [["omnialign ASR stage (VAD + batched Whisper tiny.en int8)", num(c["ours_cpu_s_per_audio_s"], ".3f"),
              share(c["ours_wer"]), source(name, d)],
             ["faster-whisper alone (its VAD, same model and beam)", num(c["peer_cpu_s_per_audio_s"], ".3f"),
              share(c["peer_wer"]), source(name, d)],
             *([["faster-whisper alone on each utterance's own file", "", share(c["files_wer"]), source(name, d)]]
               if "files_wer" in c else []),
             [f"VAD on {num(music['audio_s'], '.0f')} s of music: share kept from the model",
              share(music["skipped_share"]), "", source(name, d)]])]
    rows = [[f"{r['streams']}{' live' if r['live'] else ''}",
             num(r["media_s"] / r["streams"], ".0f") if r.get("media_s") is not None else num(d["clip_s"], "g"),
             "on" if r["on"] else "off", num(r["realtime_factor"], ".1f"), num(r.get("first_row_s"), ".1f"),
             num(r.get("steady_realtime_factor"), ".1f"), num(r.get("lag_s_p50"), ".1f"), num(r.get("lag_s_p95"), ".1f"),
             source(name, d)] for r in d["throughput"] + d["live"]]
    out.append(("ingest with ASR + image encoder on vs off (real-speech clips; × real time includes start-up)",
                ["streams", "media s per stream", "ASR + encoder", "× real time", "first row s", "steady ×",
                 "lag p50 s", "lag p95 s", "results"], rows))
    return out


def serve_load(name: str, d: dict) -> list[Table]:
    """serve_load*.json: p50 / p99 / tok/s per mode and clients, HTTP overhead, LoRA cost."""
    meta = d.get("meta") or {}
    model = meta.get("model_size", "tiny") + (" (quick)" if meta.get("quick") else "")
    by_clients: dict[int, dict[str, dict]] = {}
    for mode, runs in d["modes"].items():
        for r in runs:
            by_clients.setdefault(r["clients"], {})[mode] = r
    modes = list(d["modes"])

    def cell(r: dict | None) -> str:
        if r is None:
            return "–"
        return f"{r['p50_s']:.3f} / {r['p99_s']:.3f} / {r['tokens_per_s']:.0f}"

    rows = [[model, str(c)] + [cell(by_clients[c].get(m)) for m in modes] + [source(name, d)]
            for c in sorted(by_clients)]
    o, s = d.get("overhead") or {}, d.get("autoscale") or {}
    extra = [[model, num(o.get("http_over_direct"), ".2f"), pct(o.get("lora_cost")),
              f"{s.get('max_replicas', '–')} → {s.get('final_replicas', '–')}", source(name, d)]]
    return [(f"serving over HTTP, {model} model: p50 s / p99 s / completion tok/s{cores(d)}",
             ["model", "clients"] + modes + ["results"], rows),
            (f"serving overhead, {model} model (concurrency 1)",
             ["model", "HTTP / direct (goal ≤ 1.2)", "LoRA cost (goal ≤ 15 %)", "replicas under load → after",
              "results"], extra)]


def lora_ops(name: str, d: dict) -> list[Table]:
    """lora_ops.json: LoRA cost and batched base output, omnialign's ops vs vLLM's."""
    rows = [[r["model"], r["ops"], num(r["without_s"], ".3f"), num(r["with_s"], ".3f"), pct(r["lora_cost"]),
             "correct" if r["batched_base_output_ok"] else "wrong", source(name, d)] for r in d["rows"]]
    return [(f"LoRA cost in vLLM (rank-8 adapter vs none), omnialign's CPU ops vs vLLM's own{cores(d)}",
             ["model", "ops", "no adapter s", "adapter s", "LoRA cost", "base output when batched", "results"], rows)]


def gpu(name: str, d: dict) -> list[Table]:
    """gpu_check*.json / gpu_rvq*.json: every GPU variant row (DTW and RVQ sections)."""
    env = d.get("environment") or {}
    where = env.get("gpu") or (d.get("sizes") or {}).get("device") or "GPU"
    sections = d.get("results") or {"rvq": d.get("rows", [])}
    out = []
    for section, rows in sections.items():
        if section == "dtw":
            body = [[r.get("variant", "?"), str(r.get("dim", "–")), num(r.get("median_ms"), ".3f"),
                     num(r.get("gcells_per_s"), ".1f"), num(r.get("max_rel_err_vs_numba"), ".1e"),
                     "error" if "error" in r else str(r.get("ok")), source(name, d)] for r in rows]
            first = next((r for r in rows if "pairs" in r), {})
            shape = f", {first['pairs']} pairs of {first['n']} × {first['m']}" if first else ""
            out.append((f"GPU batched DTW ({where}){shape}",
                        ["variant", "D", "median ms", "G cells/s", "max rel. err vs numba", "ok", "results"], body))
        else:
            body = [[r.get("name", "?"), num(r.get("time_ms"), ".2f"), num(r.get("tflops"), ".1f"),
                     num(r.get("frac_gemm"), ".3f"), num(r.get("mismatch_rate"), ".1e"),
                     "error" if "error" in r else r.get("verdict", ""), source(name, d)]
                    for r in rows if not str(r.get("name", "")).startswith("SUMMARY")]
            sizes = d.get("sizes") or {}
            shape = (f"N = {sizes['n']:,}, D = {sizes['d']}, Q = {sizes['q_count']}, K = {sizes['k']}"
                     if {"n", "d", "q_count", "k"} <= sizes.keys() else "default sizes of benchmarks/gpu_rvq.py at that commit")
            out.append((f"GPU RVQ encode ({where}), {shape}",
                        ["variant", "ms", "TFLOP/s", "of GEMM rate", "mismatch rate", "verdict", "results"], body))
    return out

def autoscale(name: str, d: dict) -> list[Table]:
    """autoscale.json: Ray's autoscaler over fake nodes, live ingest load steps vs a fixed peak cluster."""
    sm, rows = d["summary"], []
    labels = {"autoscaling": "autoscaling 0..4 workers", "fixed": "fixed at the peak (4 workers)",
              "node_loss": "node killed mid-stream (0..2 workers)"}
    for key, label in labels.items():
        s = sm.get(key)
        if not s:
            continue
        up = ", ".join(f"{k.removesuffix('_scale_up_s')} {num(v, '.1f')}" for k, v in s.items() if k.endswith("_scale_up_s"))
        rows.append([label, up or "–", num(s.get("idle_to_min_s"), ".1f"), str(s.get("peak_nodes", "–")),
                     num(s["node_seconds"], ".0f"), num(s["throughput_rows_per_s"], ".2f"),
                     num(s["mean_end_to_end_lag_s"], ".1f"),
                     f"{s['rows_stored']}/{s['rows_expected']} ({s['rows_missing']} lost, {s['rows_duplicated']} dup)",
                     source(name, d)])
    title = ("autoscaling on Ray's autoscaler, fake nodes sharing 2 cores, live ingest load steps"
             f"; node-seconds vs fixed {num(sm.get('node_seconds_vs_fixed'), '.2f')}, "
             f"throughput vs fixed {num(sm.get('throughput_vs_fixed'), '.2f')}")
    dash = d.get("dashboard")
    if dash:
        title += f"; dashboard queries with data {sum(q['series'] > 0 for q in dash)}/{len(dash)}"
    return [(title, ["run", "demand → needed nodes active, s", "idle → min s", "peak nodes", "worker node-s",
                     "rows/s", "mean lag s", "rows stored", "results"], rows)]


def shift_curve(name: str, d: dict) -> list[Table]:
    """shift_curve.json: masked RVQ audio reconstruction against an artificial A/V shift on the
    coupled dev clips; the offset its minimum implies beside omnialign sync and the naive peer."""
    rows = [[r["clip"], num(r["curve_min_in_sync_ms"], "+.0f"), num(r["contrast"], ".3f"), num(r["offset_true_ms"], "+.1f"),
             num(r["learned_offset_ms"], "+.1f"), num(r["learned_error_ms"], ".1f"), num(r["ours_ms"], ".1f"),
             num(r["naive_ms"], ".1f"), source(name, d)] for r in d["rows"]]
    s, t = d["summary"], d["train"]
    return [(f"masked audio-code reconstruction vs A/V shift ({d['model']['params']:,} params, trained on {t['clips']} "
             f"coupled clips / {t['media_s']:.0f} s in sync, {d['wall_s']['train']:.0f} s" + cores(d) + "); curve minimum "
             f"on the dev clips put in sync: median |{s['median_abs_curve_min_in_sync_ms']}| ms, "
             f"{s['curve_min_within_40ms']}/{s['n_clips']} within 40 ms",
             ["clip", "curve min in sync, ms", "contrast", "true offset ms", "learned offset ms", "learned error ms",
              "omnialign sync error ms", "naive peer error ms", "results"], rows)]


# File name prefix -> renderer, in the order the block shows them.
RENDERERS: dict[str, Callable[[str, dict], list[Table]]] = {
    "decode": decode, "rvq": rvq, "dtw": dtw, "sync_accuracy": sync_accuracy, "sync_rows": sync_rows, "search": search,
    "ingest": ingest, "image_retrieval": image_retrieval, "audio_retrieval": audio_retrieval, "retrieval": retrieval, "shift_curve": shift_curve, "understanding": understanding, "serve_load": serve_load, "lora_ops": lora_ops, "autoscale": autoscale,
    "gpu_check": gpu, "gpu_rvq": gpu,
}


def markdown(table: Table) -> str:
    """One titled markdown table."""
    title, header, rows = table
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render(results_dir: str | Path = RESULTS) -> str:
    """The markdown block of every results file's headline numbers.

    Args:
        results_dir: folder of ``*.json`` results.

    Returns:
        The block (ends with a newline), without the begin/end markers.
    """
    files = sorted(Path(results_dir).glob("*.json"))
    tables: list[Table] = []
    for prefix, fn in RENDERERS.items():
        for path in files:
            if path.stem == prefix or path.stem.startswith(prefix + "_"):
                tables += fn(path.name, json.loads(path.read_text()))
    known = {p.name for p in files if any(p.stem == k or p.stem.startswith(k + "_") for k in RENDERERS)}
    other = [p.name for p in files if p.name not in known]
    parts = ["Generated from `benchmarks/results/*.json` by `python -m benchmarks.report --write README.md`"
             " after a benchmark run; do not edit by hand (`tests/benchmarks/test_report.py` checks it)."
             " Each row names its results file and the commit it measured; † marks provenance backfilled"
             " from git history (see that file's `provenance.note`)."]
    parts += [markdown(t) for t in tables]
    if other:
        parts.append("Other results files: " + ", ".join(f"`{n}`" for n in other) + ".")
    return "\n\n".join(parts) + "\n"


def replace_block(text: str, block: str) -> str:
    """``text`` with everything between the markers replaced by ``block``.

    Raises:
        ValueError: if the markers are missing or out of order.
    """
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {BEGIN} ... {END} markers")
    return text[: start + len(BEGIN)] + "\n" + block + text[end:]


def extract_block(text: str) -> str:
    """The text between the markers (what :func:`replace_block` put there)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {BEGIN} ... {END} markers")
    return text[start + len(BEGIN) + 1 : end]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(RESULTS), help="folder of results JSON")
    ap.add_argument("--write", metavar="README", help="replace the block between the markers in this file")
    args = ap.parse_args(argv)
    block = render(args.results)
    if not args.write:
        sys.stdout.write(block)
        return
    path = Path(args.write)
    path.write_text(replace_block(path.read_text(), block))
    print(f"wrote the benchmarks block into {path}")


if __name__ == "__main__":
    main()
