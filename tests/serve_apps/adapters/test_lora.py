"""LoRA adapters: exact composition, peft-format round trip, agreement with peft's own merge, input checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from engine.errors import InvalidInputError
from serve_apps.adapters.lora import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    compose,
    load_adapter,
    make_adapter,
    random_adapter,
    save_adapter,
)
from engine.omni.model import TinyModelConfig, init_model, load_model

TINY = TinyModelConfig(hidden_size=64, num_layers=2, num_attention_heads=4, num_kv_heads=2, intermediate_size=128)
PROMPT = "the camera records a street at night"
_A, _B = ".lora_A.weight", ".lora_B.weight"


@pytest.fixture(scope="module")
def adapters(tiny_model_dir):
    """Two random adapters with different ranks, targets and scalings: (a: r8 q/v s2.0, b: r4 q/v/o s0.5)."""
    a = random_adapter(tiny_model_dir, "a", rank=8, seed=1)
    raw_b = random_adapter(tiny_model_dir, "b", rank=4, seed=2, target_modules=("q_proj", "v_proj", "o_proj"))
    b = make_adapter("b", raw_b.tensors, raw_b.rank, 0.5, raw_b.target_modules, raw_b.base_model)
    return a, b


def _delta(adapter, module: str) -> np.ndarray:
    """scaling * B @ A of one module in float64; zeros-free: the module must be in the adapter."""
    a = adapter.tensors[module + _A].astype(np.float64)
    b = adapter.tensors[module + _B].astype(np.float64)
    return adapter.scaling * (b @ a)


def _expected(adapters, weights, module: str, shape: tuple[int, int]) -> np.ndarray:
    total = np.zeros(shape, np.float64)
    for adapter, w in zip(adapters, weights):
        if module + _A in adapter.tensors:
            total += w * _delta(adapter, module)
    return total


def _write_adapter(folder, config: dict, tensors: dict[str, np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    save_file(tensors, str(folder / WEIGHTS_FILE))


def _merged(tiny_model_dir, *adapter_dirs, weights=None):
    """Base model with the adapters in ``adapter_dirs`` merged by peft (several: cat-mixed with ``weights``)."""
    from peft import PeftModel

    model, tok, _ = load_model(tiny_model_dir)
    peft_model = PeftModel.from_pretrained(model, str(adapter_dirs[0]), adapter_name="a")
    if len(adapter_dirs) > 1:
        names = ["a"]
        for i, folder in enumerate(adapter_dirs[1:]):
            names.append(f"x{i}")
            peft_model.load_adapter(str(folder), adapter_name=names[-1])
        peft_model.add_weighted_adapter(names, list(weights), adapter_name="mix", combination_type="cat")
        peft_model.set_adapter("mix")
    return peft_model.merge_and_unload().eval(), tok


def _logits(model, tok) -> torch.Tensor:
    with torch.no_grad():
        return model(**tok(PROMPT, return_tensors="pt")).logits


# ---------------------------------------------------------------- composition


def test_compose_is_exact_weighted_sum(adapters):
    a, b = adapters
    assert a.rank == 8 and b.rank == 4 and a.scaling == 2.0 and b.scaling == 0.5
    weights = (0.7, 0.3)
    mix = compose([a, b], weights, "mix")
    assert mix.name == "mix" and mix.rank == 12 and mix.scaling == 1.0
    assert mix.target_modules == ("o_proj", "q_proj", "v_proj")
    assert mix.modules() == sorted(set(a.modules()) | set(b.modules()))
    assert len(mix.modules()) == 2 * 3 and len(a.modules()) == 2 * 2
    for m in mix.modules():
        got_a, got_b = mix.tensors[m + _A], mix.tensors[m + _B]
        assert got_a.dtype == got_b.dtype == np.float32
        assert got_a.shape[0] == got_b.shape[1] == 12
        expected = _expected([a, b], weights, m, got_b.shape[:1] + got_a.shape[1:])
        assert np.abs(expected).max() > 1e-3  # a real update, not a vacuous zero comparison
        np.testing.assert_allclose(_delta(mix, m), expected, rtol=1e-5, atol=1e-9)
    # o_proj is only in b: a's rank-8 blocks are zero there, b's blocks are b's A and weight*scaling*B.
    o = "base_model.model.model.layers.1.self_attn.o_proj"
    assert o + _A not in a.tensors
    assert not mix.tensors[o + _A][:8].any() and not mix.tensors[o + _B][:, :8].any()
    np.testing.assert_array_equal(mix.tensors[o + _A][8:], b.tensors[o + _A])
    np.testing.assert_allclose(mix.tensors[o + _B][:, 8:], b.tensors[o + _B] * 0.3 * 0.5, rtol=1e-6)


def test_compose_zero_weight_gives_the_other_adapter(adapters):
    a, b = adapters
    only_b = compose([a, b], [0.0, 1.0], "only_b")
    only_a = compose([a, b], [1.0, 0.0], "only_a")
    assert only_b.rank == only_a.rank == 12
    for m in only_b.modules():
        want_b = _delta(b, m)
        np.testing.assert_allclose(_delta(only_b, m), want_b, rtol=1e-6, atol=1e-9)
        if m + _A in a.tensors:
            np.testing.assert_allclose(_delta(only_a, m), _delta(a, m), rtol=1e-6, atol=1e-9)
        else:  # a does not target o_proj: its mixture leaves that module unchanged
            assert not _delta(only_a, m).any()
    # Weights need not sum to one and may be negative: still the exact weighted sum.
    odd = compose([a, b], [-1.5, 2.0], "odd")
    for m in odd.modules():
        np.testing.assert_allclose(_delta(odd, m), _expected([a, b], [-1.5, 2.0], m, _delta(odd, m).shape),
                                   rtol=1e-5, atol=1e-9)


# ---------------------------------------------------------------- disk format


def test_save_load_round_trip_and_version(adapters, tmp_path):
    a, b = adapters
    mix = compose([a, b], [0.7, 0.3], "mix")
    for adapter in (a, b, mix):
        folder = save_adapter(adapter, tmp_path / adapter.name)
        assert (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()
        back = load_adapter(folder)
        assert back.name == adapter.name  # default name: the folder name
        assert back.rank == adapter.rank and back.scaling == adapter.scaling
        assert back.target_modules == adapter.target_modules and back.base_model == adapter.base_model
        assert back.tensors.keys() == adapter.tensors.keys()
        assert all(np.array_equal(back.tensors[k], adapter.tensors[k]) for k in adapter.tensors)
        assert back.version == adapter.version
        cfg = json.loads((folder / CONFIG_FILE).read_text())
        assert cfg["peft_type"] == "LORA" and cfg["r"] == adapter.rank
        assert cfg["lora_alpha"] / cfg["r"] == adapter.scaling
    assert load_adapter(tmp_path / "a", name="renamed").name == "renamed"

    # Same content under another name (and another folder): same version.
    twin = make_adapter("twin", a.tensors, a.rank, a.scaling, a.target_modules)
    assert twin.version == a.version
    save_adapter(twin, tmp_path / "twin_dir")
    assert load_adapter(tmp_path / "twin_dir").version == a.version
    # One weight changed, or the scaling changed: another version.
    key = a.modules()[0] + _B
    changed = dict(a.tensors)
    changed[key] = changed[key].copy()
    changed[key][0, 0] += 1e-3
    assert make_adapter("a", changed, a.rank, a.scaling, a.target_modules).version != a.version
    assert make_adapter("a", a.tensors, a.rank, 1.0, a.target_modules).version != a.version
    assert mix.version not in (a.version, b.version)
    assert compose([a, b], [0.7, 0.31], "mix").version != mix.version


def test_load_rslora_scaling_and_resave(adapters, tmp_path):
    a, _ = adapters
    cfg = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "use_rslora": True, "target_modules": "q_proj"}
    q_only = {k: v for k, v in a.tensors.items() if ".q_proj." in k}
    _write_adapter(tmp_path / "rs", cfg, q_only)
    rs = load_adapter(tmp_path / "rs")
    assert rs.scaling == pytest.approx(16 / np.sqrt(8)) and rs.target_modules == ("q_proj",)
    back = load_adapter(save_adapter(rs, tmp_path / "rs_again"))  # written as plain LoRA, same scaling
    assert back.scaling == pytest.approx(rs.scaling, rel=1e-12) and back.rank == 8


# ---------------------------------------------------------------- agreement with peft


def test_composed_adapter_merges_like_peft_cat(tiny_model_dir, adapters, tmp_path):
    a, b = adapters
    dir_a, dir_b = save_adapter(a, tmp_path / "a"), save_adapter(b, tmp_path / "b")
    dir_mix = save_adapter(compose([a, b], [0.7, 0.3], "mix"), tmp_path / "mix")

    theirs, tok = _merged(tiny_model_dir, dir_a, dir_b, weights=[0.7, 0.3])
    ours, _ = _merged(tiny_model_dir, dir_mix)
    base, _, _ = load_model(tiny_model_dir)

    p_theirs, p_ours = dict(theirs.named_parameters()), dict(ours.named_parameters())
    p_base = dict(base.named_parameters())
    assert p_theirs.keys() == p_ours.keys() == p_base.keys()
    assert not any("lora" in k for k in p_ours)
    for k in p_base:
        assert torch.allclose(p_theirs[k], p_ours[k], atol=1e-6, rtol=0), k
    # The merge really changed the adapted projections (and only those).
    for k, weight in p_base.items():
        changed = not torch.equal(p_ours[k], weight)
        assert changed == any(f"self_attn.{proj}.weight" in k for proj in ("q_proj", "v_proj", "o_proj")), k

    l_theirs, l_ours, l_base = _logits(theirs, tok), _logits(ours, tok), _logits(base, tok)
    assert torch.allclose(l_theirs, l_ours, atol=1e-5, rtol=0)
    assert (l_ours - l_base).abs().max() > 1e-3


# ---------------------------------------------------------------- input checks


def _raises_naming(needle: str, fn, *args, **kwargs) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as info:
        fn(*args, **kwargs)
    assert needle in str(info.value), (needle, str(info.value))
    return info.value


GOOD_CFG = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}


@pytest.mark.parametrize("change", [
    {"use_dora": True}, {"rank_pattern": {"q_proj": 4}}, {"alpha_pattern": {"q_proj": 4}},
    {"peft_type": "IA3"}, {"lora_bias": True},
], ids=["dora", "rank_pattern", "alpha_pattern", "peft_type", "lora_bias"])
def test_load_refuses_unsupported_configs(adapters, tmp_path, change):
    a, _ = adapters
    folder = tmp_path / "bad"
    _write_adapter(folder, {**GOOD_CFG, **change}, a.tensors)
    err = _raises_naming(str(folder / CONFIG_FILE), load_adapter, folder)
    assert next(iter(change)) in err.reason or "IA3" in err.reason


def test_load_errors_name_the_path(adapters, tmp_path):
    a, _ = adapters
    empty = tmp_path / "empty"
    empty.mkdir()
    _raises_naming(str(empty), load_adapter, empty)
    _raises_naming(str(tmp_path / "missing"), load_adapter, tmp_path / "missing")
    only_cfg = tmp_path / "only_cfg"
    only_cfg.mkdir()
    (only_cfg / CONFIG_FILE).write_text(json.dumps(GOOD_CFG))
    _raises_naming(str(only_cfg), load_adapter, only_cfg)

    bad_json = tmp_path / "bad_json"
    _write_adapter(bad_json, GOOD_CFG, a.tensors)
    (bad_json / CONFIG_FILE).write_text("{not json")
    _raises_naming(str(bad_json / CONFIG_FILE), load_adapter, bad_json)

    bad_weights = tmp_path / "bad_weights"
    _write_adapter(bad_weights, GOOD_CFG, a.tensors)
    (bad_weights / WEIGHTS_FILE).write_bytes(b"\x00garbage")
    _raises_naming(str(bad_weights / WEIGHTS_FILE), load_adapter, bad_weights)

    # Tensors that disagree with the config: errors name the adapter (the folder name by default).
    no_b = tmp_path / "no_b_adapter"
    _write_adapter(no_b, GOOD_CFG, {k: v for k, v in a.tensors.items() if k != a.modules()[0] + _B})
    err = _raises_naming("no_b_adapter", load_adapter, no_b)
    assert a.modules()[0] in err.reason
    wrong_r = tmp_path / "wrong_r_adapter"
    _write_adapter(wrong_r, {**GOOD_CFG, "r": 4}, a.tensors)
    _raises_naming("wrong_r_adapter", load_adapter, wrong_r)


def test_compose_errors(adapters, tmp_path_factory):
    a, b = adapters
    _raises_naming("adapters", compose, [], [], "mix")
    _raises_naming("weights", compose, [a, b], [1.0], "mix")
    _raises_naming("weights", compose, [a, b], [1.0, float("nan")], "mix")
    _raises_naming("weights", compose, [a, b], [float("inf"), 1.0], "mix")
    # An adapter made for another model size: shared modules disagree on their shapes.
    other_dir = tmp_path_factory.mktemp("lora_other") / "small"
    init_model(other_dir, TinyModelConfig(hidden_size=32, num_layers=2, num_attention_heads=4, num_kv_heads=2,
                                          intermediate_size=64))
    small = random_adapter(other_dir, "small_adapter", rank=4)
    err = _raises_naming("small_adapter", compose, [a, small], [0.5, 0.5], "mix")
    assert "q_proj" in err.reason or "v_proj" in err.reason


def test_make_adapter_errors(adapters):
    a, _ = adapters
    m = a.modules()[0]
    nan = dict(a.tensors)
    nan[m + _A] = nan[m + _A].copy()
    nan[m + _A][1, 2] = np.nan
    err = _raises_naming("nan_adapter", make_adapter, "nan_adapter", nan, a.rank, a.scaling, a.target_modules)
    assert m + _A in err.reason
    inf = {**a.tensors, m + _B: np.full_like(a.tensors[m + _B], np.inf)}
    _raises_naming("inf_adapter", make_adapter, "inf_adapter", inf, a.rank, a.scaling, a.target_modules)

    no_b = {k: v for k, v in a.tensors.items() if k != m + _B}
    err = _raises_naming("no_b", make_adapter, "no_b", no_b, a.rank, a.scaling, a.target_modules)
    assert m in err.reason
    no_a = {k: v for k, v in a.tensors.items() if k != m + _A}
    _raises_naming("no_a", make_adapter, "no_a", no_a, a.rank, a.scaling, a.target_modules)

    _raises_naming("rank", make_adapter, "rank", a.tensors, 4, a.scaling, a.target_modules)
    short_b = {**a.tensors, m + _B: a.tensors[m + _B][:, :4]}  # B of rank 4 with A of rank 8
    _raises_naming("short_b", make_adapter, "short_b", short_b, a.rank, a.scaling, a.target_modules)
    flat = {**a.tensors, m + _A: a.tensors[m + _A].ravel()}
    _raises_naming("flat", make_adapter, "flat", flat, a.rank, a.scaling, a.target_modules)
    stray = {**a.tensors, "model.embed_tokens.weight": np.zeros((4, 4), np.float32)}
    _raises_naming("stray", make_adapter, "stray", stray, a.rank, a.scaling, a.target_modules)
    _raises_naming("empty", make_adapter, "empty", {}, a.rank, a.scaling, a.target_modules)


def test_random_adapter_unknown_target(tiny_model_dir):
    err = _raises_naming("target_modules", random_adapter, tiny_model_dir, "x", target_modules=("q_proj", "gate_proj"))
    assert "gate_proj" in err.reason
    _raises_naming(str(tiny_model_dir / "nope"), random_adapter, tiny_model_dir / "nope", "x")
    a1, a2 = random_adapter(tiny_model_dir, "x", seed=3), random_adapter(tiny_model_dir, "y", seed=3)
    assert a1.version == a2.version and random_adapter(tiny_model_dir, "x", seed=4).version != a1.version


@pytest.mark.parametrize(("change", "needle"), [
    ({"r": 0}, "r must be"), ({"r": "8"}, "r must be"), ({"r": True}, "r must be"),
    ({"lora_alpha": 1e300}, "scaling"), ({"lora_alpha": float("nan")}, "finite"), ({"lora_alpha": "16"}, "finite"),
], ids=["r0", "r-string", "r-bool", "alpha-1e300", "alpha-nan", "alpha-string"])
def test_load_refuses_degenerate_rank_and_alpha(adapters, tmp_path, change, needle):
    """An adapter registered with lora_alpha 1e300 used to be accepted and then poison every routed
    request with inf weights; r=0 was a ZeroDivisionError (HTTP 500)."""
    a, _ = adapters
    folder = tmp_path / "bad"
    _write_adapter(folder, {**GOOD_CFG, **change}, a.tensors)
    err = _raises_naming(str(folder / CONFIG_FILE), load_adapter, folder)
    assert needle in err.reason


def test_load_refuses_an_update_of_unbounded_norm(adapters, tmp_path):
    from serve_apps.adapters.lora import MAX_UPDATE_NORM

    a, _ = adapters
    m = a.modules()[0]
    norm = np.linalg.norm(_delta(a, m))
    assert 0 < norm < MAX_UPDATE_NORM
    # Finite weights and a normal alpha, but one module's update twice the bound.
    big = {k: (v * (2 * MAX_UPDATE_NORM / norm) if k == m + _B else v) for k, v in a.tensors.items()}
    folder = tmp_path / "huge"
    _write_adapter(folder, GOOD_CFG, big)
    err = _raises_naming(str(folder / WEIGHTS_FILE), load_adapter, folder)
    assert m in err.reason and f"{MAX_UPDATE_NORM:g}" in err.reason
    # The same adapter at its real size loads.
    ok = tmp_path / "ok"
    _write_adapter(ok, GOOD_CFG, a.tensors)
    assert load_adapter(ok).rank == 8
