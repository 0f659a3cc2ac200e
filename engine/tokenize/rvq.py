"""Residual vector quantization (RVQ): fit, encode, decode, save and load.

A :class:`ResidualVQ` holds ``num_quantizers`` codebooks of ``codebook_size`` codewords each.
Stage ``q`` quantizes the residual left by stages ``0..q-1``; a vector's code is the tuple of the
``num_quantizers`` chosen indices and its reconstruction is the sum of the chosen codewords.

Design:

* The quantizer is plain torch, so the same object encodes numpy arrays and CPU tensors with
  float32 GEMMs, and CUDA tensors with the fused Triton kernel of
  :mod:`engine.tokenize.kernels.rvq_triton` (bf16 candidate search, fp32 re-check of the top two
  candidates). Triton is imported only on that path.
* Nearest-codeword search and the k-means pieces of the fit live in :mod:`engine.tokenize.kmeans`
  (GEMM-form distances in bounded-memory chunks, k-means++ seeding, Lloyd iterations).
* Fitting: per stage, k-means++ seeding on a subsample, then Lloyd iterations on the residual
  of the stages before, with dead codewords re-seeded from the worst-quantized vectors. Then a
  few rounds of joint codebook refinement: with the codes fixed, all codebooks are solved
  together by (ridge-regularized) least squares, and the data is re-encoded; the best round by
  reconstruction error is kept, so refinement never makes the quantizer worse on its training
  data.
* Encoding is greedy (stage by stage) by default, optionally a small beam search; stateless
  and deterministic either way. On CPU both run as a "beam LUT" search
  (:mod:`engine.tokenize.kernels.rvq_beam_cpu`): one GEMM of the input against all codewords, then
  every candidate's error from precomputed codeword-pair tables, never a residual. Models
  whose tables would not fit fall back to the residual form (greedy: one GEMM per stage;
  beam: :func:`encode_beam_torch`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
import torch

from engine.errors import InvalidInputError
from engine.tokenize.kmeans import CPU_CHUNK_ROWS, chunk_rows, kmeanspp, lloyd, nearest_codewords

ArrayLike = Union[np.ndarray, torch.Tensor]

#: Version of the on-disk layout written by :meth:`ResidualVQ.save`.
FORMAT_VERSION = 1
_CONFIG_FILE = "rvq_config.json"
_WEIGHTS_FILE = "rvq_codebooks.safetensors"

# CPU encode chunk (rows), as in the nearest-codeword search of :mod:`engine.tokenize.kmeans`: the
# residual chunk stays cache-resident across all stages.
_CPU_CHUNK_ROWS = CPU_CHUNK_ROWS


@dataclass(frozen=True)
class RVQConfig:
    """Configuration of a residual vector quantizer.

    Attributes:
        num_quantizers: Number of residual stages (codes per vector).
        codebook_size: Codewords per stage; each code fits in ``ceil(log2(codebook_size))`` bits.
        dim: Dimension of the vectors quantized.
        seed: Seed of every random choice made by :meth:`ResidualVQ.fit`.
        kmeans_iters: Maximum Lloyd iterations per stage (stops early once assignments settle).
        refine_iters: Rounds of joint least-squares codebook refinement after the greedy fit
            (0 disables it).
        max_fit_vectors: Fit on a seeded random subset of at most this many vectors, so the
            fit time is bounded for any input size.
        init_sample_factor: k-means++ seeding looks at ``init_sample_factor * codebook_size``
            vectors (a subsample; seeding cost grows with samples x codewords).
    """

    num_quantizers: int
    codebook_size: int
    dim: int
    seed: int = 0
    kmeans_iters: int = 25
    refine_iters: int = 4
    max_fit_vectors: int = 262_144
    init_sample_factor: int = 32

    def __post_init__(self) -> None:
        for name in ("num_quantizers", "codebook_size", "dim", "kmeans_iters", "max_fit_vectors",
                     "init_sample_factor"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise InvalidInputError(name, f"must be a positive integer, got {value!r}")
        if not isinstance(self.refine_iters, (int, np.integer)) or self.refine_iters < 0:
            raise InvalidInputError("refine_iters", f"must be an integer >= 0, got {self.refine_iters!r}")


@dataclass(frozen=True)
class FitReport:
    """What :meth:`ResidualVQ.fit` measured on its training vectors.

    Attributes:
        num_vectors: Vectors the codebooks were fitted on (after subsampling).
        stage_rel_sq_error: Relative squared reconstruction error
            ``sum ||x - x_hat_q||^2 / sum ||x||^2`` after stages ``1..Q`` (length Q).
        dead_codes_reseeded: Codewords re-seeded because no vector chose them, summed over stages
            and iterations.
        refine_rounds_kept: Refinement rounds whose result was kept (0 if refinement never
            improved on the greedy fit).
    """

    num_vectors: int
    stage_rel_sq_error: list[float] = field(default_factory=list)
    dead_codes_reseeded: int = 0
    refine_rounds_kept: int = 0


# --------------------------------------------------------------------------------------------
# Input validation helpers


def _as_float_tensor(x: ArrayLike, name: str, dim: int | None) -> torch.Tensor:
    """Checks a [N, D] float input and returns it as a float32 tensor (no copy when possible)."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "fiu":
            raise InvalidInputError(name, f"must be a numeric array, got dtype {x.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    elif isinstance(x, torch.Tensor):
        if x.is_complex() or x.dtype == torch.bool:
            raise InvalidInputError(name, f"must be a real tensor, got dtype {x.dtype}")
        t = x.to(torch.float32)
    else:
        raise InvalidInputError(name, f"must be a numpy array or torch tensor, got {type(x).__name__}")
    if t.ndim != 2:
        raise InvalidInputError(name, f"must be 2-D [num_vectors, dim], got shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise InvalidInputError(name, "is empty (0 vectors)")
    if dim is not None and t.shape[1] != dim:
        raise InvalidInputError(name, f"has dim {t.shape[1]} but the codebooks have dim {dim}")
    # A finite sum proves every entry finite (NaN and inf propagate) and costs ~30x less than an
    # elementwise isfinite (5 ms per 50k x 64, 10 % of an encode); only a non-finite sum (bad
    # entries, or an overflowing sum of huge finite ones) pays for the exact check.
    if not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).any(dim=1).sum())
        raise InvalidInputError(name, f"contains NaN or inf ({bad} of {t.shape[0]} vectors)")
    return t.contiguous()


def _out_like(t: torch.Tensor, like: ArrayLike) -> ArrayLike:
    return t.cpu().numpy() if isinstance(like, np.ndarray) else t


# --------------------------------------------------------------------------------------------
# The quantizer


class ResidualVQ:
    """Residual vector quantizer with torch codebooks.

    Example:
        >>> rvq = ResidualVQ(num_quantizers=4, codebook_size=256, dim=64, seed=0)
        >>> report = rvq.fit(train)            # numpy or torch, float [N, 64]
        >>> codes = rvq.encode(x)              # int64 [N, 4], same array kind as x
        >>> x_hat = rvq.decode(codes)          # float32 [N, 64]

    Args:
        num_quantizers: Number of stages Q.
        codebook_size: Codewords per stage K.
        dim: Vector dimension D.
        **options: Further :class:`RVQConfig` fields (``seed``, ``kmeans_iters``, ...).
    """

    def __init__(self, num_quantizers: int, codebook_size: int, dim: int, **options) -> None:
        self.config = RVQConfig(num_quantizers=num_quantizers, codebook_size=codebook_size,
                                dim=dim, **options)
        self._codebooks: torch.Tensor | None = None  # float32 [Q, K, D] on CPU
        self._device_cache: dict[str, object] = {}  # device copies / kernel layouts of the codebooks
        self.fit_report: FitReport | None = None

    # -- properties ---------------------------------------------------------------------------

    @property
    def num_quantizers(self) -> int:
        return self.config.num_quantizers

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def is_fitted(self) -> bool:
        return self._codebooks is not None

    @property
    def codebooks(self) -> torch.Tensor:
        """float32 [Q, K, D] codebooks (CPU). Raises if not fitted."""
        return self._require_fitted()

    @classmethod
    def from_codebooks(cls, codebooks: ArrayLike, **options) -> "ResidualVQ":
        """Builds a quantizer around given codebooks (float [Q, K, D]); no fitting."""
        cb = torch.as_tensor(np.asarray(codebooks) if isinstance(codebooks, np.ndarray) else codebooks)
        if cb.ndim != 3:
            raise InvalidInputError("codebooks", f"must be 3-D [Q, K, D], got shape {tuple(cb.shape)}")
        q, k, d = (int(s) for s in cb.shape)
        rvq = cls(q, k, d, **options)
        flat = _as_float_tensor(cb.reshape(q * k, d), "codebooks", d)
        rvq._set_codebooks(flat.reshape(q, k, d).cpu())
        return rvq

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, x: ArrayLike) -> FitReport:
        """Fits all codebooks on ``x`` (float [N, dim]; numpy or torch, any device).

        Fitting runs on CPU in float32 (it is a one-off, seeded and deterministic there).

        Returns:
            A :class:`FitReport`, also kept as ``self.fit_report``.

        Raises:
            InvalidInputError: ``x`` is empty, not 2-D, has the wrong dim, or holds NaN/inf.
        """
        cfg = self.config
        data = _as_float_tensor(x, "x", cfg.dim).cpu()
        gen = torch.Generator().manual_seed(cfg.seed)
        if data.shape[0] > cfg.max_fit_vectors:
            data = data[torch.randperm(data.shape[0], generator=gen)[: cfg.max_fit_vectors]]
        n, k = data.shape[0], cfg.codebook_size

        codebooks = torch.empty(cfg.num_quantizers, k, cfg.dim)
        residual = data.clone()
        reseeded = 0
        for q in range(cfg.num_quantizers):
            m = min(n, cfg.init_sample_factor * k)
            sample = residual[torch.randperm(n, generator=gen)[:m]]
            centers = kmeanspp(sample, k, gen)
            centers, dead = lloyd(residual, centers, cfg.kmeans_iters)
            reseeded += dead
            codebooks[q] = centers
            idx = nearest_codewords(residual, centers)
            residual -= centers[idx]

        kept_rounds = 0
        best_err = self._total_sq_error(data, codebooks)
        for _ in range(cfg.refine_iters):
            codes = self._encode_cpu(data, codebooks)
            candidate = _refine_codebooks(data, codes, codebooks)
            err = self._total_sq_error(data, candidate)
            if err >= best_err:
                break  # refinement stopped helping; keep the best so far
            codebooks, best_err = candidate, err
            kept_rounds += 1

        self._set_codebooks(codebooks)
        report = FitReport(num_vectors=n,
                           stage_rel_sq_error=self.stage_errors(data),
                           dead_codes_reseeded=reseeded,
                           refine_rounds_kept=kept_rounds)
        self.fit_report = report
        return report

    def _total_sq_error(self, data: torch.Tensor, codebooks: torch.Tensor) -> float:
        codes = self._encode_cpu(data, codebooks)
        recon = _decode_torch(codes, codebooks)
        return float(((data - recon) ** 2).sum())

    def _set_codebooks(self, codebooks: torch.Tensor) -> None:
        self._codebooks = codebooks.contiguous().to(torch.float32)
        self._device_cache.clear()

    def _require_fitted(self) -> torch.Tensor:
        if self._codebooks is None:
            raise InvalidInputError("codebooks", "ResidualVQ is not fitted: call fit() or ResidualVQ.load() first")
        return self._codebooks

    # -- encode / decode ----------------------------------------------------------------------

    def encode(self, x: ArrayLike, beam_size: int = 1) -> ArrayLike:
        """RVQ codes of ``x``: greedy by default, optionally a small beam search.

        Stateless and deterministic: the same codebooks and input give the same codes, and a
        vector's code does not depend on the batch it is in. CPU tensors and numpy arrays use
        the float32 LUT encoder of :mod:`engine.tokenize.kernels.rvq_beam_cpu`; CUDA tensors use the
        fused Triton kernel (bf16 search, fp32 re-check; see :mod:`engine.tokenize.kernels.rvq_triton`),
        falling back to float32 torch GEMMs when Triton is unavailable.

        Args:
            x: float [N, dim], numpy or torch.
            beam_size: 1 = greedy (the only one the CUDA kernel implements). ``b > 1`` keeps the
                ``b`` best partial code tuples per vector at every stage (lower error). On CPU
                both run on the LUT encoder (beam 2 takes ~1.25x the greedy time on the
                benchmark); CUDA tensors and models too large for its tables run beams as
                float32 torch.

        Returns:
            int64 codes [N, num_quantizers], numpy if ``x`` is numpy else a tensor on x's device.

        Raises:
            InvalidInputError: not fitted, empty input, wrong dim, NaN/inf, bad beam_size.
        """
        codebooks = self._require_fitted()
        t = _as_float_tensor(x, "x", self.dim)
        if not isinstance(beam_size, (int, np.integer)) or beam_size < 1:
            raise InvalidInputError("beam_size", f"must be an integer >= 1, got {beam_size!r}")
        beam = int(beam_size)
        if t.is_cuda:
            codes = self._encode_cuda(t) if beam == 1 else encode_beam_torch(t, codebooks.to(t.device), beam)
        elif beam == 1:
            codes = self._encode_greedy_cpu(t)
        elif self._beam_tables() is not None:
            from engine.tokenize.kernels.rvq_beam_cpu import encode_beam_lut

            codes = encode_beam_lut(t, self._beam_tables(), beam)
        else:
            codes = encode_beam_torch(t, codebooks, beam)
        return _out_like(codes, x)

    def _beam_tables(self):
        """The CPU LUT encoder's tables (built on first use, dropped with the other codebook
        caches by :meth:`_set_codebooks`), or None when they would exceed
        :data:`engine.tokenize.kernels.rvq_beam_cpu.MAX_TABLE_BYTES` (the encoder then falls back)."""
        if "beam_lut" not in self._device_cache:
            from engine.tokenize.kernels import rvq_beam_cpu

            fits = rvq_beam_cpu.table_bytes(self.num_quantizers, self.codebook_size) <= rvq_beam_cpu.MAX_TABLE_BYTES
            self._device_cache["beam_lut"] = rvq_beam_cpu.BeamTables(self._require_fitted()) if fits else None
        return self._device_cache["beam_lut"]

    def _encode_greedy_cpu(self, x: torch.Tensor) -> torch.Tensor:
        """Greedy codes of a CPU tensor (what :meth:`encode` and :meth:`stage_errors` use).

        Greedy runs on the LUT encoder (a beam of 1) when that is the faster path: measured on
        one thread, 1.2-1.8x faster than the residual form for ``dim >= 8 * num_quantizers``
        and ``codebook_size >= 128`` (the tokenizer's and the benchmark's shapes: Q=4, K=256,
        D=64-80), but 0.5-0.9x for small ``dim``, many stages or small codebooks, where its
        per-candidate table sums and per-row selection outweigh the single GEMM. Both give the
        same codes up to float32 near-ties (the LUT one matched a float64 search more often).
        """
        cfg = self.config
        if cfg.dim >= 8 * cfg.num_quantizers and cfg.codebook_size >= 128 and self._beam_tables() is not None:
            from engine.tokenize.kernels.rvq_beam_cpu import encode_beam_lut

            return encode_beam_lut(x, self._beam_tables(), 1)
        return self._encode_cpu(x, self._require_fitted())

    def _encode_cpu(self, x: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
        n, q_count = x.shape[0], codebooks.shape[0]
        codes = torch.empty(n, q_count, dtype=torch.int64, device=x.device)
        norms = (codebooks * codebooks).sum(dim=2)
        step = chunk_rows(codebooks.shape[1]) if x.is_cuda else _CPU_CHUNK_ROWS
        # Chunk outside the stage loop so the residual chunk stays cache-resident for all stages.
        for start in range(0, n, step):
            residual = x[start:start + step].clone()
            for q in range(q_count):
                idx = nearest_codewords(residual, codebooks[q], norms[q])
                codes[start:start + step, q] = idx
                residual -= codebooks[q][idx]
        return codes

    def _encode_cuda(self, x: torch.Tensor) -> torch.Tensor:
        cb = self._device_codebooks(x.device)
        try:
            from engine.tokenize.kernels.rvq_triton import prepare_codebooks, rvq_encode_fused
        except ImportError:  # triton not installed: exact fp32 torch path
            return self._encode_cpu(x, cb)
        key = f"prepared:{x.device}"
        if key not in self._device_cache:
            self._device_cache[key] = prepare_codebooks(cb)
        codes, _ = rvq_encode_fused(x, self._device_cache[key])
        return codes.to(torch.int64)

    def _device_codebooks(self, device: torch.device) -> torch.Tensor:
        key = str(device)
        if key not in self._device_cache:
            self._device_cache[key] = self._require_fitted().to(device)
        return self._device_cache[key]

    def decode(self, codes: ArrayLike) -> ArrayLike:
        """Reconstructs vectors from codes.

        Args:
            codes: integer [N, num_quantizers] (or [N, q] with q <= num_quantizers to decode a
                prefix of the stages), numpy or torch.

        Returns:
            float32 [N, dim], numpy if ``codes`` is numpy else a tensor on its device.

        Raises:
            InvalidInputError: not fitted, empty, wrong shape, non-integer or out-of-range codes.
        """
        codebooks = self._require_fitted()
        c = self._check_codes(codes)
        cb = self._device_codebooks(c.device) if c.is_cuda else codebooks
        return _out_like(_decode_torch(c, cb), codes)

    def _check_codes(self, codes: ArrayLike) -> torch.Tensor:
        if isinstance(codes, np.ndarray):
            if codes.dtype.kind not in "iu":
                raise InvalidInputError("codes", f"must be an integer array, got dtype {codes.dtype}")
            c = torch.from_numpy(codes.astype(np.int64, copy=False))
        elif isinstance(codes, torch.Tensor):
            if codes.dtype.is_floating_point or codes.is_complex() or codes.dtype == torch.bool:
                raise InvalidInputError("codes", f"must be an integer tensor, got dtype {codes.dtype}")
            c = codes.to(torch.int64)
        else:
            raise InvalidInputError("codes", f"must be a numpy array or torch tensor, got {type(codes).__name__}")
        if c.ndim != 2 or c.shape[1] < 1 or c.shape[1] > self.num_quantizers:
            raise InvalidInputError(
                "codes", f"must be [N, q] with 1 <= q <= {self.num_quantizers}, got shape {tuple(c.shape)}")
        if c.shape[0] == 0:
            raise InvalidInputError("codes", "is empty (0 rows)")
        lo, hi = int(c.min()), int(c.max())
        if lo < 0 or hi >= self.codebook_size:
            raise InvalidInputError(
                "codes", f"values must be in [0, {self.codebook_size - 1}], got range [{lo}, {hi}]")
        return c

    def stage_errors(self, x: ArrayLike) -> list[float]:
        """Relative squared error ``sum ||x - x_hat_q||^2 / sum ||x||^2`` after each stage q.

        Returns:
            Q floats; entry ``q`` uses the first ``q + 1`` stages of the greedy codes.
        """
        codebooks = self._require_fitted()
        t = _as_float_tensor(x, "x", self.dim).cpu()
        codes = self._encode_greedy_cpu(t)
        total = float((t.double() ** 2).sum())
        residual = t.double().clone()
        out = []
        for q in range(self.num_quantizers):
            residual -= codebooks[q].double()[codes[:, q]]
            out.append(float((residual ** 2).sum()) / total if total > 0 else 0.0)
        return out

    # -- persistence --------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Writes ``rvq_codebooks.safetensors`` and ``rvq_config.json`` into ``directory``.

        Returns:
            The directory path.
        """
        from safetensors.torch import save_file

        codebooks = self._require_fitted()
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        save_file({"codebooks": codebooks.contiguous()}, str(path / _WEIGHTS_FILE))
        meta = {"format_version": FORMAT_VERSION, "config": asdict(self.config),
                "fit_report": asdict(self.fit_report) if self.fit_report else None}
        (path / _CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "ResidualVQ":
        """Loads a quantizer written by :meth:`save`.

        Raises:
            InvalidInputError: missing files, unknown format version, or codebooks whose shape
                does not match the stored config.
        """
        from safetensors.torch import load_file

        path = Path(directory)
        cfg_path, w_path = path / _CONFIG_FILE, path / _WEIGHTS_FILE
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise InvalidInputError(str(path), f"missing {p.name}")
        meta = json.loads(cfg_path.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise InvalidInputError(
                str(cfg_path), f"format_version {meta.get('format_version')!r} is not supported "
                               f"(expected {FORMAT_VERSION})")
        rvq = cls(**meta["config"])
        codebooks = load_file(str(w_path))["codebooks"]
        expected = (rvq.num_quantizers, rvq.codebook_size, rvq.dim)
        if tuple(codebooks.shape) != expected:
            raise InvalidInputError(str(w_path), f"codebooks shape {tuple(codebooks.shape)} != config {expected}")
        rvq._set_codebooks(codebooks.to(torch.float32))
        if meta.get("fit_report"):
            rvq.fit_report = FitReport(**meta["fit_report"])
        return rvq


def encode_beam_torch(x: torch.Tensor, codebooks: torch.Tensor, beam: int) -> torch.Tensor:
    """Beam-search RVQ encode (float32). Deterministic; ties resolved by torch.topk's order."""
    q_count, k, d = codebooks.shape
    norms = (codebooks * codebooks).sum(dim=2)
    n = x.shape[0]
    out = torch.empty(n, q_count, dtype=torch.int64, device=x.device)
    step = max(1, _CPU_CHUNK_ROWS // beam)
    for start in range(0, n, step):
        res = x[start:start + step].unsqueeze(1)  # [m, 1, D]; beam width grows to `beam`
        m = res.shape[0]
        err = (res * res).sum(dim=2)              # [m, b] squared norm of each beam's residual
        codes = torch.empty(m, 1, 0, dtype=torch.int64, device=x.device)
        for q in range(q_count):
            b_now = res.shape[1]
            # ||r - c||^2 = ||r||^2 + ||c||^2 - 2 r.c for every (beam, codeword) pair
            dots = res.reshape(m * b_now, d) @ codebooks[q].t()
            total = err.reshape(m * b_now, 1) + norms[q].unsqueeze(0) - 2.0 * dots
            flat = total.reshape(m, b_now * k)
            width = min(beam, flat.shape[1])
            vals, pick = torch.topk(flat, width, dim=1, largest=False, sorted=True)
            parent, code = pick // k, pick % k
            res = torch.gather(res, 1, parent.unsqueeze(2).expand(m, width, d)) - codebooks[q][code]
            err = (res * res).sum(dim=2)  # recomputed, not `vals`, so rounding cannot accumulate
            codes = torch.cat([torch.gather(codes, 1, parent.unsqueeze(2).expand(m, width, codes.shape[2])),
                               code.unsqueeze(2)], dim=2)
        best = err.argmin(dim=1)
        out[start:start + m] = codes[torch.arange(m, device=x.device), best]
    return out


def _decode_torch(codes: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(codes.shape[0], codebooks.shape[2], dtype=torch.float32, device=codebooks.device)
    codes = codes.to(codebooks.device)
    for q in range(codes.shape[1]):
        out += codebooks[q][codes[:, q]]
    return out


def _refine_codebooks(x: torch.Tensor, codes: torch.Tensor, codebooks: torch.Tensor,
                      ridge: float = 1e-3) -> torch.Tensor:
    """Joint least-squares update of all codebooks with the codes held fixed.

    Solves ``min_C ||X - B C||^2 + ridge * ||C - C_old||^2`` where ``B`` [N, Q*K] is the one-hot
    code matrix. ``B^T B`` is only [Q*K, Q*K] (co-occurrence counts), so this is cheap; the
    ridge term keeps unused codewords where they were and makes the system well-posed.
    """
    q_count, k, d = codebooks.shape
    qk = q_count * k
    gram = torch.zeros(qk, qk, dtype=torch.float64)
    for p in range(q_count):
        for q in range(p, q_count):
            pair = torch.bincount(codes[:, p] * k + codes[:, q], minlength=k * k).reshape(k, k).double()
            gram[p * k:(p + 1) * k, q * k:(q + 1) * k] = pair
            if q != p:
                gram[q * k:(q + 1) * k, p * k:(p + 1) * k] = pair.t()
    rhs = torch.zeros(qk, d, dtype=torch.float64)
    xd = x.double()
    for q in range(q_count):
        rhs[q * k:(q + 1) * k].index_add_(0, codes[:, q], xd)
    old = codebooks.reshape(qk, d).double()
    gram += ridge * torch.eye(qk, dtype=torch.float64)
    rhs += ridge * old
    solved = torch.linalg.solve(gram, rhs)
    return solved.to(torch.float32).reshape(q_count, k, d)


def bits_per_vector(num_quantizers: int, codebook_size: int) -> int:
    """Bits one code tuple takes: ``num_quantizers * ceil(log2(codebook_size))``."""
    return num_quantizers * max(1, math.ceil(math.log2(codebook_size)))
