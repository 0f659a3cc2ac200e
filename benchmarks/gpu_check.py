"""One prepared GPU check: each kernel against its CPU reference, then timings, as tables.

Runs on a bare GPU box (torch, triton, numpy; no Ray / LanceDB / vLLM / PyAV), from the repo root:

    python -m benchmarks.gpu_check [--only rvq|dtw] [--out DIR]

Each section is a module with ``run() -> list[dict]`` (``benchmarks.gpu_rvq``,
``benchmarks.gpu_dtw``). A failing section prints its error and the others still run. Full rows
go to ``DIR/gpu_check.json`` (``$OUT`` when set, else ``benchmarks/results``); the tables are
printed last.

The JSON carries a ``provenance`` block (``benchmarks/provenance.py``); on a copied tree without
``.git`` set ``OMNIALIGN_COMMIT`` to the commit it was copied from.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import time
import traceback
from pathlib import Path

from benchmarks.provenance import write_results

SECTIONS = ("rvq", "dtw")


def _environment() -> dict:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__}
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, capability=f"{props.major}.{props.minor}", sms=props.multi_processor_count,
                   memory_gib=round(props.total_memory / 2**30, 1))
    return env


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def print_table(title: str, rows: list[dict]) -> None:
    """Prints rows (dicts, possibly with different keys) as one aligned table."""
    print(f"\n== {title} ==")
    if not rows:
        print("(no rows)")
        return
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    widths = {c: max(len(c), *(len(_fmt(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(_fmt(r.get(c, "")).ljust(widths[c]) for c in cols))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=SECTIONS, action="append")
    parser.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results"))
    args = parser.parse_args()
    env = _environment()
    print("environment:", json.dumps(env))
    results: dict[str, list[dict]] = {}
    for name in args.only or SECTIONS:
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.gpu_{name}")
            results[name] = module.run()
        except Exception as exc:  # one broken section must not cost the others their device time
            traceback.print_exc()
            results[name] = [{"section": name, "error": f"{type(exc).__name__}: {exc}"}]
        print(f"[{name}] done in {time.perf_counter() - t0:.1f} s", flush=True)
    write_results(Path(args.out) / "gpu_check.json", {"environment": env, "results": results}, default=str)
    for name, rows in results.items():
        print_table(name, rows)


if __name__ == "__main__":
    main()
