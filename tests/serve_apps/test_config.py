"""The Serve config file and the typed application config (no Ray cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.errors import InvalidInputError
from engine.omni.model import TinyModelConfig, init_model
from serve_apps.app import build_app, default_options
from serve_apps.config import AppConfig

CONFIG = Path(__file__).resolve().parents[2] / "serve_apps" / "config.yaml"


def test_config_yaml_is_a_valid_serve_deploy_config_with_our_args():
    from ray.serve.schema import ServeDeploySchema

    data = yaml.safe_load(CONFIG.read_text())
    schema = ServeDeploySchema.parse_obj(data)
    (app,) = schema.applications
    assert app.import_path == "serve_apps.app:build_app"
    cfg = AppConfig.from_args(app.args)
    assert cfg.engine.max_loras >= 2 and cfg.ingest_policy.allow_private_hosts is False
    # Every deployment the file tunes exists in the app, and every one is tuned.
    assert {d.name for d in app.deployments} == set(default_options(cfg))


def test_unknown_keys_fail_at_deploy_time_not_at_the_first_request(tmp_path):
    with pytest.raises(InvalidInputError, match="max_tokenz"):
        AppConfig.from_args({"limits": {"max_tokenz": 5}})
    with pytest.raises(InvalidInputError, match="enigne"):
        AppConfig.from_args({"enigne": {}})
    with pytest.raises(InvalidInputError, match="model_dir"):
        build_app({"engine": {"model_dir": str(tmp_path / "missing")}})
    model = tmp_path / "m"
    init_model(model, TinyModelConfig(hidden_size=64, num_attention_heads=4, num_kv_heads=2, intermediate_size=128))
    with pytest.raises(InvalidInputError, match="LLMEngin"):
        build_app({"engine": {"model_dir": str(model)}, "options": {"LLMEngin": {}}})
    app = build_app({"engine": {"model_dir": str(model)}, "options": {"LLMEngine": {"max_queued_requests": 3}}})
    assert app is not None


def test_round_trip_of_args():
    cfg = AppConfig.from_args({"engine": {"model_dir": "/m"}, "ingest_policy": {"allowed_roots": ["/data"]},
                               "routing": {"adapters": [{"name": "a", "path": "/a", "modalities": ["text"]}]}})
    assert AppConfig.from_args(cfg.to_args()) == cfg


def test_config_yaml_states_the_code_defaults():
    """config.yaml sets nothing the code does not default to (except where this deployment keeps
    its files), and its deployment options are ``default_options``: one source of truth."""
    data = yaml.safe_load(CONFIG.read_text())
    (app,) = data["applications"]
    site = {("engine", "model_dir"), ("store", "db_dir"), ("store", "upload_dir")}
    defaults = AppConfig().to_args()
    for section, values in app["args"].items():
        for key, value in values.items():
            if (section, key) in site:
                continue
            got = AppConfig.from_args({section: {key: value}}).to_args()[section][key]
            assert got == defaults[section][key], f"{section}.{key}: yaml {value!r}, code default {defaults[section][key]!r}"
    options = default_options(AppConfig.from_args(app["args"]))
    for dep in app["deployments"]:
        for key, value in dep.items():
            if key == "name":
                continue
            code = options[dep["name"]].get(key)
            # A nested option (autoscaling, actor options) may be stated in part, never differently.
            got = {k: code.get(k) for k in value} if isinstance(value, dict) and isinstance(code, dict) else code
            assert got == value, f"{dep['name']}.{key}: yaml {value!r}, code {code!r}"
