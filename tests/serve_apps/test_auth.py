"""API keys: loading, scopes, and the middleware on a real ASGI app (Starlette's test client)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from engine.errors import InvalidInputError
from serve_apps.auth import digest, load_keys, required_scope, scope_of
from serve_apps.config import AuthConfig, LimitsConfig
from serve_apps.errors import error_response
from serve_apps.middleware import ApiKeyMiddleware, CatchAllMiddleware, set_limits

USER, ADMIN = "u" * 8 + "-user-key-0001", "a" * 8 + "-admin-key-001"


def test_keys_from_file_and_environment(tmp_path, monkeypatch):
    f = tmp_path / "keys"
    f.write_text(f"# team keys\n{USER} user\n\n{ADMIN}   admin\n")
    monkeypatch.setenv("OMNI_TEST_KEYS", f"{'e' * 20}:user, {ADMIN}:admin")
    keys = load_keys(str(f), "OMNI_TEST_KEYS")
    assert keys == ((digest(USER), "user"), (digest(ADMIN), "admin"), (digest("e" * 20), "user"))
    resolved = AuthConfig(keys_file=str(f), keys_env="OMNI_TEST_KEYS").resolved()
    assert resolved.key_sha256 == keys and resolved.keys_file == ""  # digests only travel on
    assert USER not in repr(resolved.key_sha256)


@pytest.mark.parametrize(("line", "needle"), [
    (f"{USER} root", "scope"), ("short user", "16 characters"), (f"{USER}", "KEY SCOPE"), (f"{USER} user x", "KEY SCOPE"),
])
def test_bad_key_lines_name_the_line_not_the_key(tmp_path, line, needle):
    f = tmp_path / "keys"
    f.write_text("# ok\n" + line + "\n")
    with pytest.raises(InvalidInputError, match=needle) as info:
        load_keys(str(f))
    assert f"{f}:2" in str(info.value) and USER not in str(info.value)
    with pytest.raises(InvalidInputError, match="cannot read"):
        load_keys(str(tmp_path / "missing"))


def test_scopes_of_paths_and_keys():
    open_paths = ("/healthz", "/metrics")
    assert required_scope("/healthz", open_paths) is None
    assert required_scope("/v1/completions", open_paths) == "user"
    assert required_scope("/v1/adapters/x", open_paths) == required_scope("/v1/ingest", open_paths) == "admin"
    assert required_scope("/v1/ingestion", open_paths) == "user"  # a prefix of a word is not the route
    keys = ((digest(USER), "user"),)
    assert scope_of(f"Bearer {USER}", keys) == "user" and scope_of(f"bearer  {USER} ", keys) == "user"
    assert scope_of(None, keys) is scope_of(f"Basic {USER}", keys) is scope_of("Bearer nope", keys) is None


def _app(auth: AuthConfig, client=("127.0.0.1", 5000)) -> TestClient:
    set_limits(LimitsConfig(), auth)
    app = FastAPI()
    for path in ("/healthz", "/v1/models", "/v1/adapters"):
        app.add_api_route(path, lambda: {"ok": True}, methods=["GET"])
    app.add_middleware(ApiKeyMiddleware)
    app.add_middleware(CatchAllMiddleware, on_error=lambda scope, exc: error_response(exc))
    return TestClient(app, client=client)


@pytest.fixture(autouse=True)
def _reset_limits():
    yield
    set_limits(LimitsConfig(), AuthConfig())


def test_middleware_enforces_keys_and_scopes():
    client = _app(AuthConfig(key_sha256=((digest(USER), "user"), (digest(ADMIN), "admin"))))
    assert client.get("/healthz").status_code == 200  # open path
    r = client.get("/v1/models")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["type"] == "invalid_request_error" and "API key" in r.json()["error"]["message"]
    assert client.get("/v1/models", headers={"Authorization": "Bearer wrong-key-0000000"}).status_code == 401
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {USER}"}).status_code == 200
    r = client.get("/v1/adapters", headers={"Authorization": f"Bearer {USER}"})
    assert r.status_code == 403 and "admin" in r.json()["error"]["message"]
    assert client.get("/v1/adapters", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
    # An unknown route still needs a key (no probing of what exists without one).
    assert client.get("/nope").status_code == 401
    assert client.get("/nope", headers={"Authorization": f"Bearer {USER}"}).status_code == 404


def test_without_keys_only_loopback_clients_are_served():
    assert _app(AuthConfig()).get("/v1/models").status_code == 200
    remote = _app(AuthConfig(), client=("203.0.113.9", 5000))
    r = remote.get("/v1/models")
    assert r.status_code == 403 and "loopback" in r.json()["error"]["message"]
    assert remote.get("/healthz").status_code == 200  # health checks from the load balancer still work


def test_config_refuses_malformed_digests():
    with pytest.raises(InvalidInputError, match="key_sha256"):
        AuthConfig(key_sha256=(("abc", "user"),))
    assert AuthConfig(key_sha256=[[digest(USER), "admin"]]).key_sha256 == ((digest(USER), "admin"),)
