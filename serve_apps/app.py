"""Application builder: ``serve run serve_apps.app:build_app`` / ``serve deploy serve_apps/config.yaml``.

Four deployments composed by handles: the ``OmniIngress`` (HTTP) calls ``AdapterRouter`` (which
adapter), ``LLMEngine`` (vLLM) and ``IngestManager`` (one ingest pipeline per stream). Each has
its own resources, autoscaling and queue limits, below as defaults; the ``deployments:`` section
of a Serve config file (or ``options`` here) overrides them per deployment name.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from ray.serve import Application

from engine.errors import InvalidInputError
from serve_apps.config import AppConfig
from serve_apps.ingest import IngestManager
from serve_apps.ingress import OmniIngress
from serve_apps.llm_engine import LLMEngine
from serve_apps.router import AdapterRouter


def default_options(cfg: AppConfig) -> dict[str, dict]:
    """Per-deployment Serve options; documented in ``serve_apps/config.yaml``."""
    env = {"env_vars": {"VLLM_CPU_KVCACHE_SPACE": str(cfg.engine.kv_cache_gib), "HF_HUB_OFFLINE": "1",
                        "TOKENIZERS_PARALLELISM": "false"}}
    return {
        # The engine batches internally: let it hold max_num_seqs requests; queue a bounded number
        # more, beyond that callers get BackPressureError -> 503 (overload never crashes it).
        "LLMEngine": {"max_ongoing_requests": cfg.engine.max_num_seqs, "max_queued_requests": 4 * cfg.engine.max_num_seqs,
                      "ray_actor_options": {"num_cpus": 1, "runtime_env": env},
                      "autoscaling_config": {"min_replicas": 1, "max_replicas": 1,
                                             "target_ongoing_requests": cfg.engine.max_num_seqs},
                      "health_check_period_s": 10, "health_check_timeout_s": 60},
        "AdapterRouter": {"max_ongoing_requests": 64, "ray_actor_options": {"num_cpus": 0.1},
                          "autoscaling_config": {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 16}},
        # One replica: it owns the drivers of the streams it started.
        "IngestManager": {"num_replicas": 1, "max_ongoing_requests": 32, "ray_actor_options": {"num_cpus": 0.1}},
        "OmniIngress": {"max_ongoing_requests": 128, "max_queued_requests": 256,
                        "ray_actor_options": {"num_cpus": 0.1, "runtime_env": env},
                        "autoscaling_config": {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 32,
                                               "upscale_delay_s": 2, "downscale_delay_s": 10}},
    }


def build_app(args: dict) -> Application:
    """The omnialign application from ``args`` (see :class:`serve_apps.config.AppConfig`).

    ``args["options"]`` (optional) maps deployment names to Serve options merged over
    :func:`default_options`.
    """
    args = dict(args or {})
    overrides = args.pop("options", {}) or {}
    cfg = AppConfig.from_args(args)
    cfg = replace(cfg, auth=cfg.auth.resolved())  # keys read here; only their digests go on
    if not cfg.engine.model_dir or not (Path(cfg.engine.model_dir) / "config.json").is_file():
        raise InvalidInputError("engine.model_dir", f"{cfg.engine.model_dir!r} is not a local model folder")
    if not cfg.routing.work_dir:
        # No registry configured: a fresh one for this application, shared by the router replicas
        # of this node, so runtime registrations last as long as the application and never leak
        # into a later one. A configured work_dir persists them (see RoutingSettings).
        cfg = replace(cfg, routing=replace(cfg.routing, work_dir=tempfile.mkdtemp(prefix="omnialign-router-")))
    opts = default_options(cfg)
    unknown = set(overrides) - set(opts)
    if unknown:
        raise InvalidInputError("options", f"unknown deployments {sorted(unknown)}; known: {sorted(opts)}")
    for name, o in overrides.items():
        # Merge one level deeper for dict options, so overriding one autoscaling field (or adding
        # num_gpus to ray_actor_options) keeps the other defaults (and the env vars).
        opts[name] = {**opts[name], **{k: {**opts[name][k], **v} if isinstance(v, dict) and isinstance(opts[name].get(k), dict)
                                       else v for k, v in o.items()}}
    engine = LLMEngine.options(**opts["LLMEngine"]).bind(asdict(cfg.engine))
    router = AdapterRouter.options(**opts["AdapterRouter"]).bind(cfg.engine.model_dir, asdict(cfg.routing),
                                                                 cfg.engine.max_lora_rank, cfg.engine.served_model_name)
    return OmniIngress.options(**opts["OmniIngress"]).bind(engine, router, ingest_manager(cfg, opts["IngestManager"]),
                                                           cfg.to_args())


def ingest_manager(cfg: AppConfig, options: dict) -> Application:
    """The bound ``IngestManager``: HTTP ingests run the Ray Data pipeline with ``cfg.store``'s settings."""
    return IngestManager.options(**options).bind(cfg.store.pipeline_config(), cfg.store.ingest_num_cpus,
                                                 cfg.store.ingest_max_restarts)
