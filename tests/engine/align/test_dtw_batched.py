"""Batched DTW: torch anti-diagonal loop and Triton kernel (interpreter) vs exact numba DTW."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.align.dtw import DTWConfig, dtw
from engine.errors import InvalidInputError
from engine.align.kernels.dtw_torch import batched_dtw

REPO = Path(__file__).resolve().parents[3]

CASES = [
    # (D, N, M, config)
    (1, 23, 31, DTWConfig()),
    (1, 40, 40, DTWConfig(window_frames=3)),
    (3, 17, 12, DTWConfig(window_frames=7)),
    (2, 19, 25, DTWConfig(metric="sqeuclidean", band_offsets=(-2, 9))),
    (4, 15, 21, DTWConfig(metric="cosine")),
]


def _exact(a: np.ndarray, b: np.ndarray, cfg: DTWConfig) -> np.ndarray:
    return np.array([dtw(a[p], b[p], cfg, with_path=False).distance for p in range(len(a))])


@pytest.mark.parametrize(("D", "N", "M", "cfg"), CASES)
def test_torch_batched_equals_exact(D: int, N: int, M: int, cfg: DTWConfig) -> None:
    rng = np.random.default_rng(N * M + D)
    a, b = rng.normal(size=(6, N, D)), rng.normal(size=(6, M, D))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    if D == 1:
        ta, tb = ta[..., 0], tb[..., 0]
    got = batched_dtw(ta, tb, cfg, backend="torch").numpy()
    np.testing.assert_allclose(got, _exact(a, b, cfg), rtol=1e-12)
    # auto on CPU tensors is the torch path
    np.testing.assert_array_equal(batched_dtw(ta, tb, cfg).numpy(), got)


def test_torch_batched_float32() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 50)), rng.normal(size=(4, 60))
    got = batched_dtw(torch.from_numpy(a).float(), torch.from_numpy(b).float(), backend="torch")
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), _exact(a[..., None], b[..., None], DTWConfig()), rtol=1e-5)


_INTERP_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    from engine.align.dtw import DTWConfig, dtw
    from engine.align.kernels.dtw_torch import batched_dtw
    from engine.align.kernels.dtw_triton import dtw_triton
    cases = [
        (1, 23, 31, DTWConfig()), (1, 40, 40, DTWConfig(window_frames=3)),
        (3, 17, 12, DTWConfig(window_frames=7)), (4, 15, 21, DTWConfig(metric="cosine")),
        (1, 33, 18, DTWConfig(metric="sqeuclidean")),
    ]
    errs = []
    for D, N, M, cfg in cases:
        rng = np.random.default_rng(N + M + D)
        a, b = rng.normal(size=(5, N, D)), rng.normal(size=(5, M, D))
        ref = np.array([dtw(a[p], b[p], cfg, with_path=False).distance for p in range(5)])
        ta, tb = torch.from_numpy(a).float(), torch.from_numpy(b).float()
        if D == 1:
            ta, tb = ta[..., 0], tb[..., 0]
        got = batched_dtw(ta, tb, cfg, backend="triton").numpy()
        errs.append(float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-6))))
    # kernel variants the GPU check also times
    a = torch.randn(3, 20, 1); b = torch.randn(3, 26, 1)
    base = dtw_triton(a, b, -19, 25)
    for kw in (dict(num_warps=4), dict(scratch_cg=True)):
        errs.append(float((dtw_triton(a, b, -19, 25, **kw) - base).abs().max()))
    print(json.dumps(errs))
    """
)


def test_triton_kernel_matches_exact_in_interpreter() -> None:
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed, so the fused kernel cannot run even in the interpreter")
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", _INTERP_SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    errs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(errs) == 7
    assert max(errs) < 1e-5, errs


@pytest.mark.parametrize(
    ("a", "b", "kw", "name"),
    [
        (torch.zeros(3, 5), torch.zeros(2, 5), {}, "b"),
        (torch.zeros(3, 5, 2), torch.zeros(3, 5, 3), {}, "b"),
        (torch.zeros(3, 0), torch.zeros(3, 5), {}, "a"),
        (torch.tensor([[1.0, float("nan")]]), torch.zeros(1, 2), {}, "a"),
        (torch.zeros(3, 5, dtype=torch.int64), torch.zeros(3, 5, dtype=torch.int64), {}, "a"),
        (np.zeros((3, 5)), torch.zeros(3, 5), {}, "a"),
        (torch.zeros(2, 9), torch.zeros(2, 3), {"config": DTWConfig(window_frames=2)}, "window_frames"),
        (torch.zeros(2, 3), torch.zeros(2, 3), {"backend": "cuda"}, "backend"),
    ],
)
def test_batched_bad_inputs(a, b, kw, name) -> None:
    with pytest.raises(InvalidInputError) as exc:
        batched_dtw(a, b, **kw)
    assert exc.value.input == name
