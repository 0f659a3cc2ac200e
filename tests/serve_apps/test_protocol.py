"""Request bodies: what a client may send, and every mistake a ValidationError (HTTP 400), not a 500."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from serve_apps.protocol import (
    UNSUPPORTED_FIELDS,
    AdapterRequest,
    ChatRequest,
    CompletionRequest,
    IngestRequest,
    SearchRequest,
)

BASE = {"model": "omni", "prompt": "hi"}


def _completion(raw: str) -> CompletionRequest:
    # As FastAPI does: the stdlib's json.loads (which accepts lone surrogate escapes), then the model.
    return CompletionRequest.model_validate(json.loads(raw))


@pytest.mark.parametrize("raw", [
    '{"model": "omni", "prompt": "a \\ud800 b"}',
    '{"model": "omni", "prompt": "hi", "stop": ["\\udfff"]}',
])
def test_lone_surrogates_are_refused(raw):
    with pytest.raises(ValidationError, match="surrogate"):
        _completion(raw)
    with pytest.raises(ValidationError, match="surrogate"):
        ChatRequest.model_validate(json.loads('{"model": "omni", "messages": [{"role": "user", "content": '
                                              '[{"type": "text", "text": "\\ud800"}]}]}'))
    with pytest.raises(ValidationError, match="surrogate"):
        SearchRequest.model_validate(json.loads('{"text": "\\ud83d"}'))
    with pytest.raises(ValidationError, match="surrogate"):
        IngestRequest.model_validate(json.loads('{"url": "rtsp://cam/\\ud800"}'))
    # A proper surrogate pair is one character, and fine.
    assert _completion('{"model": "omni", "prompt": "\\ud83d\\ude00"}').prompt == "\U0001F600"


@pytest.mark.parametrize(("extra", "needle"), [
    ({"stop": ""}, "empty"), ({"stop": ["ok", ""]}, "empty"), ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4"),
    ({"seed": 2**64}, "seed"), ({"seed": -(2**63) - 1}, "seed"), ({"n": 2}, "n=1"),
])
def test_sampling_values_out_of_range(extra, needle):
    with pytest.raises(ValidationError, match=needle):
        CompletionRequest.model_validate({**BASE, **extra})


@pytest.mark.parametrize("name", sorted(UNSUPPORTED_FIELDS))
def test_unsupported_openai_fields_are_refused_unless_unused(name):
    used = {"logprobs": 3, "top_logprobs": 2, "echo": True, "best_of": 3, "suffix": "x", "logit_bias": {"5": 1},
            "tools": [{"type": "function"}], "tool_choice": "auto", "functions": [{"name": "f"}],
            "function_call": "auto", "response_format": {"type": "json_object"}}[name]
    with pytest.raises(ValidationError, match=f"{name} is not supported"):
        CompletionRequest.model_validate({**BASE, name: used})
    with pytest.raises(ValidationError, match=f"{name} is not supported"):
        ChatRequest.model_validate({"model": "omni", "messages": [], name: used})
    for unused in UNSUPPORTED_FIELDS[name]:  # what OpenAI clients send by default passes
        assert CompletionRequest.model_validate({**BASE, name: unused}).model == "omni"


@pytest.mark.parametrize("value", [float("inf"), 1e300, -1.0, float("nan")])
def test_search_times_must_be_finite_and_bounded(value):
    for key in ("from_s", "to_s"):
        with pytest.raises(ValidationError, match=key):
            SearchRequest.model_validate_json(json.dumps({key: value}))
    assert SearchRequest(from_s=0, to_s=3600.5).to_s == 3600.5


def test_ids_and_names_keep_their_patterns():
    with pytest.raises(ValidationError, match="stream_id"):
        IngestRequest(url="x", stream_id="../../etc")
    with pytest.raises(ValidationError, match="name"):
        AdapterRequest(name="a/b", path="/x", modalities=["text"])
