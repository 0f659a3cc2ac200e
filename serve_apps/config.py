"""Configuration of the omnialign Serve application: one dataclass per concern.

``serve_apps/config.yaml`` (for ``serve deploy`` / ``serve run``) passes these as the
application's ``args``; :func:`AppConfig.from_args` turns that mapping into typed configs and
rejects unknown keys, so a typo in the YAML fails at deploy time, not at the first request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from engine.errors import InvalidInputError
from serve_apps.ingest_policy import IngestPolicy


@dataclass(frozen=True)
class EngineConfig:
    """The vLLM engine deployment.

    Attributes:
        model_dir: Local folder of the omni model (``omnialign model init|extend``).
        served_model_name: Name clients use for the base model (auto-routed adapters).
        dtype: Weight/activation dtype (``float32`` on CPU keeps greedy outputs comparable
            with transformers).
        max_model_len: Longest prompt + completion, in tokens.
        max_num_seqs: Sequences the engine batches at once.
        max_loras: Adapters active in one batch.
        max_cpu_loras: Adapters kept loaded in the engine's cache.
        max_lora_rank: Largest adapter rank (composed mixtures add ranks up).
        kv_cache_gib: KV cache size on CPU (``VLLM_CPU_KVCACHE_SPACE``), GiB.
        seed: Engine seed (sampling with temperature > 0).
    """

    model_dir: str = ""
    served_model_name: str = "omni"
    dtype: str = "float32"
    max_model_len: int = 4096
    max_num_seqs: int = 16
    max_loras: int = 4
    max_cpu_loras: int = 16
    max_lora_rank: int = 16
    kv_cache_gib: int = 1
    seed: int = 0


@dataclass(frozen=True)
class LimitsConfig:
    """Request limits of the HTTP ingress.

    Attributes:
        max_body_bytes: Largest JSON request body (larger → 413).
        max_upload_bytes: Largest uploaded media file for ``/v1/ingest`` (larger → 413).
        max_tokens: Largest ``max_tokens`` a request may ask for.
        max_segment_span_s: Longest time span one ``segment_ref`` may cover.
        max_inline_media_bytes: Largest decoded inline (base64) audio/image part.
    """

    max_body_bytes: int = 8 * 1024 * 1024
    max_upload_bytes: int = 256 * 1024 * 1024
    max_tokens: int = 1024
    max_segment_span_s: float = 120.0
    max_inline_media_bytes: int = 4 * 1024 * 1024


@dataclass(frozen=True)
class StoreSettings:
    """Where segments live and how ingestion over HTTP runs.

    Attributes:
        db_dir: LanceDB folder searched and written by ``/v1/ingest``.
        codebooks_dir: Tokenizer folder; empty = ``<db_dir>/codebooks``.
        upload_dir: Uploaded files are saved here (inside ``allowed_roots`` implicitly).
        ingest_num_cpus: CPUs reserved per ingest task (one Ray task per stream).
        segment_s: Segment length of HTTP-ingested streams, seconds.
    """

    db_dir: str = ""
    codebooks_dir: str = ""
    upload_dir: str = ""
    ingest_num_cpus: float = 0.5
    segment_s: float = 2.0

    @property
    def codebooks(self) -> str:
        return self.codebooks_dir or f"{self.db_dir}/codebooks"


@dataclass(frozen=True)
class RoutingSettings:
    """Adapter routing (see :class:`serve_apps.adapters.routing.RouterConfig`).

    Attributes:
        work_dir: Registry and composed adapters (shared by router replicas).
        top_k: Most adapters mixed per request.
        min_weight: Gate weights below this are dropped.
        weight_step: Mixture weight quantisation.
        cache_size: Composed adapters kept (LRU).
        adapters: Adapters registered at start: ``{name, path, modalities, prior?}`` each.
    """

    work_dir: str = ""
    top_k: int = 2
    min_weight: float = 0.1
    weight_step: float = 0.05
    cache_size: int = 16
    adapters: tuple[dict, ...] = ()


@dataclass(frozen=True)
class AppConfig:
    """Everything the application needs; the ``args`` of ``serve_apps.app:build_app``."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    store: StoreSettings = field(default_factory=StoreSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    ingest_policy: IngestPolicy = field(default_factory=IngestPolicy)

    @classmethod
    def from_args(cls, args: dict[str, Any] | None) -> AppConfig:
        """Typed config from a nested mapping (YAML ``args``); unknown keys raise."""
        args = dict(args or {})
        parts = {}
        for f in fields(cls):
            sub = args.pop(f.name, {}) or {}
            typ = {"engine": EngineConfig, "limits": LimitsConfig, "store": StoreSettings,
                   "routing": RoutingSettings, "ingest_policy": IngestPolicy}[f.name]
            known = {x.name for x in fields(typ)}
            bad = set(sub) - known
            if bad:
                raise InvalidInputError(f"args.{f.name}", f"unknown keys {sorted(bad)}; known: {sorted(known)}")
            sub = {k: tuple(v) if isinstance(v, list) else v for k, v in sub.items()}
            parts[f.name] = typ(**sub)
        if args:
            raise InvalidInputError("args", f"unknown sections {sorted(args)}")
        return cls(**parts)

    def to_args(self) -> dict[str, Any]:
        return asdict(self)
