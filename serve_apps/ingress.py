"""The HTTP ingress: an OpenAI-compatible FastAPI app on Ray Serve.

It renders requests into token ids (chat media parts through :mod:`engine.omni.chat`), asks the
router deployment for the request's adapter, and calls the engine deployment through its handle
(streamed as server-sent events when ``stream`` is set). Search, ingest, adapter registration,
Prometheus metrics and health live here too. Heavy synchronous work (tokenizing media, store
queries) runs in worker threads so one request never stalls the event loop of the others.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from dataclasses import replace
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from ray import serve
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.omni.chat import (
    ChatContext,
    decode_audio,
    decode_image,
    modality_counts,
    render_messages,
)
from engine.errors import InvalidInputError
from serve_apps.ingest_policy import check_source, redact, stream_error_for_client
from serve_apps.adapters.routing import UnknownAdapterError
from serve_apps.config import AppConfig
from serve_apps.errors import error_response, unwrap
from serve_apps.llm_engine import GenerateRequest
from serve_apps.metrics import serve_metrics
from serve_apps.middleware import ApiKeyMiddleware, BodyLimitMiddleware, CatchAllMiddleware, set_limits
from serve_apps.protocol import (
    AdapterRequest,
    ChatRequest,
    CompletionRequest,
    IngestRequest,
    SearchRequest,
    chunk_body,
    completion_body,
    new_id,
    route_info,
)


def _on_error(scope, exc: Exception) -> JSONResponse:
    response = error_response(exc)
    route = scope.get("route")
    serve_metrics().error(getattr(route, "path", "unmatched"), response.status_code)  # templates: bounded labels
    return response


app = FastAPI(title="omnialign", docs_url=None, redoc_url=None)
app.add_middleware(BodyLimitMiddleware)
app.add_middleware(ApiKeyMiddleware)  # before the body is read: a request without a key costs nothing
app.add_middleware(CatchAllMiddleware, on_error=_on_error)  # added last = outermost
# Starlette's HTTPException (FastAPI's is a subclass): unknown routes and 405s get our shape too.
for _exc_type in (StarletteHTTPException, RequestValidationError, ValidationError):
    app.add_exception_handler(_exc_type, lambda request, exc: _on_error(request.scope, exc))


async def _unless_overloaded(awaitable):
    """Awaits a deployment call; a full queue downstream becomes our 503 JSON with Retry-After.

    Serve installs its own plain-text handler for ``BackPressureError`` on the app, so the
    error is turned into an HTTPException here, where it happens.
    """
    try:
        return await awaitable
    except (BackPressureError, DeploymentUnavailableError) as exc:
        raise HTTPException(503, "server overloaded: too many queued requests, retry later",
                            headers={"Retry-After": "1"}) from exc


def _upload_owner(request: Request) -> str:
    """The uploads folder name of the request's API key (a digest prefix; ``anonymous`` without)."""
    from serve_apps.auth import bearer_token, digest

    token = bearer_token(request.headers.get("authorization"))
    return f"key-{digest(token)[:16]}" if token else "anonymous"


def _sse(obj) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


@serve.deployment(name="OmniIngress")
@serve.ingress(app)
class OmniIngress:
    """HTTP front of the omni model, the store and ingestion (see the module docstring)."""

    def __init__(self, engine: DeploymentHandle, router: DeploymentHandle, ingest: DeploymentHandle,
                 config: dict) -> None:
        from transformers import AutoTokenizer

        from engine.omni.vocab import VOCAB_FILE, OmniVocab

        self.cfg = AppConfig.from_args(config)
        set_limits(self.cfg.limits, self.cfg.auth)
        self.engine, self.router, self.ingest = engine, router, ingest
        model_dir = Path(self.cfg.engine.model_dir)
        self.text_tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.vocab = OmniVocab.load(model_dir) if (model_dir / VOCAB_FILE).is_file() else None
        self.metrics = serve_metrics()
        self._codebooks = None
        roots = tuple(self.cfg.ingest_policy.allowed_roots)
        if self.cfg.store.upload_dir:
            Path(self.cfg.store.upload_dir).mkdir(parents=True, exist_ok=True)
            roots += (str(Path(self.cfg.store.upload_dir).resolve()),)
        self.policy = replace(self.cfg.ingest_policy, allowed_roots=roots)

    # -- helpers ---------------------------------------------------------------------------
    def _store(self):
        from engine.store.table import SegmentStore

        return SegmentStore.open(self.cfg.store.db_dir)

    def _codebook_tokenizer(self):
        if self._codebooks is None:
            from engine.tokenize.tokenizer import Tokenizer

            self._codebooks = Tokenizer.load(self.cfg.store.codebooks)
        return self._codebooks

    def _chat_context(self) -> ChatContext:
        if self.vocab is None:
            raise InvalidInputError("model", "the served model has no modality tokens (not an omni model)")
        has_store = bool(self.cfg.store.db_dir)
        return ChatContext(
            vocab=self.vocab, rows_between=(lambda s, a, b: self._store().rows_between(s, a, b)) if has_store else None,
            tokenizer=self._codebook_tokenizer() if Path(self.cfg.store.codebooks).is_dir() else None,
            max_span_us=int(self.cfg.limits.max_segment_span_s * 1e6),
            max_inline_bytes=self.cfg.limits.max_inline_media_bytes)

    def _model_target(self, model: str) -> str | None:
        """None for the base model (the gate decides), else the adapter the client named.

        An unknown name is refused by the router (404), so this costs no extra call.
        """
        return None if model == self.cfg.engine.served_model_name else model

    async def _generate(self, body, prompt_ids: list[int], chat: bool, endpoint: str):
        t0 = time.perf_counter()
        adapter = self._model_target(body.model)
        limit = self.cfg.limits.max_tokens
        max_tokens = (getattr(body, "max_completion_tokens", None) or body.max_tokens
                      or (min(256, limit) if chat else 16))
        if max_tokens > limit:
            raise HTTPException(400, f"max_tokens {max_tokens} exceeds this server's limit {limit}")
        if not prompt_ids:
            raise HTTPException(400, "the prompt is empty")
        if len(prompt_ids) + max_tokens > self.cfg.engine.max_model_len:
            raise HTTPException(400, f"prompt ({len(prompt_ids)} tokens) + max_tokens ({max_tokens}) exceeds the "
                                     f"model's context of {self.cfg.engine.max_model_len} tokens")
        counts = modality_counts(prompt_ids, self.vocab) if self.vocab else {"text": len(prompt_ids)}
        try:
            route = await self.router.route.remote(counts, adapter, body.adapters)
        except UnknownAdapterError as exc:  # arrives wrapped; the name tells model from mixture
            name = getattr(unwrap(exc), "name", "")
            if name == body.model:
                raise HTTPException(404, f"model {name!r} does not exist; GET /v1/models lists them") from None
            raise
        self.metrics.routed(route)
        req = GenerateRequest(prompt_ids, max_tokens, body.temperature, body.top_p, body.seed, body.stop_list(),
                              body.ignore_eos,
                              (route["lora_name"], route["lora_int_id"], route["lora_path"]) if route["lora_int_id"] else None)
        rid = new_id("chatcmpl" if chat else "cmpl")
        headers = {"x-omnialign-lora": route["lora_name"]}
        if not body.stream:
            out = await _unless_overloaded(self.engine.complete.remote(req))
            self.metrics.done(endpoint, 200, time.perf_counter() - t0, len(out["token_ids"]))
            return JSONResponse(completion_body(rid, body.model, out, chat, route,
                                                        prompt_ids if body.return_token_ids else None), headers=headers)
        stream = self.engine.options(stream=True).generate.remote(req)
        first = await _unless_overloaded(stream.__anext__())  # overload/engine errors surface before the 200
        return StreamingResponse(self._events(stream, first, rid, body.model, chat, route, endpoint, t0),
                                 media_type="text/event-stream", headers=headers)

    async def _events(self, stream, first, rid, model, chat, route, endpoint, t0):
        n_tokens = 0
        try:
            if chat:
                yield _sse(chunk_body(rid, model, None, chat, first=True))
            delta = first
            while delta is not None:
                n_tokens += len(delta["token_ids"])
                if delta["text"] or delta["finish_reason"]:
                    body = chunk_body(rid, model, delta, chat, first=False)
                    if delta["finish_reason"]:
                        body["omnialign"] = route_info(route)
                    yield _sse(body)
                delta = await anext(stream, None)
            yield b"data: [DONE]\n\n"
            self.metrics.done(endpoint, 200, time.perf_counter() - t0, n_tokens)
        except Exception as exc:  # noqa: BLE001 - after the 200 went out, an error can only be an event
            from serve_apps.errors import status_for

            status, message, _ = status_for(exc)
            self.metrics.done(endpoint, status, time.perf_counter() - t0, n_tokens)
            yield _sse({"error": {"message": message, "code": str(status)}})

    # -- OpenAI-compatible endpoints -----------------------------------------------------------
    @app.post("/v1/completions")
    async def completions(self, body: CompletionRequest):
        if isinstance(body.prompt, str):
            ids = await asyncio.to_thread(lambda: self.text_tokenizer(body.prompt, add_special_tokens=False)["input_ids"])
        else:
            vocab_size = len(self.text_tokenizer)
            if any(not 0 <= i < vocab_size for i in body.prompt):
                raise HTTPException(400, f"prompt token ids must be in [0, {vocab_size})")
            ids = list(body.prompt)
        return await self._generate(body, ids, chat=False, endpoint="completions")

    @app.post("/v1/chat/completions")
    async def chat_completions(self, body: ChatRequest):
        def render() -> list[int]:
            # Text-only chats need neither the store nor the codebooks.
            ctx = self._chat_context() if self._has_media(body.messages) else None
            messages = render_messages(body.messages, ctx)
            text = self.text_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return self.text_tokenizer(text, add_special_tokens=False)["input_ids"]

        ids = await asyncio.to_thread(render)
        return await self._generate(body, ids, chat=True, endpoint="chat")

    @staticmethod
    def _has_media(messages) -> bool:
        return any(isinstance(m, dict) and isinstance(m.get("content"), list)
                   and any(isinstance(p, dict) and p.get("type") != "text" for p in m["content"]) for m in messages)

    @app.get("/v1/models")
    async def models(self):
        base = self.cfg.engine.served_model_name
        data = [{"id": base, "object": "model", "owned_by": "omnialign", "created": 0}]
        for a in await self.router.adapters.remote():
            data.append({"id": a["name"], "object": "model", "owned_by": "omnialign", "created": 0, "parent": base,
                         "modalities": a["modalities"]})
        return {"object": "list", "data": data}

    # -- adapters --------------------------------------------------------------------------
    @app.post("/v1/adapters", status_code=201)
    async def register_adapter(self, body: AdapterRequest):
        path = check_source(body.path, self.policy)
        if "://" in path:
            raise HTTPException(400, "adapters are local folders inside the allowed roots, not URLs")
        return await self.router.register.remote(body.name, path, body.modalities, body.prior)

    @app.delete("/v1/adapters/{name}")
    async def delete_adapter(self, name: str):
        return await self.router.unregister.remote(name)

    @app.get("/v1/adapters")
    async def list_adapters(self):
        return {"data": await self.router.adapters.remote()}

    # -- search ------------------------------------------------------------------------------
    @app.post("/v1/search")
    async def search(self, body: SearchRequest):
        from engine.store.search import SearchQuery, search

        def run() -> list:
            vector = column = None
            limit = self.cfg.limits.max_inline_media_bytes
            if sum(x is not None for x in (body.text, body.audio, body.image)) > 1:
                raise InvalidInputError("query", "give at most one of text, audio, image")
            if body.audio is not None:
                audio = decode_audio(body.audio, "audio", limit)
                spec = self._store().encoders().get("audio_enc_emb")
                if spec:  # the table's pretrained audio encoder (Whisper's), not log-mel statistics
                    from engine.encode.audio import query_audio_embedding

                    vector, column = query_audio_embedding(spec, audio), "audio_enc_emb"
                else:
                    vector, column = self._codebook_tokenizer().embed_audio(audio), "audio_emb"
            elif body.image is not None:
                import numpy as np

                frame = decode_image(body.image, "image", limit)
                spec = self._store().encoders().get("image_emb")
                if spec:  # the table's pretrained image encoder: semantic neighbours, not pixel copies
                    from engine.encode.registry import query_image_embedding

                    vector, column = query_image_embedding(spec, frame), "image_emb"
                else:
                    vector, column = (self._codebook_tokenizer().embed_frames(frame[None], np.zeros(1, np.int64)),
                                      "video_emb")
            if body.target is not None:
                return anchored(vector, column)
            q = SearchQuery(text=body.text, vector=vector, vector_column=column, stream_id=body.stream_id, k=body.k,
                            from_us=None if body.from_s is None else int(body.from_s * 1e6),
                            to_us=None if body.to_s is None else int(body.to_s * 1e6))
            return search(self._store(), q)

        def anchored(vector, column) -> list:
            import numpy as np

            from engine.store.anchors import anchor_query_vector, anchor_search

            db = self._store().config.db_dir
            if body.text is not None:
                from engine.store.text_embed import get_text_embedder

                vec = np.asarray(get_text_embedder().embed([body.text])[0], np.float32)
            elif column in ("image_emb", "audio_enc_emb"):
                vec = anchor_query_vector(db, "image" if column == "image_emb" else "audio", vector)
            else:
                raise InvalidInputError("target", "needs a text query, or a picture or sound on a table with "
                                                  "pretrained encoder columns")
            targets = None if body.target == "any" else (body.target,)
            return anchor_search(db, vec, targets, k=body.k, stream_id=body.stream_id)

        hits = await asyncio.to_thread(run)
        if body.target is not None:
            return {"hits": [{"stream_id": h.stream_id, "segment_index": h.segment_index, "t_start_us": h.t_start_us,
                              "t_end_us": h.t_end_us, "score": h.score, "retrieval": "anchor", "matched": h.modality,
                              "adapter": h.adapter} for h in hits]}
        return {"hits": [{"stream_id": h.stream_id, "segment_index": h.segment_index, "t_start_us": h.t_start_us,
                          "t_end_us": h.t_end_us, "score": h.score, "retrieval": h.retrieval,
                          "transcript": h.transcript} for h in hits]}

    # -- ingest ------------------------------------------------------------------------------
    @app.post("/v1/ingest", status_code=202)
    async def ingest(self, request: Request):
        ctype = request.headers.get("content-type", "")
        upload = ctype.startswith("multipart/form-data")
        if upload:
            source, stream_id, live = await self._save_upload(request)
            try:
                return await self._start(source, stream_id, live, upload=True)
            except BaseException:  # refused (409) or failed to start: the upload is not kept
                await asyncio.to_thread(lambda: Path(source).unlink(missing_ok=True))
                raise
        else:
            try:
                payload = IngestRequest.model_validate_json(await request.body())
            except ValidationError as exc:
                raise RequestValidationError(exc.errors()) from None
            source, stream_id, live = check_source(payload.url, self.policy), payload.stream_id, payload.live
            if "://" not in source and await asyncio.to_thread(Path(source).is_dir):
                raise HTTPException(400, f"{redact(payload.url)} is a folder; one stream is one media file or URL")
            return await self._start(source, stream_id, live, upload=False)

    async def _start(self, source: str, stream_id: str | None, live: bool, upload: bool) -> dict:
        from engine.media.sources import default_stream_id

        stream_id = stream_id or default_stream_id(source)
        started = await self.ingest.start.remote(source, stream_id, live, delete_source_after=upload)
        if "error" in started:
            raise HTTPException(409, started["error"])
        return {"stream_id": stream_id, "state": started["state"], "source": redact(source),
                "status_url": f"/v1/streams/{stream_id}"}

    async def _save_upload(self, request: Request) -> tuple[str, str | None, bool]:
        if not self.cfg.store.upload_dir:
            raise HTTPException(400, "uploads are disabled on this server (no store.upload_dir)")
        form = await request.form()
        upload = form.get("file")
        if upload is None or not hasattr(upload, "read"):
            raise HTTPException(400, "multipart body needs a 'file' field")
        stream_id = form.get("stream_id") or None
        if stream_id is not None:
            IngestRequest(url="x", stream_id=stream_id)  # same stream id rule as the JSON form
        suffix = Path(upload.filename or "").suffix.lower()
        if not suffix[1:].isalnum():
            suffix = ""
        # One folder per API key: its size is what the key has on disk now (uploads are deleted
        # when their streams end), shared by every ingress replica without any other state.
        owner = Path(self.cfg.store.upload_dir).resolve() / _upload_owner(request)
        dest = owner / f"{uuid.uuid4().hex}{suffix}"
        quota = self.cfg.limits.max_pending_upload_bytes

        def copy() -> int:  # Starlette spooled the part to a temp file: stream it, never hold it in memory
            owner.mkdir(exist_ok=True)
            with dest.open("wb") as out:
                shutil.copyfileobj(upload.file, out)
            return sum(p.stat().st_size for p in owner.iterdir() if p.is_file())

        try:
            if await asyncio.to_thread(copy) > quota:
                raise HTTPException(429, f"uploads still being ingested for this key exceed {quota} bytes; retry "
                                         "when they finish", headers={"Retry-After": "30"})
            return check_source(str(dest), self.policy), stream_id, str(form.get("live", "")).lower() == "true"
        except BaseException:
            dest.unlink(missing_ok=True)
            raise

    @app.get("/v1/streams/{stream_id}")
    async def stream_status(self, stream_id: str):
        status = await self.ingest.status.remote(stream_id)
        if status is None:
            raise HTTPException(404, f"stream {stream_id!r} is unknown")
        if status.get("error"):  # decoders quote the URL they failed on, credentials and all
            status["error"] = stream_error_for_client(status["error"], status.get("source", ""))
        if "source" in status:
            status["source"] = redact(status["source"])
        return status

    # -- operations --------------------------------------------------------------------------
    @app.get("/metrics")
    async def metrics(self):
        """This replica's request metrics, then the ingest metrics of the HTTP-ingested streams."""
        body = self.metrics.exposition()
        try:  # the ingest pipelines' metrics (same names as `omnialign ingest --metrics-port`)
            body += await asyncio.wait_for(self.ingest.exposition.remote(), timeout=5)
        except Exception as exc:  # noqa: BLE001 - request metrics are still worth serving
            body += f"# ingest metrics unavailable: {type(exc).__name__}\n".encode()
        return Response(body, media_type=self.metrics.content_type)

    @app.get("/healthz")
    async def healthz(self):
        try:
            await asyncio.wait_for(self.engine.check_health.remote(), timeout=10)
        except Exception as exc:  # noqa: BLE001 - any engine failure means unhealthy
            return JSONResponse({"status": "unhealthy", "reason": type(exc).__name__}, status_code=503)
        return {"status": "ok", "model": self.cfg.engine.served_model_name}
