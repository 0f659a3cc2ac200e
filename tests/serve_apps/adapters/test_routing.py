"""Modality-aware LoRA routing: gate, top-k, quantised mixtures, composition cache, shared registry, checks."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from engine.errors import InvalidInputError, OmniAlignError
from serve_apps.adapters.lora import compose, load_adapter, random_adapter, save_adapter
from serve_apps.adapters.routing import (
    BASE_ADAPTER,
    RouteDecision,
    Router,
    RouterConfig,
    RoutingTable,
    UnknownAdapterError,
    lora_int_id,
)


@pytest.fixture(scope="module")
def small_model_dir(tmp_path_factory):
    """The config of a model of hidden size 32 (all random_adapter needs to size an adapter for it)."""
    out = tmp_path_factory.mktemp("routing_small_model")
    cfg = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
    (out / "config.json").write_text(json.dumps(cfg))
    return out


@pytest.fixture(scope="module")
def folders(tiny_model_dir, tmp_path_factory):
    """Adapter folders by key: t1 (r8), t2 (r4), au (r4), vid (r4), t1_new (r8, other weights than t1)."""
    root = tmp_path_factory.mktemp("routing_adapters")
    specs = {"t1": (8, 1), "t2": (4, 2), "au": (4, 3), "vid": (4, 4), "t1_new": (8, 5)}
    return {key: save_adapter(random_adapter(tiny_model_dir, key, rank=rank, seed=seed), root / key)
            for key, (rank, seed) in specs.items()}


def _router(tiny_model_dir, tmp_path, **config) -> Router:
    return Router(tiny_model_dir, RouterConfig(work_dir=str(tmp_path / "work"), **config))


def _raises_naming(needle: str, fn, *args, **kwargs) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as info:
        fn(*args, **kwargs)
    assert needle in str(info.value), (needle, str(info.value))
    return info.value


# ---------------------------------------------------------------- gate, top-k, composition


def test_text_request_composes_weighted_mixture_and_caches_it(tiny_model_dir, folders, tmp_path):
    router = _router(tiny_model_dir, tmp_path)
    router.register("t1", folders["t1"], ["text"], prior=1.0)
    router.register("t2", folders["t2"], ["text"], prior=0.5)
    assert router.gate({"text": 7}) == {"t1": 1.0, "t2": 0.5}

    first = router.route({"text": 7})
    assert first.mixture == (("t1", 0.65), ("t2", 0.35))  # 2/3, 1/3 on a 0.05 grid
    assert first.composed and not first.cache_hit
    assert first.lora_name.startswith("mix-") and first.lora_name != BASE_ADAPTER
    assert 1 <= first.lora_int_id <= 2**31 - 1
    mixed = load_adapter(first.lora_path)
    t1, t2 = load_adapter(folders["t1"]), load_adapter(folders["t2"])
    assert mixed.rank == t1.rank + t2.rank == 12 and mixed.scaling == 1.0
    # Exactly the composition of the two adapters with the quantised weights (same content hash).
    assert mixed.version == compose([t1, t2], [0.65, 0.35], "x").version
    assert first.to_json()["mixture"] == first.mixture

    again = router.route({"text": 123})  # another token count, same shares
    assert again.cache_hit and again.composed
    assert (again.lora_int_id, again.lora_path, again.lora_name, again.mixture) == (
        first.lora_int_id, first.lora_path, first.lora_name, first.mixture)


def test_audio_heavy_request_prefers_audio_adapter(tiny_model_dir, folders, tmp_path):
    router = _router(tiny_model_dir, tmp_path / "k2", top_k=2)
    router.register("t1", folders["t1"], ["text"])
    router.register("au", folders["au"], ["audio"])
    assert router.gate({"text": 10, "audio": 90}) == pytest.approx({"t1": 0.1, "au": 0.9})
    two = router.route({"text": 10, "audio": 90})
    weights = dict(two.mixture)
    assert weights.keys() == {"t1", "au"} and weights["au"] > weights["t1"]
    assert weights == pytest.approx({"au": 0.9, "t1": 0.1}) and two.composed

    router1 = _router(tiny_model_dir, tmp_path / "k1", top_k=1)
    spec = router1.register("au", folders["au"], ["audio"])
    router1.register("t1", folders["t1"], ["text"])
    one = router1.route({"text": 10, "audio": 90})
    assert one.mixture == (("au", 1.0),) and one.lora_name == "au"
    assert not one.composed and not one.cache_hit
    assert one.lora_path == spec.path == str(folders["au"].resolve())
    assert one.lora_int_id == lora_int_id(spec.version) == router1.route({"audio": 1}).lora_int_id
    assert spec.version == load_adapter(folders["au"]).version
    # The same adapter in another router (other work_dir) gets the same id: ids follow contents.
    assert router.route(adapter="au").lora_int_id == one.lora_int_id


def test_no_matching_adapter_routes_to_base_without_adapter(tiny_model_dir, folders, tmp_path):
    router = _router(tiny_model_dir, tmp_path)
    router.register("vid", folders["vid"], ["video"])
    decision = router.route({"text": 50})
    assert decision == RouteDecision((), BASE_ADAPTER, 0, "")
    assert router.route(adapter=BASE_ADAPTER) == decision
    assert _router(tiny_model_dir, tmp_path).route({"text": 1}) == decision


def test_explicit_mixture_and_adapter(tiny_model_dir, folders, tmp_path):
    router = _router(tiny_model_dir, tmp_path, top_k=2)
    for name, key in (("a", "t1"), ("b", "t2"), ("c", "au")):
        router.register(name, folders[key], ["text"])

    given = router.route({"audio": 5}, mixture={"a": 0.7, "b": 0.3})  # overrides the gate
    assert given.mixture == (("a", 0.7), ("b", 0.3)) and given.composed
    a, b = load_adapter(folders["t1"]), load_adapter(folders["t2"])
    assert load_adapter(given.lora_path).version == compose([a, b], [0.7, 0.3], "x").version
    # Used as given (not normalised), rounded to weight_step; also overrides ``adapter``.
    assert router.route(mixture={"b": 0.8, "a": 0.8}).mixture == (("a", 0.8), ("b", 0.8))
    assert router.route(mixture={"a": 0.72, "b": 0.26}, adapter="c").mixture == (("a", 0.7), ("b", 0.25))
    assert router.route(mixture={"a": 0.699, "b": 0.301}).lora_path == given.lora_path
    assert router.route(mixture={"a": 1.0}).lora_name == "a"  # one adapter at weight 1: no composition

    with pytest.raises(UnknownAdapterError) as info:
        router.route(mixture={"a": 0.5, "nope": 0.5})
    err = info.value
    assert "nope" in str(err) and isinstance(err, KeyError) and isinstance(err, OmniAlignError)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is UnknownAdapterError and str(back) == str(err) and back.name == "nope"
    _raises_naming("top_k", router.route, mixture={"a": 0.4, "b": 0.3, "c": 0.3})
    _raises_naming("'a'", router.route, mixture={"a": float("nan"), "b": 0.5})
    _raises_naming("'b'", router.route, mixture={"a": 0.5, "b": "0.5"})

    single = router.route({"text": 5}, adapter="a")
    assert single.mixture == (("a", 1.0),) and single.lora_name == "a" and not single.composed
    assert single.lora_path == str(folders["t1"].resolve())
    base = router.route({"text": 5}, adapter="base")
    assert base.mixture == () and base.lora_name == BASE_ADAPTER
    with pytest.raises(UnknownAdapterError, match="ghost"):
        router.route({"text": 5}, adapter="ghost")


def test_min_weight_drops_small_shares(tiny_model_dir, folders, tmp_path):
    router = _router(tiny_model_dir, tmp_path / "drop", min_weight=0.1)
    router.register("t1", folders["t1"], ["text"])
    router.register("au", folders["au"], ["audio"])
    dropped = router.route({"text": 5, "audio": 95})  # t1 would get 0.05 < 0.1
    assert dropped.mixture == (("au", 1.0),) and dropped.lora_name == "au" and not dropped.composed

    keep_all = _router(tiny_model_dir, tmp_path / "keep", min_weight=0.0)
    keep_all.register("t1", folders["t1"], ["text"])
    keep_all.register("au", folders["au"], ["audio"])
    kept = keep_all.route({"text": 5, "audio": 95})
    assert kept.mixture == (("au", 0.95), ("t1", 0.05)) and kept.composed


# ---------------------------------------------------------------- cache and shared registry


def test_lru_cache_evicts_and_recreates_with_same_id(tiny_model_dir, folders, tmp_path):
    router = _router(tiny_model_dir, tmp_path, cache_size=1)
    router.register("a", folders["t1"], ["text"])
    router.register("b", folders["t2"], ["text"])
    first = router.route(mixture={"a": 0.7, "b": 0.3})
    assert os.path.isdir(first.lora_path) and not first.cache_hit
    second = router.route(mixture={"a": 0.5, "b": 0.5})
    assert second.lora_path != first.lora_path and second.lora_int_id != first.lora_int_id
    assert not os.path.exists(first.lora_path) and os.path.isdir(second.lora_path)

    again = router.route(mixture={"a": 0.7, "b": 0.3})
    assert not again.cache_hit and os.path.isdir(again.lora_path)
    assert (again.lora_int_id, again.lora_path, again.lora_name) == (first.lora_int_id, first.lora_path,
                                                                     first.lora_name)
    assert not os.path.exists(second.lora_path)
    assert router.route(mixture={"a": 0.7, "b": 0.3}).cache_hit


def test_registry_is_shared_between_routers(tiny_model_dir, folders, tmp_path):
    router_a = _router(tiny_model_dir, tmp_path)
    router_b = _router(tiny_model_dir, tmp_path)  # created before the registration
    router_b.register("t2", folders["t2"], ["text"])
    with pytest.raises(UnknownAdapterError):
        router_b.route(adapter="late")

    spec = router_a.register("late", folders["t1"], ["text"], prior=2.0)
    seen = router_b.route(adapter="late")
    assert seen.lora_name == "late" and seen.lora_int_id == lora_int_id(spec.version)
    assert seen.lora_path == str(folders["t1"].resolve())
    assert [s.name for s in router_b.adapters()] == [s.name for s in router_a.adapters()] == ["late", "t2"]
    assert json.loads((tmp_path / "work" / "registry.json").read_text())["late"]["prior"] == 2.0
    mix_before = router_b.route(mixture={"late": 0.5, "t2": 0.5})

    respec = router_a.register("late", folders["t1_new"], ["text"])
    assert respec.version != spec.version
    now = router_b.route(adapter="late")
    assert now.lora_int_id == lora_int_id(respec.version) != seen.lora_int_id
    assert now.lora_path == str(folders["t1_new"].resolve())
    # B drops its loaded copy of the old weights: the mixture is recomposed from the new ones.
    mix_after = router_b.route(mixture={"late": 0.5, "t2": 0.5})
    assert mix_after.lora_int_id != mix_before.lora_int_id and not mix_after.cache_hit
    new, t2 = load_adapter(folders["t1_new"]), load_adapter(folders["t2"])
    assert load_adapter(mix_after.lora_path).version == compose([new, t2], [0.5, 0.5], "x").version


def test_routing_table_registers_at_start(tiny_model_dir, folders, tmp_path):
    router = _router(tiny_model_dir, tmp_path)
    table = RoutingTable(({"name": "t1", "path": str(folders["t1"]), "modalities": ["text"]},
                          {"name": "au", "path": str(folders["au"]), "modalities": ["audio", "audio"], "prior": 0.5}))
    specs = table.apply(router)
    assert [s.name for s in specs] == ["t1", "au"]
    assert specs[1].modalities == ("audio",) and specs[1].prior == 0.5
    assert router.adapters() == sorted(specs, key=lambda s: s.name)


def test_unregister_removes_the_adapter_for_every_replica(tiny_model_dir, folders, tmp_path):
    router_a, router_b = _router(tiny_model_dir, tmp_path), _router(tiny_model_dir, tmp_path)
    router_a.register("t1", folders["t1"], ["text"])
    router_a.register("t2", folders["t2"], ["text"])
    assert router_b.route({"text": 3}).composed  # a mixture of both, before
    removed = router_b.unregister("t1")
    assert removed.name == "t1"
    assert [s.name for s in router_a.adapters()] == ["t2"]
    with pytest.raises(UnknownAdapterError):
        router_a.route(adapter="t1")
    after = router_a.route({"text": 3})  # the gate no longer sees it
    assert after.mixture == (("t2", 1.0),) and not after.composed
    with pytest.raises(UnknownAdapterError):
        router_a.unregister("t1")


def test_a_restarted_router_serves_exactly_the_registry(tiny_model_dir, folders, tmp_path):
    """The registry in ``work_dir`` is the state: a router started later on the same folder (the
    application restarted) has what was registered and not deleted, and a fresh folder has none."""
    first = _router(tiny_model_dir, tmp_path)
    for name in ("t1", "t2", "au"):
        first.register(name, folders[name], ["audio" if name == "au" else "text"])
    first.unregister("t2")
    again = _router(tiny_model_dir, tmp_path)
    assert [(s.name, s.modalities) for s in again.adapters()] == [("au", ("audio",)), ("t1", ("text",))]
    assert again.route(adapter="t1").lora_int_id == first.route(adapter="t1").lora_int_id
    fresh = Router(tiny_model_dir, RouterConfig(work_dir=str(tmp_path / "other")))
    assert fresh.adapters() == []


def test_the_served_model_name_is_reserved(tiny_model_dir, folders, tmp_path):
    router = _router(tiny_model_dir, tmp_path, reserved_names=("omni",))
    for name in ("omni", BASE_ADAPTER):
        _raises_naming("reserved", router.register, name, folders["t1"], ["text"])
    assert router.adapters() == []


# ---------------------------------------------------------------- input checks


def test_register_errors(tiny_model_dir, small_model_dir, folders, tmp_path):
    router = _router(tiny_model_dir, tmp_path)
    for bad in ("a/b", "", "x" * 65, "a b", ".."):
        _raises_naming("name", router.register, bad, folders["t1"], ["text"])
    err = _raises_naming("name", router.register, "base", folders["t1"], ["text"])
    assert "reserved" in err.reason
    router.register("x" * 64, folders["t1"], ["text"])  # 64 characters is fine
    router.register("ok-name_1.2", folders["t1"], ["text"])

    _raises_naming("modalities", router.register, "m", folders["t1"], ["image"])
    _raises_naming("modalities", router.register, "m", folders["t1"], [])
    _raises_naming("prior", router.register, "p", folders["t1"], ["text"], prior=-0.5)
    _raises_naming("prior", router.register, "p", folders["t1"], ["text"], prior=float("inf"))
    _raises_naming("prior", router.register, "p", folders["t1"], ["text"], prior=float("nan"))

    empty = tmp_path / "empty"
    empty.mkdir()
    _raises_naming(str(empty), router.register, "e", empty, ["text"])
    _raises_naming(str(tmp_path / "missing"), router.register, "e", tmp_path / "missing", ["text"])

    small = save_adapter(random_adapter(small_model_dir, "small", rank=4), tmp_path / "small")
    err = _raises_naming(str(small), router.register, "small", small, ["text"])
    assert "does not fit" in err.reason

    narrow = _router(tiny_model_dir, tmp_path / "narrow", max_lora_rank=4)
    err = _raises_naming(str(folders["t1"]), narrow.register, "t1", folders["t1"], ["text"])
    assert "max_lora_rank" in err.reason
    narrow.register("t2", folders["t2"], ["text"])  # rank 4 fits
    # Nothing invalid reached the registry.
    assert [s.name for s in router.adapters()] == ["ok-name_1.2", "x" * 64]
    assert [s.name for s in narrow.adapters()] == ["t2"]


def test_composed_rank_above_max_lora_rank(tiny_model_dir, folders, tmp_path):
    router = _router(tiny_model_dir, tmp_path, max_lora_rank=8)
    router.register("t1", folders["t1"], ["text"])  # rank 8
    router.register("t2", folders["t2"], ["text"], prior=0.5)  # rank 4
    _raises_naming("max_lora_rank", router.route, {"text": 3})
    _raises_naming("max_lora_rank", router.route, mixture={"t1": 0.5, "t2": 0.5})
    assert router.route(adapter="t1").lora_name == "t1"  # each alone is fine


@pytest.mark.parametrize("bad", [
    {"top_k": 0}, {"cache_size": 0}, {"weight_step": 0}, {"weight_step": 1.5}, {"min_weight": 1.0},
    {"min_weight": -0.1},
], ids=["top_k", "cache_size", "weight_step0", "weight_step_big", "min_weight1", "min_weight_neg"])
def test_router_config_rejects_bad_values(tmp_path, bad):
    with pytest.raises(InvalidInputError):
        RouterConfig(work_dir=str(tmp_path), **bad)


def test_gate_checks_and_empty_requests(tiny_model_dir, folders, tmp_path):
    router = _router(tiny_model_dir, tmp_path)
    router.register("t1", folders["t1"], ["text"])
    router.register("av", folders["au"], ["audio", "video"], prior=0.5)
    _raises_naming("image", router.gate, {"text": 3, "image": 2})
    _raises_naming("modalities", router.route, {"pixels": 1})
    assert router.gate({}) == {} and router.gate({"text": 0, "audio": -4}) == {}
    assert router.gate({"text": 2, "audio": 1, "video": 1}) == {"t1": 0.5, "av": 0.25}
    assert router.gate({"text": 5, "audio": -5}) == {"t1": 1.0, "av": 0.0}  # negative counts count as 0
    for empty in ({}, None, {"text": 0}):
        decision = router.route(empty)
        assert decision.mixture == () and decision.lora_name == BASE_ADAPTER


def test_lora_int_id_range_and_determinism(tiny_model_dir, folders, tmp_path):
    rng = np.random.default_rng(0)
    versions = ["", "0" * 16, "f" * 16, "7fffffff", "80000000"] + [f"{int(x):016x}" for x in rng.integers(0, 2**63, 200)]
    ids = [lora_int_id(v) for v in versions]
    assert all(isinstance(i, int) and 1 <= i <= 2**31 - 1 for i in ids)
    assert ids == [lora_int_id(v) for v in versions]
    assert len(set(ids)) == len(ids)
    # Composed adapters too: two independent routers give the same mixture the same id and name.
    r1, r2 = _router(tiny_model_dir, tmp_path / "one"), _router(tiny_model_dir, tmp_path / "two")
    decisions = []
    for router in (r1, r2):
        router.register("a", folders["t1"], ["text"])
        router.register("b", folders["t2"], ["text"])
        decisions.append(router.route(mixture={"a": 0.6, "b": 0.4}))
    assert decisions[0].lora_int_id == decisions[1].lora_int_id
    assert decisions[0].lora_name == decisions[1].lora_name
    assert decisions[0].lora_path != decisions[1].lora_path
    assert 1 <= decisions[0].lora_int_id <= 2**31 - 1


# ---------------------------------------------------------------- known bugs (strict xfail: remove the mark once fixed)


def test_register_refuses_k_o_adapter_of_another_model(tiny_model_dir, tmp_path):
    other = tmp_path / "other_model"
    other.mkdir()
    cfg = {"hidden_size": 32, "num_hidden_layers": 6, "num_attention_heads": 4, "num_key_value_heads": 2}
    (other / "config.json").write_text(json.dumps(cfg))
    ko = save_adapter(random_adapter(other, "ko", rank=4, target_modules=("k_proj", "o_proj")), tmp_path / "ko")
    _raises_naming(str(ko), _router(tiny_model_dir, tmp_path).register, "ko", ko, ["text"])


def test_registry_change_seen_even_with_equal_mtime(tiny_model_dir, folders, tmp_path):
    router_a, router_b = _router(tiny_model_dir, tmp_path), _router(tiny_model_dir, tmp_path)
    router_a.register("x", folders["t1"], ["text"])
    registry = tmp_path / "work" / "registry.json"
    before = registry.stat()
    old_id = router_b.route(adapter="x").lora_int_id
    new = router_a.register("x", folders["t1_new"], ["text"])
    os.utime(registry, ns=(before.st_atime_ns, before.st_mtime_ns))  # what a coarse filesystem clock gives
    assert router_b.route(adapter="x").lora_int_id == lora_int_id(new.version) != old_id


def test_single_gated_adapter_keeps_weight_one_for_any_step(tiny_model_dir, folders, tmp_path):
    try:
        router = _router(tiny_model_dir, tmp_path, top_k=1, weight_step=0.3)
    except InvalidInputError:  # refusing such a step is a fix too
        return
    router.register("t1", folders["t1"], ["text"])
    decision = router.route({"text": 3})
    assert decision.mixture == (("t1", 1.0),) and not decision.composed
