"""Projection heads, the anchor loss and the code encoder's time embedding."""

from __future__ import annotations

import math

import pytest
import torch

from engine.errors import InvalidInputError
from engine.train.code_encoder import CodeEncoder, CodeEncoderConfig
from engine.train.config import AnchorLossConfig, HeadConfig, Stage1Config
from engine.train.heads import ProjectionHead, trainable_parameters
from engine.train.losses import AnchorLoss


def test_head_outputs_unit_vectors_of_the_anchor_width():
    head = ProjectionHead(HeadConfig("image", "enc@1", in_dim=20, hidden_dim=8))
    z = head(torch.randn(5, 20))
    assert z.shape == (5, 384)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(5))
    assert trainable_parameters(head) == 20 * 2 + 20 * 8 + 8 + 8 * 384 + 384 + 20 * 384


@pytest.mark.parametrize("kwargs, field", [({"modality": "smell"}, "modality"), ({"encoder": ""}, "encoder"),
                                           ({"in_dim": 0}, "in_dim"), ({"dropout": 1.0}, "dropout")])
def test_head_config_names_the_bad_field(kwargs, field):
    with pytest.raises(InvalidInputError, match=field):
        HeadConfig(**{"modality": "image", "encoder": "e@1", "in_dim": 4, **kwargs})


def test_stage_configs_validate():
    with pytest.raises(InvalidInputError, match="temperature"):
        AnchorLossConfig(temperature_init=0.005)
    with pytest.raises(InvalidInputError, match="batch_size"):
        Stage1Config(batch_size=0)


def test_anchor_loss_prefers_matched_pairs_and_starts_at_temperature_0_07():
    loss = AnchorLoss()
    assert loss.temperature == pytest.approx(0.07)
    a = torch.nn.functional.normalize(torch.randn(16, 384), dim=1)
    matched = loss(a, a)
    shuffled = loss(a, a.roll(1, dims=0))
    assert matched < 0.1 < math.log(16) < shuffled
    # A learnable temperature: it gets a gradient.
    matched.backward()
    assert loss.log_temperature.grad is not None and loss.log_temperature.grad != 0


def test_rows_of_one_group_are_not_each_others_negatives():
    loss = AnchorLoss()
    a = torch.nn.functional.normalize(torch.randn(2, 384), dim=1)
    z = torch.stack([a[0], a[0], a[1]])  # rows 0 and 1 share a text
    anchors = torch.stack([a[0], a[0], a[1]])
    grouped = loss(z, anchors, torch.tensor([0, 0, 1]))
    ungrouped = loss(z, anchors)
    assert grouped < 0.01 < ungrouped  # without groups the twin is a hard negative


def test_code_encoder_sees_time_not_index():
    torch.manual_seed(0)
    enc = CodeEncoder(CodeEncoderConfig(n_levels=2, codebook_size=16, d_model=32, n_layers=1, n_heads=2)).eval()
    codes = torch.randint(0, 16, (1, 6, 2))
    t = torch.arange(6)[None] * 40_000
    base = enc(codes, t)
    # The same tokens cut later in the stream (absolute time moved): the same window.
    torch.testing.assert_close(enc(codes, t + 3_600_000_000), base, atol=1e-5, rtol=0)
    # The same tokens at another rate (80 ms apart): another window, same index positions.
    assert (enc(codes, 2 * t) - base).abs().max() > 1e-3
    assert base.shape == (1, 384)


def test_code_encoder_ignores_padding_and_checks_shapes():
    torch.manual_seed(0)
    enc = CodeEncoder(CodeEncoderConfig(n_levels=2, codebook_size=16, d_model=32, n_layers=1, n_heads=2)).eval()
    codes = torch.randint(0, 16, (1, 4, 2))
    t = torch.arange(4)[None] * 40_000
    padded = torch.cat([codes, torch.zeros(1, 2, 2, dtype=torch.long)], 1)
    pad = torch.tensor([[False] * 4 + [True] * 2])
    torch.testing.assert_close(enc(padded, torch.arange(6)[None] * 40_000, pad), enc(codes, t), atol=1e-5, rtol=0)
    with pytest.raises(InvalidInputError, match="codes"):
        enc(codes[..., :1], t)
