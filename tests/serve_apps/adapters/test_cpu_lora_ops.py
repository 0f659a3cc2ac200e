"""omnialign's CPU multi-LoRA ops against vLLM's own torch ops (the reference), and the fix."""

from __future__ import annotations

import pytest
import torch
from vllm.lora.ops.torch_ops import lora_ops as reference

from serve_apps.adapters import cpu_lora_ops as lora_cpu

# vLLM's originals, captured before anything installs the plugin in this process.
REF = {name: getattr(reference, name) for name in ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice")}
assert all(f.__module__ == reference.__name__ for f in REF.values())


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    t, slots, rank, d_in, d_out = 37, 4, 16, 64, 96
    return {"x": torch.randn(t, d_in, generator=g), "h": torch.randn(t, rank, generator=g),
            "a": torch.randn(slots, 1, rank, d_in, generator=g), "b": torch.randn(slots, 1, d_out, rank, generator=g),
            "mixed": torch.randint(0, slots, (t,), generator=g), "one": torch.full((t,), 2)}


@pytest.mark.parametrize("which", ["mixed", "one"])
@pytest.mark.parametrize("squeeze", [False, True])  # vLLM passes [slots, 1, out, in] and [slots, out, in]
def test_ops_equal_vllms_where_every_token_has_an_adapter(batch, which, squeeze):
    idx = batch[which]
    a, b = (batch["a"].squeeze(1), batch["b"].squeeze(1)) if squeeze else (batch["a"], batch["b"])
    want, got = torch.zeros(len(idx), 16), torch.zeros(len(idx), 16)
    REF["bgmv_shrink"](batch["x"], a, want, idx, 0.5)
    lora_cpu.bgmv_shrink(batch["x"], a, got, idx, 0.5)
    torch.testing.assert_close(got, want)
    for add in (True, False):
        want = torch.randn(len(idx), 96)
        got = want.clone()
        REF["bgmv_expand"](batch["h"], b, want, idx, add)
        lora_cpu.bgmv_expand(batch["h"], b, got, idx, add)
        torch.testing.assert_close(got, want)
        want = torch.randn(len(idx), 200)
        got = want.clone()
        REF["bgmv_expand_slice"](batch["h"], b, want, idx, 50, 96, add)
        lora_cpu.bgmv_expand_slice(batch["h"], b, got, idx, 50, 96, add)
        torch.testing.assert_close(got, want)


def test_tokens_without_adapter_get_no_update(batch):
    idx = batch["mixed"].clone()
    idx[::3] = -1
    out = torch.randn(len(idx), 96)
    before = out.clone()
    lora_cpu.bgmv_expand(batch["h"], batch["b"], out, idx, True)
    assert torch.equal(out[::3], before[::3]) and not torch.equal(out[1::3], before[1::3])
    # vLLM's op applies the last slot to them: the bug these ops fix.
    ref = before.clone()
    REF["bgmv_expand"](batch["h"], batch["b"], ref, idx, True)
    assert not torch.equal(ref[::3], before[::3])
    shrunk = torch.ones(len(idx), 16)
    lora_cpu.bgmv_shrink(batch["x"], batch["a"], shrunk, torch.full((len(idx),), -1), 1.0)
    assert not shrunk.any()


def test_install_replaces_the_ops_vllms_cpu_wrapper_calls(monkeypatch):
    from vllm.lora.punica_wrapper import punica_cpu

    for module in (punica_cpu, reference):  # restored after the test
        for name in REF:
            monkeypatch.setattr(module, name, getattr(module, name))
    lora_cpu.install()
    lora_cpu.install()  # vLLM loads plugins once per process, possibly more: idempotent
    for module in (punica_cpu, reference):
        assert module.bgmv_shrink is lora_cpu.bgmv_shrink and module.bgmv_expand is lora_cpu.bgmv_expand
        assert module.bgmv_expand_slice is lora_cpu.bgmv_expand_slice


def test_fused_linear_adds_each_tokens_adapter_update_per_slice(batch):
    """add_lora_linear against its documented semantics, computed token by token."""
    from types import SimpleNamespace

    g = torch.Generator().manual_seed(1)
    t, slots, rank, d_in, slices = 37, 4, 16, 64, (48, 16, 16)  # e.g. a merged q/k/v projection
    x = torch.randn(t, d_in, generator=g)
    a = tuple(torch.randn(slots, 1, rank, d_in, generator=g) for _ in slices)
    b = tuple(torch.randn(slots, 1, size, rank, generator=g) for size in slices)
    for idx in (batch["mixed"].clone(), torch.full((t,), 1), torch.full((t,), -1)):
        idx[::5] = -1
        y = torch.randn(t, sum(slices))
        want = y.clone()
        for i in range(t):
            if idx[i] >= 0:
                want[i] += torch.cat([(x[i] @ a_[idx[i], 0].T * 0.5) @ b_[idx[i], 0].T for a_, b_ in zip(a, b)])
        lora_cpu.add_lora_linear(SimpleNamespace(token_lora_indices=idx), y, x, a, b, 0.5, slices)
        torch.testing.assert_close(y, want, rtol=1e-4, atol=1e-4)


def test_install_leaves_another_vllm_release_alone(monkeypatch, caplog):
    # Another vLLM release cannot be installed here; its version string is what the plugin reads.
    import vllm
    from vllm.lora.punica_wrapper import punica_cpu

    before = {name: getattr(reference, name) for name in REF} | {"linear": punica_cpu.PunicaWrapperCPU.add_lora_linear}
    monkeypatch.setattr(vllm, "__version__", "0.99.0")
    with caplog.at_level("WARNING", logger=lora_cpu.__name__):
        assert lora_cpu.install() is False
    after = {name: getattr(reference, name) for name in REF} | {"linear": punica_cpu.PunicaWrapperCPU.add_lora_linear}
    assert after == before
    msgs = [r.getMessage() for r in caplog.records if r.name == lora_cpu.__name__]
    assert len(msgs) == 1 and "0.99.0" in msgs[0] and lora_cpu.WRITTEN_FOR_VLLM in msgs[0]
