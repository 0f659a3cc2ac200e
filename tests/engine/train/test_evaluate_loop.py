"""Retrieval metrics and the plain-torch stage 1 loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import InvalidInputError
from engine.train.config import HeadConfig, Stage1Config
from engine.train.evaluate import cosine_scores, first_relevant_ranks, recall_metrics
from engine.train.loop import Stage1State, anchor_recall, shuffled_batches, train_epoch
from tests.engine.train.synthetic import synthetic_pairs


def test_ranks_count_ties_against_the_query():
    s = np.array([[0.9, 0.1, 0.5], [0.2, 0.2, 0.2]])
    assert first_relevant_ranks(s, [{2}, {0}]).tolist() == [2, 3]
    assert first_relevant_ranks(s, [{1, 2}, {0, 1, 2}]).tolist() == [2, 1]
    with pytest.raises(InvalidInputError, match="relevant"):
        first_relevant_ranks(s, [{0}, set()])


def test_chance_matches_a_random_ranking():
    rng = np.random.default_rng(0)
    rel = [{0, 1, 2}] * 4000
    ranks = first_relevant_ranks(rng.random((4000, 50)), rel)
    m = recall_metrics(ranks, 50, rel)
    assert m["chance_R@1"] == pytest.approx(3 / 50)
    assert m["R@1"] == pytest.approx(m["chance_R@1"], abs=0.015)
    assert m["R@10"] == pytest.approx(m["chance_R@10"], abs=0.03)
    lo, hi = m["R@1_ci95"]
    assert lo < m["R@1"] < hi


def _train(pairs, epochs, seed=0, state=None, start=0):
    tr = pairs.split("train")
    cfg = Stage1Config(epochs=max(epochs, 1), batch_size=32, seed=seed)
    state = state or Stage1State.create(HeadConfig("image", "synthetic@0", tr.features.shape[1], hidden_dim=64), cfg)
    m = None
    for e in range(start, epochs):
        m = train_epoch(state, shuffled_batches(tr.features, tr.anchors, tr.groups(), 32, seed, e))
    return state, m


def test_stage1_learns_held_out_pairs():
    pairs = synthetic_pairs()
    ev = pairs.split("eval")
    fresh, _ = _train(pairs, 0)
    before = anchor_recall(fresh.head, ev.features, ev.anchors, k=1)
    state, m = _train(pairs, 30)
    after = anchor_recall(state.head, ev.features, ev.anchors, k=1)
    assert before < 0.1 and after > 0.8, (before, after)
    assert m["epoch"] == 30 and 0.01 <= m["temperature"] < 0.2


def test_a_resumed_run_equals_an_uninterrupted_one():
    pairs = synthetic_pairs(n=120)
    full, _ = _train(pairs, 6)
    half, _ = _train(pairs, 3)
    saved = half.state_dict()
    torch.manual_seed(123)  # the process state differs after a restart
    tr = pairs.split("train")
    resumed = Stage1State.create(HeadConfig("image", "synthetic@0", tr.features.shape[1], hidden_dim=64),
                                 Stage1Config(epochs=6, batch_size=32, seed=1))
    resumed.load_state_dict(saved)
    resumed, _ = _train(pairs, 6, state=resumed, start=3)
    for k, v in full.head.state_dict().items():
        torch.testing.assert_close(resumed.head.state_dict()[k], v)


def test_cosine_scores_are_cosines():
    q = np.array([[3.0, 0.0]])
    c = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]])
    np.testing.assert_allclose(cosine_scores(q, c), [[1.0, 0.0, -np.sqrt(0.5)]], atol=1e-6)
