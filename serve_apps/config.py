"""Configuration of the omnialign Serve application: one dataclass per concern.

``serve_apps/config.yaml`` (for ``serve deploy`` / ``serve run``) passes these as the
application's ``args``; :func:`AppConfig.from_args` turns that mapping into typed configs and
rejects unknown keys, so a typo in the YAML fails at deploy time, not at the first request.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from engine.errors import InvalidInputError, check_fields
from engine.ingest.pipeline import PipelineConfig
from serve_apps.adapters.routing import RouterConfig
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

    def __post_init__(self) -> None:
        check_fields(self, positive=("max_model_len", "max_num_seqs", "max_loras", "max_cpu_loras", "max_lora_rank",
                                     "kv_cache_gib"))


@dataclass(frozen=True)
class LimitsConfig:
    """Request limits of the HTTP ingress.

    Attributes:
        max_body_bytes: Largest JSON request body (larger → 413).
        max_upload_bytes: Largest uploaded media file for ``/v1/ingest`` (larger → 413).
        max_tokens: Largest ``max_tokens`` a request may ask for.
        max_segment_span_s: Longest time span one ``segment_ref`` may cover.
        max_inline_media_bytes: Largest decoded inline (base64) audio/image part.
        max_pending_upload_bytes: Uploads of one API key (or of all clients, with no keys) kept
            on disk at once: an upload lives until its stream ends, so this bounds the disk one
            client can fill (more → 429 until its ingests finish).
    """

    max_body_bytes: int = 8 * 1024 * 1024
    max_upload_bytes: int = 256 * 1024 * 1024
    max_tokens: int = 1024
    max_segment_span_s: float = 120.0
    max_inline_media_bytes: int = 4 * 1024 * 1024
    max_pending_upload_bytes: int = 1024 * 1024 * 1024

    def __post_init__(self) -> None:
        check_fields(self, positive=("max_body_bytes", "max_upload_bytes", "max_tokens", "max_segment_span_s",
                                     "max_inline_media_bytes", "max_pending_upload_bytes"))


@dataclass(frozen=True)
class StoreSettings:
    """Where segments live and how ingestion over HTTP runs.

    ``POST /v1/ingest`` runs the same Ray Data pipeline as ``omnialign ingest``
    (:func:`actors.pipeline.run_ingest`), one pipeline per stream, driven by its own actor.

    Attributes:
        db_dir: LanceDB folder searched and written by ``/v1/ingest``.
        codebooks_dir: Tokenizer folder; empty = ``<db_dir>/codebooks``.
        upload_dir: Uploaded files are saved here (inside ``allowed_roots`` implicitly).
        ingest_num_cpus: CPUs reserved by each stream's pipeline driver (it only iterates the
            pipeline's output; the work runs in the pipeline's actors, sized by ``pipeline``).
        ingest_max_restarts: Times a stream's driver is relaunched after it died (node loss,
            OOM kill); a relaunch resumes after the segments already committed.
        segment_s: Segment length of HTTP-ingested streams, seconds.
        pipeline: :class:`engine.ingest.pipeline.PipelineConfig` fields for HTTP-ingested
            streams, e.g. ``{tokenizer_max_actors: 4, tokenizer_num_gpus: 0.25}``. ``db_dir``,
            ``codebooks_dir``, ``segment_s`` come from above, ``live`` from the request, and
            ``metrics_port`` is not allowed (the ingress ``/metrics`` shows ingest metrics).
    """

    db_dir: str = ""
    codebooks_dir: str = ""
    upload_dir: str = ""
    ingest_num_cpus: float = 0.1
    ingest_max_restarts: int = 2
    segment_s: float = 2.0
    pipeline: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ingest_max_restarts < 0:
            raise InvalidInputError("store.ingest_max_restarts", f"must be >= 0, got {self.ingest_max_restarts}")
        self.pipeline_config()  # bad pipeline keys or values fail at deploy time

    @property
    def codebooks(self) -> str:
        return self.codebooks_dir or f"{self.db_dir}/codebooks"

    def pipeline_config(self) -> PipelineConfig:
        """The pipeline configuration of HTTP-ingested streams (``live`` off; set per request)."""
        # Nested configs (e.g. ``sync``, a dataclass built by a factory) are not settable here.
        allowed = {f.name for f in fields(PipelineConfig) if f.default_factory is MISSING} - _PIPELINE_FIXED
        bad = set(self.pipeline) - allowed
        if bad:
            raise InvalidInputError("store.pipeline", f"unknown or fixed keys {sorted(bad)}; allowed: {sorted(allowed)}")
        try:
            return PipelineConfig(db_dir=self.db_dir, codebooks_dir=self.codebooks, segment_s=self.segment_s,
                                  **{k: _tuples(v) for k, v in self.pipeline.items()})
        except TypeError as exc:
            raise InvalidInputError("store.pipeline", str(exc)) from None


#: PipelineConfig fields ``store.pipeline`` may not set (see :class:`StoreSettings`).
_PIPELINE_FIXED = {"db_dir", "codebooks_dir", "segment_s", "live", "metrics_port"}


def _tuples(v: Any) -> Any:
    """YAML/JSON lists as (nested) tuples, as the frozen PipelineConfig expects."""
    return tuple(_tuples(x) for x in v) if isinstance(v, (list, tuple)) else v


#: RouterConfig's defaults: the Serve settings take them from there, never restate them.
_ROUTER_DEFAULTS = {f.name: f.default for f in fields(RouterConfig) if f.default is not MISSING}


@dataclass(frozen=True)
class RoutingSettings:
    """Adapter routing: :class:`serve_apps.adapters.routing.RouterConfig` less what the app
    derives (``max_lora_rank`` comes from the engine), plus the adapters registered at start.

    Attributes:
        work_dir: Registry (``registry.json``) and composed adapters, shared by the router
            replicas. Set, it persists: an application started later on the same folder serves
            the adapters registered (and not deleted) through ``/v1/adapters`` before, plus
            ``adapters``. Empty: a fresh temporary folder per application, so nothing outlives
            it. On a multi-node cluster, set it to storage every node mounts.
        top_k: Most adapters mixed per request.
        min_weight: Gate weights below this are dropped.
        weight_step: Mixture weight quantisation.
        cache_size: Composed adapters kept (LRU).
        adapters: Adapters registered at start: ``{name, path, modalities, prior?}`` each.
    """

    work_dir: str = ""
    top_k: int = _ROUTER_DEFAULTS["top_k"]
    min_weight: float = _ROUTER_DEFAULTS["min_weight"]
    weight_step: float = _ROUTER_DEFAULTS["weight_step"]
    cache_size: int = _ROUTER_DEFAULTS["cache_size"]
    adapters: tuple[dict, ...] = ()

    def __post_init__(self) -> None:
        self.router_config(self.work_dir or ".", _ROUTER_DEFAULTS["max_lora_rank"])  # validates, naming the field

    def router_config(self, work_dir: str, max_lora_rank: int, served_model_name: str = "") -> RouterConfig:
        """The router's configuration: these settings, the work folder, the engine's rank and the
        served model's name (which no adapter may take)."""
        return RouterConfig(work_dir=work_dir, top_k=self.top_k, min_weight=self.min_weight,
                            weight_step=self.weight_step, cache_size=self.cache_size, max_lora_rank=max_lora_rank,
                            reserved_names=(served_model_name,) if served_model_name else ())


@dataclass(frozen=True)
class AuthConfig:
    """API keys of the HTTP service (see :mod:`serve_apps.auth`).

    Attributes:
        keys_file: File of ``KEY SCOPE`` lines (scope ``user`` or ``admin``), read where the
            application is built; empty: none.
        keys_env: Environment variable of ``KEY:SCOPE,...`` read there too; empty: none.
        open_paths: Paths served without a key (health checks, Prometheus scrapes); empty them
            to put those behind a key too.
        key_sha256: ``(sha256 hex, scope)`` pairs: what the two sources above resolve to (the
            application's arguments carry digests, never keys); may also be given directly.
    """

    keys_file: str = ""
    keys_env: str = "OMNIALIGN_API_KEYS"
    open_paths: tuple[str, ...] = ("/healthz", "/metrics")
    key_sha256: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        from serve_apps.auth import SCOPES

        pairs = tuple(tuple(p) for p in self.key_sha256)  # YAML/JSON give lists
        for p in pairs:
            if len(p) != 2 or len(str(p[0])) != 64 or p[1] not in SCOPES:
                raise InvalidInputError("auth.key_sha256", f"entries are [sha256 hex, scope in {SCOPES}]")
        object.__setattr__(self, "key_sha256", pairs)
        object.__setattr__(self, "open_paths", tuple(self.open_paths))

    def resolved(self) -> AuthConfig:
        """This config with the keys of ``keys_file`` and ``keys_env`` added as digests."""
        from serve_apps.auth import load_keys

        keys = tuple(dict.fromkeys(self.key_sha256 + load_keys(self.keys_file, self.keys_env)))
        return AuthConfig(keys_file="", keys_env="", open_paths=self.open_paths, key_sha256=keys)


@dataclass(frozen=True)
class AppConfig:
    """Everything the application needs; the ``args`` of ``serve_apps.app:build_app``."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    store: StoreSettings = field(default_factory=StoreSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    ingest_policy: IngestPolicy = field(default_factory=IngestPolicy)
    auth: AuthConfig = field(default_factory=AuthConfig)

    @classmethod
    def from_args(cls, args: dict[str, Any] | None) -> AppConfig:
        """Typed config from a nested mapping (YAML ``args``); unknown keys raise."""
        args = dict(args or {})
        parts = {}
        for f in fields(cls):
            sub = args.pop(f.name, {}) or {}
            typ = {"engine": EngineConfig, "limits": LimitsConfig, "store": StoreSettings,
                   "routing": RoutingSettings, "ingest_policy": IngestPolicy, "auth": AuthConfig}[f.name]
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
