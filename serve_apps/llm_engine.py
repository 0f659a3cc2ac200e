"""The vLLM engine deployment: one ``AsyncLLM`` per replica, LoRA enabled.

It takes token ids (the ingress renders and tokenizes, so it can count and limit tokens) and
one resolved LoRA adapter per request (the router's choice), and streams deltas back through
the deployment handle. Nothing here knows about HTTP.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ray import serve

from serve_apps.config import EngineConfig


@dataclass
class GenerateRequest:
    """One generation request as the engine deployment receives it.

    Attributes:
        prompt_token_ids: The tokenized prompt.
        max_tokens: Most new tokens.
        temperature: 0 = greedy.
        top_p: Nucleus sampling mass.
        seed: Per-request sampling seed (None: engine's).
        stop: Stop strings.
        ignore_eos: Keep generating past the end-of-sequence token (benchmarks).
        lora: ``(name, int_id, path)`` of the adapter to apply.
        request_id: Unique id (also for aborts and logs).
    """

    prompt_token_ids: list[int]
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False
    lora: tuple[str, int, str] | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@serve.deployment(name="LLMEngine")
class LLMEngine:
    """Hosts the omni model in vLLM (see the module docstring)."""

    def __init__(self, config: dict) -> None:
        cfg = EngineConfig(**config)
        # vLLM's CPU backend refuses to start without an explicit KV cache size.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cfg.kv_cache_gib))
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.config = cfg
        args = AsyncEngineArgs(
            model=cfg.model_dir, served_model_name=[cfg.served_model_name], dtype=cfg.dtype,
            max_model_len=cfg.max_model_len, max_num_seqs=cfg.max_num_seqs, enable_lora=True,
            max_loras=cfg.max_loras, max_cpu_loras=cfg.max_cpu_loras, max_lora_rank=cfg.max_lora_rank,
            enforce_eager=True, seed=cfg.seed, disable_log_stats=True,
        )
        self.engine = AsyncLLM.from_engine_args(args)

    def _sampling(self, req: GenerateRequest):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        return SamplingParams(max_tokens=req.max_tokens, temperature=req.temperature, top_p=req.top_p,
                              seed=req.seed, stop=req.stop or None, ignore_eos=req.ignore_eos,
                              output_kind=RequestOutputKind.DELTA)

    async def generate(self, req: GenerateRequest) -> AsyncIterator[dict]:
        """Streams ``{"text", "token_ids", "finish_reason", "prompt_tokens"}`` deltas."""
        from vllm.lora.request import LoRARequest

        lora = LoRARequest(req.lora[0], req.lora[1], req.lora[2]) if req.lora else None
        prompt = {"prompt_token_ids": list(req.prompt_token_ids)}
        try:
            async for out in self.engine.generate(prompt, self._sampling(req), req.request_id, lora_request=lora):
                o = out.outputs[0]
                yield {"text": o.text, "token_ids": list(o.token_ids), "finish_reason": o.finish_reason,
                       "prompt_tokens": len(out.prompt_token_ids or ())}
        except BaseException:
            # Client went away (cancelled generator) or the engine failed: free the sequence.
            await self.engine.abort(req.request_id)
            raise

    async def complete(self, req: GenerateRequest) -> dict:
        """The whole completion at once: ``{"text", "token_ids", "finish_reason", "prompt_tokens"}``."""
        text, ids, finish, n_prompt = [], [], None, 0
        async for d in self.generate(req):
            text.append(d["text"])
            ids += d["token_ids"]
            finish, n_prompt = d["finish_reason"] or finish, d["prompt_tokens"] or n_prompt
        return {"text": "".join(text), "token_ids": ids, "finish_reason": finish, "prompt_tokens": n_prompt}

    async def check_health(self) -> None:
        """Serve's health check: raises if the engine core died."""
        await self.engine.check_health()

    def __del__(self):
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()
