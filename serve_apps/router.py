"""The adapter router deployment: a thin Serve wrapper of :class:`serve_apps.adapters.routing.Router`.

Replicas share the router's ``work_dir`` (registry + composed adapters), so it can autoscale:
a registration through one replica is seen by the others at their next request.
"""

from __future__ import annotations

from ray import serve

from serve_apps.adapters.routing import Router, RoutingTable
from serve_apps.config import RoutingSettings


@serve.deployment(name="AdapterRouter")
class AdapterRouter:
    """Routes requests to one (possibly composed) LoRA adapter; registers adapters at runtime."""

    def __init__(self, model_dir: str, settings: dict, max_lora_rank: int, served_model_name: str = "") -> None:
        s = RoutingSettings(**settings)
        self.router = Router(model_dir, s.router_config(s.work_dir, max_lora_rank, served_model_name))
        RoutingTable(s.adapters).apply(self.router)

    def route(self, modality_tokens: dict, adapter: str | None = None, mixture: dict | None = None) -> dict:
        """The :class:`serve_apps.adapters.routing.RouteDecision` (as a dict) for one request."""
        return self.router.route(modality_tokens, adapter=adapter, mixture=mixture).to_json()

    def register(self, name: str, path: str, modalities: list[str], prior: float = 1.0) -> dict:
        spec = self.router.register(name, path, modalities, prior)
        return {"name": spec.name, "path": spec.path, "modalities": list(spec.modalities),
                "prior": spec.prior, "version": spec.version}

    def unregister(self, name: str) -> dict:
        spec = self.router.unregister(name)
        return {"name": spec.name, "deleted": True, "version": spec.version}

    def adapters(self) -> list[dict]:
        return [{"name": s.name, "modalities": list(s.modalities), "prior": s.prior, "version": s.version}
                for s in self.router.adapters()]
