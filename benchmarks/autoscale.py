"""Autoscaling on Ray's own autoscaler: live ingest load steps on a local cluster of fake nodes.

Three runs, each on a fresh local cluster (``benchmarks/local_cluster.py``: Ray's v1 autoscaler
over ``cluster.local.yaml``, private ports and temp dir; the head holds only the stateful stages,
workers of 2 CPUs hold tokenizers, one per stream at 1 CPU):

* **autoscaling** — 0..4 workers, idle timeout 12 s. The load: a baseline job of 2 live streams
  (300 s) from t=5 s, and a burst of 3 more jobs of 2 streams (30 s) at t=40 s: the baseline
  needs 1 worker node, the burst 3 more. (Node-seconds against the fixed cluster depend on this
  profile: the shorter the burst's share of the time, the more autoscaling saves.)
* **fixed** — the same schedule on a cluster held at the peak (4 workers) from the start.
* **node loss** — one job of 2 live streams (30 s); once 4 rows are stored the worker node
  holding its tokenizers is killed (raylet and every process under it: a machine lost).

Every run ends with the stored rows checked against every stream's segments (missing,
duplicated). Scale-up counts until the autoscaler reports the nodes active; node-seconds count
worker node processes from launch to exit (what a cloud bills), worker nodes only (the head is the same in both): autoscaling
from the schedule's start until the cluster is back at its minimum, fixed from the start until
the last job ends. With ``--prometheus``, a real Prometheus (Debian's package) scrapes the
autoscaler and every job, and every ingest, sync and autoscaler query of
``dashboards/omnialign.json`` is evaluated at the end of the autoscaling run.

Fake nodes share this machine's 2 cores: the streams are paced at real time and the actors are
long-lived, so what is measured is the scaling behaviour (when nodes come and go, what a lost
node costs), not compute. A Serve load step is not part of this benchmark
(``benchmarks/serve_load.py`` scales Serve replicas within one node).

    python benchmarks/autoscale.py [--prometheus] [--quick] [--out benchmarks/results/autoscale.json]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cluster_load import Step, prepare_media, run_schedule  # noqa: E402
from benchmarks.local_cluster import LocalAutoscalingCluster, LocalClusterConfig  # noqa: E402
from benchmarks.provenance import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
WORKER_CPUS = 2
IDLE_TIMEOUT_S = 12.0


def schedule(quick: bool) -> list[Step]:
    if quick:
        return [Step(2, 1, 2, 40, "baseline"), Step(12, 1, 2, 14, "burst")]
    return [Step(5, 1, 2, 300, "baseline"), Step(40, 3, 2, 30, "burst")]


def needed_workers(active_streams: int) -> int:
    """Worker nodes the running streams need: a 1-CPU tokenizer each, 2 CPUs a node."""
    return math.ceil(active_streams / WORKER_CPUS)


def node_seconds(samples: list[dict], t_end_s: float) -> float:
    """∫ worker nodes dt over the samples up to ``t_end_s`` (each sample holds until the next)."""
    pts = [(s["t_s"], s["worker_nodes"]) for s in samples if "worker_nodes" in s and s["t_s"] <= t_end_s]
    total = 0.0
    for (t, n), (t2, _) in zip(pts, [*pts[1:], (t_end_s, 0)]):
        total += n * max(0.0, t2 - t)
    return total


def scaling_times(samples: list[dict], steps: list[Step], t_last_s: float, min_workers: int) -> dict:
    """Per step: seconds from its demand (the autoscaler first reports pending CPUs after the
    step's jobs start) until the autoscaler reports the nodes the step needs as active (up and
    usable, not merely launched), and from the job's start; then seconds from the last job's
    end until no worker node process is left beyond the minimum."""
    good = [s for s in samples if "worker_nodes" in s]
    out = {}
    for i, st in enumerate(steps):
        streams = sum(x.jobs * x.streams_per_job for x in steps[: i + 1] if x.at_s + x.duration_s > st.at_s)
        need = needed_workers(streams)
        demand = next((s["t_s"] for s in good if s["t_s"] >= st.at_s and s["pending_cpu"] > 0), None)
        hit = next((s["t_s"] for s in good if demand is not None and s["t_s"] >= demand
                    and s["autoscaler_active_workers"] >= need), None)
        out[f"{st.label}_needed_nodes"] = need
        out[f"{st.label}_scale_up_s"] = None if hit is None else round(hit - demand, 2)
        out[f"{st.label}_job_start_to_nodes_s"] = None if hit is None else round(hit - st.at_s, 2)
    back = next((s["t_s"] for s in good if s["t_s"] >= t_last_s and s["worker_nodes"] <= min_workers), None)
    out["idle_to_min_s"] = None if back is None else round(back - t_last_s, 2)
    out["peak_nodes"] = max((s["worker_nodes"] for s in good), default=0)
    return out


def summarize(run: dict, steps: list[Step], min_workers: int, fixed: bool) -> dict:
    samples, t_last = run["samples"], run["t_last_job_end_s"]
    t_end = t_last if fixed else max(s["t_s"] for s in samples)
    rows = run["rows"]
    span = max(1e-9, t_last - min(st.at_s for st in steps))
    last = [s for s in samples if "lag_n" in s][-1]
    out = {"node_seconds": round(node_seconds(samples, t_end), 1), "window_s": round(t_end, 1),
           "rows_expected": rows["expected"], "rows_stored": rows["stored"], "rows_missing": rows["missing"],
           "rows_duplicated": rows["duplicated"], "throughput_rows_per_s": round(rows["stored"] / span, 3),
           "mean_end_to_end_lag_s": round(last["lag_sum_s"] / last["lag_n"], 2) if last["lag_n"] else None,
           "jobs_failed": sum(j["exit_code"] != 0 for j in run["jobs"])}
    if not fixed:
        out.update(scaling_times(samples, steps, t_last, min_workers))
    return out


def one_run(name: str, cfg: LocalClusterConfig, steps: list[Step], media: dict, work: Path, **kw) -> dict:
    # its own short folder: Ray's unix socket paths under it must stay under 108 bytes
    root = Path(tempfile.mkdtemp(prefix="oa-c", dir="/tmp"))
    with LocalAutoscalingCluster(cfg, root) as cluster:
        if cfg.min_workers:  # a fixed cluster is up before its work starts
            deadline = time.monotonic() + 120
            while len(cluster.worker_raylets()) < cfg.min_workers and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(3)
        run = run_schedule(cluster, steps, media, work / name, min_workers=cfg.min_workers, **kw)
    run["leftover_processes_after_stop"] = len(cluster.processes())
    shutil.rmtree(root, ignore_errors=True)
    return run


def plot(runs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, figsize=(10, 3.2 * len(runs)), sharex=False)
    for ax, (name, run) in zip(axes, runs.items()):
        s = [x for x in run["samples"] if "worker_nodes" in x]
        t = [x["t_s"] for x in s]
        ax.step(t, [x["worker_nodes"] for x in s], where="post", label="worker nodes", lw=2)
        ax.step(t, [x["pending_nodes"] for x in s], where="post", label="pending nodes", ls="--")
        ax.step(t, [x["tokenizer_actors"] or 0 for x in s], where="post", label="tokenizer actors", alpha=0.7)
        ax.step(t, [x["jobs_running"] for x in s], where="post", label="jobs running", alpha=0.7)
        rate = [0.0] + [(b["rows"] - a["rows"]) / max(1e-9, b["t_s"] - a["t_s"]) for a, b in zip(s, s[1:])]
        ax2 = ax.twinx()
        ax2.plot(t, rate, color="grey", alpha=0.4, label="rows/s")
        ax2.set_ylabel("rows/s")
        if run.get("killed"):
            ax.axvline(run["killed"]["t_s"], color="red", ls=":", label="node killed")
        ax.set_title(name)
        ax.set_ylabel("count")
        ax.legend(loc="upper right", fontsize=7)
    axes[-1].set_xlabel("seconds since the schedule started")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short schedule (smoke run)")
    parser.add_argument("--only", choices=("autoscaling", "fixed", "node_loss"), action="append",
                        help="run only these (default: all three)")
    parser.add_argument("--prometheus", action="store_true", help="scrape with a real Prometheus and evaluate the dashboard")
    parser.add_argument("--out", default=str(RESULTS / "autoscale.json"))
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    todo = args.only or ["autoscaling", "fixed", "node_loss"]
    steps = schedule(args.quick)
    loss_steps = [Step(2, 1, 2, 16 if args.quick else 30, "stream")]
    media = prepare_media(Path.home() / ".cache" / "omnialign" / "bench-autoscale", [*steps, *loss_steps])
    # node-loss clips are indexed after the schedule's (prepare_media numbers steps in order)
    loss_media = {"codebooks": media["codebooks"],
                  "clips": {(0, j, k): c for (s, j, k), c in media["clips"].items() if s == len(steps)}}
    work = Path(tempfile.mkdtemp(prefix="oa-as-", dir="/tmp"))
    auto_cfg = LocalClusterConfig(worker_cpus=WORKER_CPUS, min_workers=0, max_workers=4, idle_timeout_s=IDLE_TIMEOUT_S)
    fixed_cfg = LocalClusterConfig(worker_cpus=WORKER_CPUS, min_workers=4, max_workers=4, idle_timeout_s=IDLE_TIMEOUT_S)
    loss_cfg = LocalClusterConfig(worker_cpus=WORKER_CPUS, min_workers=0, max_workers=2, idle_timeout_s=IDLE_TIMEOUT_S)
    runs, summary, dashboard = {}, {}, None
    t_start = time.monotonic()
    try:
        if "autoscaling" in todo:
            prom = None
            if args.prometheus:
                from benchmarks.prometheus import PrometheusServer

                prom = PrometheusServer(work / "prometheus").start()
            try:
                runs["autoscaling"] = one_run("autoscaling", auto_cfg, steps, media, work, prometheus=prom)
                if prom is not None:
                    from benchmarks.prometheus import dashboard_queries

                    busy = [s["t_s"] for s in runs["autoscaling"]["samples"] if s.get("jobs_running", 0) >= 2]
                    at = runs["autoscaling"]["t0_unix_s"] + (busy[-1] - 2.0 if busy else 10.0)
                    dashboard = prom.evaluate(dashboard_queries({"Ingest", "Sync", "Autoscaler"}), at)
            finally:
                if prom is not None:
                    prom.stop()
            summary["autoscaling"] = summarize(runs["autoscaling"], steps, auto_cfg.min_workers, fixed=False)
        if "fixed" in todo:
            runs["fixed"] = one_run("fixed", fixed_cfg, steps, media, work)
            summary["fixed"] = summarize(runs["fixed"], steps, fixed_cfg.min_workers, fixed=True)
        if "node_loss" in todo:
            runs["node_loss"] = one_run("node_loss", loss_cfg, loss_steps, loss_media, work, kill_node_after_rows=4)
            summary["node_loss"] = summarize(runs["node_loss"], loss_steps, loss_cfg.min_workers, fixed=False)
            summary["node_loss"]["killed_at_s"] = (runs["node_loss"]["killed"] or {}).get("t_s")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if "autoscaling" in summary and "fixed" in summary:
        a, f = summary["autoscaling"], summary["fixed"]
        summary["node_seconds_vs_fixed"] = round(a["node_seconds"] / f["node_seconds"], 3)
        summary["throughput_vs_fixed"] = round(a["throughput_rows_per_s"] / f["throughput_rows_per_s"], 3)
    out = Path(args.out)
    png = out.with_suffix(".png")
    plot(runs, png)
    payload = {"benchmark": "autoscale", "quick": args.quick, "run_s": round(time.monotonic() - t_start, 1),
               "schedule": [vars(s) for s in steps], "node_loss_schedule": [vars(s) for s in loss_steps],
               "clusters": {"autoscaling": vars(auto_cfg), "fixed": vars(fixed_cfg), "node_loss": vars(loss_cfg)},
               "note": "fake nodes share 2 real cores; live paced streams and long-lived actors: scaling behaviour, not compute",
               "goals": {"scale_up_s": 15, "idle_to_min_s": 60, "node_seconds_vs_fixed": 0.6, "lost_or_duplicated_rows": 0},
               "summary": summary, "dashboard": dashboard, "png": png.name,
               "runs": {k: {**{x: v for x, v in r.items() if x != "rows"}, "rows": {x: v for x, v in r["rows"].items() if x != "per_stream"}}
                        for k, r in runs.items()}}
    write_results(out, payload)
    for k, v in summary.items():
        print(k, v)
    if dashboard is not None:
        print("dashboard queries non-empty:", sum(q["series"] > 0 for q in dashboard), "/", len(dashboard))


if __name__ == "__main__":
    main()
