"""LoRA adapters on disk (peft format) and their exact composition into one adapter.

vLLM applies one LoRA per request. To serve a *mixture* of adapters (the router's top-k with
weights), :func:`compose` builds one adapter whose update equals the weighted sum of the
chosen adapters' updates, exactly:

    ΔW = Σ_i w_i · s_i · B_i A_i  =  [w_1 s_1 B_1 | … | w_k s_k B_k] · [A_1; …; A_k]

i.e. the A matrices are stacked along the rank and each B is scaled by its weight and its own
LoRA scaling ``s_i = lora_alpha_i / r_i`` (``/ sqrt(r_i)`` for rsLoRA) before being
concatenated; the composed adapter has rank ``R = Σ r_i`` and ``lora_alpha = R`` so its own
scaling is 1. This is what peft's ``add_weighted_adapter(..., combination_type="cat")`` does.
A module that one adapter does not target contributes zero blocks, which keeps every module at
rank ``R`` (vLLM wants one rank per adapter).

Adapters are the folders peft writes: ``adapter_config.json`` + ``adapter_model.safetensors``,
tensor keys ``<module path>.lora_A.weight`` [r, in] and ``<module path>.lora_B.weight`` [out, r].
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import InvalidInputError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
_A, _B = ".lora_A.weight", ".lora_B.weight"
# peft options that change the math of an adapter beyond B·A·scale: refused rather than served wrong.
_UNSUPPORTED = ("use_dora", "lora_bias")
#: Largest LoRA rank read from a folder (vLLM's own max_lora_rank is far below).
MAX_RANK = 4096
#: Largest |lora_alpha / r| (or / sqrt(r)): trained adapters use 0.5-16. An absurd alpha
#: (1e300) would overflow the composed float32 weights into inf and poison every routed request.
MAX_SCALING = 1024.0
#: Largest Frobenius norm of one module's update ``scaling · B·A``. Trained adapters' updates are
#: a small fraction of their base weight's norm (order 1-100 for the layers served here); this
#: bound is far above that and keeps fp16/bf16 activations of the sum finite.
MAX_UPDATE_NORM = 1e4


@dataclass(frozen=True)
class LoraAdapter:
    """One LoRA adapter in memory.

    Attributes:
        name: Adapter name (what clients and the router call it).
        rank: LoRA rank r (the same for every module).
        scaling: Factor applied to ``B @ A`` (``lora_alpha / r``, or ``/ sqrt(r)`` for rsLoRA).
        target_modules: Short module names it adapts (e.g. ``("q_proj", "v_proj")``).
        base_model: ``base_model_name_or_path`` from the peft config (informational).
        tensors: peft tensor key -> float32 array (``lora_A`` [r, in], ``lora_B`` [out, r]).
        version: Content hash of rank, scaling and tensors; changes when the weights change.
    """

    name: str
    rank: int
    scaling: float
    target_modules: tuple[str, ...]
    base_model: str
    tensors: dict[str, np.ndarray]
    version: str

    def modules(self) -> list[str]:
        """Full module paths (tensor key prefixes) this adapter has A/B pairs for, sorted."""
        return sorted(k[: -len(_A)] for k in self.tensors if k.endswith(_A))


def _content_version(rank: int, scaling: float, tensors: dict[str, np.ndarray]) -> str:
    # Rounded: lora_alpha = scaling * r written to JSON and divided back may differ in the last bit.
    h = hashlib.sha256(f"{rank}:{float(f'{scaling:.12g}')!r}".encode())
    for key in sorted(tensors):
        arr = np.ascontiguousarray(tensors[key], np.float32)
        h.update(key.encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def _checked_tensors(name: str, tensors: dict[str, np.ndarray], rank: int) -> dict[str, np.ndarray]:
    out = {}
    for key, value in tensors.items():
        if not key.endswith((_A, _B)):
            raise InvalidInputError(name, f"tensor {key!r} is not a lora_A/lora_B weight")
        arr = np.asarray(value, np.float32)
        if arr.ndim != 2:
            raise InvalidInputError(name, f"tensor {key!r} has shape {arr.shape}, expected 2-D")
        if not np.isfinite(arr).all():
            raise InvalidInputError(name, f"tensor {key!r} holds NaN or inf")
        out[key] = arr
    for mod in {k[: -len(_A)] for k in out if k.endswith(_A)} | {k[: -len(_B)] for k in out if k.endswith(_B)}:
        a, b = out.get(mod + _A), out.get(mod + _B)
        if a is None or b is None:
            raise InvalidInputError(name, f"module {mod!r} lacks its lora_A or lora_B weight")
        if a.shape[0] != rank or b.shape[1] != rank:
            raise InvalidInputError(name, f"module {mod!r}: A {a.shape} / B {b.shape} do not have rank {rank}")
    if not out:
        raise InvalidInputError(name, "adapter has no LoRA tensors")
    return out


def make_adapter(name: str, tensors: dict[str, np.ndarray], rank: int, scaling: float,
                 target_modules: Sequence[str], base_model: str = "") -> LoraAdapter:
    """Builds a validated :class:`LoraAdapter` (shapes, ranks, finiteness) with its content version."""
    checked = _checked_tensors(name, tensors, rank)
    return LoraAdapter(name, int(rank), float(scaling), tuple(sorted(target_modules)), base_model, checked,
                       _content_version(rank, scaling, checked))


def load_adapter(path: str | Path, name: str | None = None) -> LoraAdapter:
    """Reads a peft LoRA folder.

    Args:
        path: Folder with ``adapter_config.json`` and ``adapter_model.safetensors``.
        name: Adapter name; default the folder name.

    Raises:
        InvalidInputError: Missing files, not a LoRA adapter, per-module ranks/alphas (not
            supported by the composer), DoRA/bias options, or inconsistent tensors.
    """
    from safetensors.torch import load_file  # torch, not numpy: reads bf16 adapters too

    folder = Path(path)
    name = name or folder.name
    cfg_path, w_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not cfg_path.is_file() or not w_path.is_file():
        raise InvalidInputError(str(folder), f"not a peft adapter folder (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidInputError(str(cfg_path), f"invalid JSON: {exc}") from exc
    if cfg.get("peft_type", "LORA") != "LORA":
        raise InvalidInputError(str(cfg_path), f"peft_type {cfg.get('peft_type')!r} is not LORA")
    for opt in _UNSUPPORTED:
        if cfg.get(opt):
            raise InvalidInputError(str(cfg_path), f"{opt} adapters are not supported")
    if cfg.get("rank_pattern") or cfg.get("alpha_pattern"):
        raise InvalidInputError(str(cfg_path), "per-module rank_pattern/alpha_pattern is not supported")
    rank, alpha = cfg.get("r", 8), cfg.get("lora_alpha", cfg.get("r", 8))
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= MAX_RANK:
        raise InvalidInputError(str(cfg_path), f"r must be an integer in [1, {MAX_RANK}], got {rank!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise InvalidInputError(str(cfg_path), f"lora_alpha must be a finite number, got {alpha!r}")
    scaling = alpha / math.sqrt(rank) if cfg.get("use_rslora") else alpha / rank
    if abs(scaling) > MAX_SCALING:
        raise InvalidInputError(str(cfg_path), f"lora_alpha {alpha} gives a scaling of {scaling:g}; at most "
                                               f"{MAX_SCALING:g} is accepted")
    targets = cfg.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else list(targets)
    try:
        tensors = {k: v.float().numpy() for k, v in load_file(str(w_path)).items()}
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise InvalidInputError(str(w_path), f"cannot read weights: {exc}") from exc
    adapter = make_adapter(name, tensors, rank, scaling, targets, str(cfg.get("base_model_name_or_path") or ""))
    _check_update_norms(adapter, str(w_path))
    return adapter


def _check_update_norms(adapter: LoraAdapter, where: str) -> None:
    """Every module's ``‖scaling · B·A‖_F`` is at most :data:`MAX_UPDATE_NORM`.

    ``‖B·A‖²_F = Σ (BᵀB) ⊙ (A·Aᵀ)``: two r×r products instead of the out×in update.
    """
    for m in adapter.modules():
        a = adapter.tensors[m + _A].astype(np.float64)
        b = adapter.tensors[m + _B].astype(np.float64)
        norm = abs(adapter.scaling) * math.sqrt(max(float(((b.T @ b) * (a @ a.T)).sum()), 0.0))
        if not norm <= MAX_UPDATE_NORM:
            raise InvalidInputError(where, f"module {m}: update norm {norm:.3g} exceeds {MAX_UPDATE_NORM:g}")


def save_adapter(adapter: LoraAdapter, path: str | Path) -> Path:
    """Writes ``adapter`` as a peft folder that peft, transformers and vLLM load.

    The written ``lora_alpha`` reproduces ``adapter.scaling`` with plain (non-rs) LoRA scaling.
    """
    from safetensors.numpy import save_file

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": adapter.rank,
        "lora_alpha": adapter.scaling * adapter.rank, "lora_dropout": 0.0, "bias": "none",
        "target_modules": list(adapter.target_modules), "base_model_name_or_path": adapter.base_model,
        "use_rslora": False, "fan_in_fan_out": False, "inference_mode": True,
    }
    save_file({k: np.ascontiguousarray(v) for k, v in adapter.tensors.items()}, str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    return folder


def compose(adapters: Sequence[LoraAdapter], weights: Sequence[float], name: str) -> LoraAdapter:
    """One adapter whose update is ``Σ w_i · ΔW_i`` exactly (see the module docstring).

    Args:
        adapters: The adapters to mix (at least one; all for the same base model).
        weights: One finite weight per adapter (need not sum to 1; 0 is allowed).
        name: Name of the composed adapter.

    Raises:
        InvalidInputError: No adapters, a weight count mismatch, non-finite weights, or
            adapters whose shared modules disagree on input/output sizes.
    """
    if not adapters:
        raise InvalidInputError("adapters", "compose needs at least one adapter")
    if len(weights) != len(adapters):
        raise InvalidInputError("weights", f"{len(weights)} weights for {len(adapters)} adapters")
    if not all(math.isfinite(w) for w in weights):
        raise InvalidInputError("weights", f"non-finite weight in {list(weights)}")
    modules = sorted({m for a in adapters for m in a.modules()})
    shapes: dict[str, tuple[int, int]] = {}  # module -> (in, out)
    for a in adapters:
        for m in a.modules():
            shape = (a.tensors[m + _A].shape[1], a.tensors[m + _B].shape[0])
            if shapes.setdefault(m, shape) != shape:
                raise InvalidInputError(a.name, f"module {m!r} is {shape}, another adapter has {shapes[m]}")
    total_rank = sum(a.rank for a in adapters)
    tensors: dict[str, np.ndarray] = {}
    for m in modules:
        n_in, n_out = shapes[m]
        a_blocks, b_blocks = [], []
        for a, w in zip(adapters, weights):
            if m + _A in a.tensors:
                a_blocks.append(a.tensors[m + _A])
                b_blocks.append(a.tensors[m + _B] * np.float32(w * a.scaling))
            else:  # module not targeted by this adapter: zero blocks keep the rank uniform
                a_blocks.append(np.zeros((a.rank, n_in), np.float32))
                b_blocks.append(np.zeros((n_out, a.rank), np.float32))
        tensors[m + _A] = np.concatenate(a_blocks, axis=0)
        tensors[m + _B] = np.concatenate(b_blocks, axis=1)
    targets = sorted({t for a in adapters for t in a.target_modules})
    return make_adapter(name, tensors, total_rank, 1.0, targets, adapters[0].base_model)


def module_shapes(model_dir: str | Path) -> dict[str, tuple[int, int]]:
    """peft module path -> (in, out) of every linear layer an adapter may target (Llama/Qwen2 style)."""
    layers, hidden, q_out, kv_out = _model_dims(model_dir)
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    inter = cfg.get("text_config", cfg).get("intermediate_size")
    shapes = {"self_attn.q_proj": (hidden, q_out), "self_attn.k_proj": (hidden, kv_out),
              "self_attn.v_proj": (hidden, kv_out), "self_attn.o_proj": (q_out, hidden)}
    if inter:
        shapes |= {"mlp.gate_proj": (hidden, int(inter)), "mlp.up_proj": (hidden, int(inter)),
                   "mlp.down_proj": (int(inter), hidden)}
    return {f"base_model.model.model.layers.{i}.{name}": shape for i in range(layers) for name, shape in shapes.items()}


def _model_dims(model_dir: str | Path) -> tuple[int, int, int, int]:
    """(layers, hidden, q_out, kv_out) of a local HF decoder config (Llama/Qwen2 style)."""
    cfg_path = Path(model_dir) / "config.json"
    if not cfg_path.is_file():
        raise InvalidInputError(str(model_dir), "no config.json: not a Hugging Face model folder")
    cfg = json.loads(cfg_path.read_text())
    cfg = cfg.get("text_config", cfg)
    hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    kv = int(cfg.get("num_key_value_heads") or heads)
    return int(cfg["num_hidden_layers"]), hidden, heads * head_dim, kv * head_dim


def random_adapter(model_dir: str | Path, name: str, rank: int = 8, seed: int = 0, scale: float = 0.05,
                   target_modules: Sequence[str] = ("q_proj", "v_proj")) -> LoraAdapter:
    """A random (untrained) adapter for a local model: for tests, demos and benchmarks only.

    ``scale`` is the standard deviation of A and B entries; with ``lora_alpha = 2r`` the update
    is large enough to change a tiny model's greedy output.
    """
    layers, hidden, q_out, kv_out = _model_dims(model_dir)
    outs = {"q_proj": q_out, "k_proj": kv_out, "v_proj": kv_out, "o_proj": hidden}
    unknown = [t for t in target_modules if t not in outs]
    if unknown:
        raise InvalidInputError("target_modules", f"{unknown} not in {sorted(outs)}")
    rng = np.random.default_rng(seed)
    tensors = {}
    for i in range(layers):
        for proj in target_modules:
            n_in = q_out if proj == "o_proj" else hidden
            prefix = f"base_model.model.model.layers.{i}.self_attn.{proj}"
            tensors[prefix + _A] = rng.normal(0, scale, (rank, n_in)).astype(np.float32)
            tensors[prefix + _B] = rng.normal(0, scale, (outs[proj], rank)).astype(np.float32)
    return make_adapter(name, tensors, rank, 2.0, target_modules, str(model_dir))
