"""Adapter files (safetensors + config + hash) and the LanceDB pairs table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.errors import InvalidInputError, ModelNotFoundError
from engine.train.adapter import CONFIG_FILE, WEIGHTS_FILE, load_adapter, save_adapter
from engine.train.config import HeadConfig
from engine.train.heads import ProjectionHead
from engine.train.pairs import PairSet, read_pairs, write_pairs
from tests.engine.train.synthetic import synthetic_pairs


def test_adapter_round_trips_and_names_its_hash(tmp_path):
    head = ProjectionHead(HeadConfig("audio", "whisper@1", in_dim=12, hidden_dim=8)).eval()
    digest = save_adapter(tmp_path, head, {"stage": 1})
    ad = load_adapter(tmp_path)
    assert ad.name == f"audio@{digest}" and ad.trained == {"stage": 1}
    x = np.random.default_rng(0).normal(size=(3, 12)).astype(np.float32)
    import torch

    with torch.no_grad():
        np.testing.assert_allclose(ad.embed(x), head(torch.from_numpy(x)).numpy(), atol=1e-6)
    with pytest.raises(InvalidInputError, match=r"\[N, 12\]"):
        ad.embed(x[:, :5])
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["config"]["encoder"] == "whisper@1"


def test_a_changed_or_missing_adapter_is_refused(tmp_path):
    save_adapter(tmp_path, ProjectionHead(HeadConfig("image", "e@1", in_dim=4, hidden_dim=4)))
    data = bytearray((tmp_path / WEIGHTS_FILE).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(InvalidInputError, match="hash"):
        load_adapter(tmp_path)
    with pytest.raises(ModelNotFoundError):
        load_adapter(tmp_path / "nothing")


def test_pairs_are_written_once_and_read_back(tmp_path):
    pairs = synthetic_pairs(n=20)
    write_pairs(tmp_path, pairs)
    write_pairs(tmp_path, pairs)  # a builder run twice: merge-insert, no duplicates
    back = read_pairs(tmp_path, "image")
    assert back.ids == pairs.ids and back.splits == pairs.splits and back.encoder == "synthetic@0"
    np.testing.assert_array_equal(back.features, pairs.features)
    np.testing.assert_array_equal(back.anchors, pairs.anchors)
    with pytest.raises(InvalidInputError, match="no audio pairs"):
        read_pairs(tmp_path, "audio")


def test_pair_sets_validate_and_group_equal_texts():
    a = np.zeros((2, 384), np.float32)
    with pytest.raises(InvalidInputError, match="unique"):
        PairSet("image", "e", ["x", "x"], ["a", "b"], ["train", "train"], np.zeros((2, 3)), a)
    with pytest.raises(InvalidInputError, match="split"):
        PairSet("image", "e", ["x", "y"], ["a", "b"], ["train", "test"], np.zeros((2, 3)), a)
    p = PairSet("image", "e", ["x", "y", "z"], ["Dog", "dog ", "cat"], ["train"] * 3, np.zeros((3, 3)),
                np.zeros((3, 384), np.float32))
    assert p.groups().tolist() == [0, 0, 1]
