"""HTTP request bodies (pydantic) and OpenAI-compatible response shapes.

Requests follow the OpenAI completions / chat completions API; unknown fields are ignored (as
OpenAI clients send many optional ones), fields we cannot honour (:data:`UNSUPPORTED_FIELDS`)
are refused with a 400 instead of being silently dropped. omnialign extensions: ``adapters`` (explicit adapter weights) and
chat content parts of type ``segment_ref``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: OpenAI request fields this server cannot honour, with the values that mean "not used" (a
#: client sending these is fine). Any other value is a 400: silently dropping ``tools`` or
#: ``response_format`` would return an answer the client did not ask for.
UNSUPPORTED_FIELDS: dict[str, tuple] = {
    "logprobs": (None, False, 0), "top_logprobs": (None, 0), "echo": (None, False), "best_of": (None, 1),
    "suffix": (None, ""), "logit_bias": (None, {}), "tools": (None, []), "tool_choice": (None, "none"),
    "functions": (None, []), "function_call": (None, "none"), "response_format": (None, {"type": "text"}),
}
#: Stop sequences per request (OpenAI's limit).
MAX_STOP_SEQUENCES = 4
#: Largest seconds in a search time filter: ~317 years of µs still fits an int64.
MAX_TIME_S = 1e10


def check_text(value: Any, where: str) -> None:
    """Every string in ``value`` (nested lists/dicts) must be encodable UTF-8.

    JSON allows escaped lone surrogates (``"\\ud800"``); Python decodes them into a ``str`` that
    no tokenizer or database can encode, so they are refused here as the client's mistake.

    Raises:
        ValueError: Naming where the bad string is.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where}: text holds a lone UTF-16 surrogate, not valid Unicode") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(k, where)
            check_text(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_text(v, f"{where}[{i}]")


class _Body(BaseModel):
    """A request body: all of its strings are valid Unicode (:func:`check_text`)."""

    @model_validator(mode="before")
    @classmethod
    def _valid_text(cls, data: Any) -> Any:
        check_text(data, "body")
        return data


class _Sampling(_Body):
    model_config = ConfigDict(extra="ignore")

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)  # vLLM's seed is an int64
    stop: str | list[str] | None = None
    n: int = 1
    stream: bool = False
    ignore_eos: bool = False
    adapters: dict[str, float] | None = None
    return_token_ids: bool = False  # as vLLM's server: the generated ids in each choice

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, unused in UNSUPPORTED_FIELDS.items():
                if name in data and data[name] not in unused:
                    raise ValueError(f"{name} is not supported by this server")
        return data

    @field_validator("n")
    @classmethod
    def _one_choice(cls, v: int) -> int:
        if v != 1:
            raise ValueError("only n=1 is supported")
        return v

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> str | list[str] | None:
        stops = [v] if isinstance(v, str) else (v or [])
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty")
        if len(stops) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences")
        return v

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class CompletionRequest(_Sampling):
    """``POST /v1/completions``: a prompt string (may hold rendered code tokens) or token ids."""

    prompt: str | list[int]


class ChatRequest(_Sampling):
    """``POST /v1/chat/completions``: messages whose content may hold media parts."""

    messages: list[dict[str, Any]]
    max_completion_tokens: int | None = Field(default=None, ge=1)


class SearchRequest(_Body):
    """``POST /v1/search``: exactly one of text / audio / image, or only filters (time query)."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = None
    audio: dict[str, Any] | None = None
    image: str | None = None
    stream_id: str | None = None
    from_s: float | None = Field(default=None, ge=0, le=MAX_TIME_S, allow_inf_nan=False)
    to_s: float | None = Field(default=None, ge=0, le=MAX_TIME_S, allow_inf_nan=False)
    k: int = Field(default=10, ge=1, le=1000)
    #: Search the text-anchored space: rank rows by their image or audio vectors (any: both).
    target: Literal["image", "audio", "any"] | None = None


class IngestRequest(_Body):
    """``POST /v1/ingest`` (JSON form): a URL or a server-side path inside the allowed roots."""

    model_config = ConfigDict(extra="forbid")

    url: str
    stream_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._\-]{1,128}$")
    live: bool = False


class AdapterRequest(_Body):
    """``POST /v1/adapters``: register a peft LoRA folder for some modalities."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9._\-]{1,64}$")
    path: str
    modalities: list[Literal["text", "audio", "video"]] = Field(min_length=1)
    prior: float = Field(default=1.0, ge=0.0, le=100.0)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion_body(rid: str, model: str, out: dict, chat: bool, route: dict,
                    prompt_ids: list[int] | None = None) -> dict:
    """A whole (non-streamed) response; ``omnialign`` tells which adapters served it."""
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": out["text"]},
                  "finish_reason": out["finish_reason"]}
    else:
        choice = {"index": 0, "text": out["text"], "logprobs": None, "finish_reason": out["finish_reason"]}
    if prompt_ids is not None:  # return_token_ids, as vLLM's server does
        choice["token_ids"] = out["token_ids"]
    body = {"id": rid, "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
            "model": model, "choices": [choice], "usage": usage(out["prompt_tokens"], len(out["token_ids"])),
            "omnialign": route_info(route)}
    if prompt_ids is not None:
        body["prompt_token_ids"] = prompt_ids
    return body


def chunk_body(rid: str, model: str, delta: dict | None, chat: bool, first: bool) -> dict:
    """One SSE chunk: ``delta`` is an engine delta, or None for the empty role-only first chat chunk."""
    finish = delta["finish_reason"] if delta else None
    text = delta["text"] if delta else ""
    if chat:
        d: dict = {"role": "assistant", "content": text} if first else {"content": text}
        choice = {"index": 0, "delta": d, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    return {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()), "model": model, "choices": [choice]}


def route_info(route: dict) -> dict:
    return {"adapters": [list(x) for x in route["mixture"]], "lora": route["lora_name"],
            "composed": route["composed"]}


def error_body(status: int, message: str, code: str | None = None) -> dict:
    """OpenAI-style error object."""
    kind = "invalid_request_error" if status < 500 else ("overloaded_error" if status == 503 else "server_error")
    return {"error": {"message": message, "type": kind, "code": code or str(status)}}
