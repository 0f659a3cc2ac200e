"""Stage 1 on a real local Ray Train: pairs from LanceDB through Ray Data, checkpoints, a Train
worker killed mid-run (resumes from its checkpoint), a stopped run resumed by its name."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from actors.train import TrainRunConfig, fit_stage1
from engine.errors import InvalidInputError
from engine.train.adapter import load_adapter
from engine.train.config import HeadConfig, Stage1Config
from engine.train.loop import anchor_recall
from engine.train.pairs import write_pairs
from tests.engine.train.synthetic import synthetic_pairs

EPOCHS = 10


@pytest.fixture(scope="module")
def pairs_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("pairs")
    pairs = synthetic_pairs(n=240)
    write_pairs(db, pairs)
    return db, pairs


def _head(pairs):
    return HeadConfig("image", pairs.encoder, pairs.features.shape[1], hidden_dim=64)


def _eval_recall(adapter_dir, pairs):
    ev = pairs.split("eval")
    return anchor_recall(load_adapter(adapter_dir).head, ev.features, ev.anchors, k=1)


def test_stage1_trains_resumes_after_a_killed_worker_and_by_name(ray_local, pairs_db, tmp_path):
    db, pairs = pairs_db
    stage1 = Stage1Config(epochs=EPOCHS, batch_size=32, seed=3)
    # Uninterrupted reference run.
    ref = fit_stage1(db, _head(pairs), stage1, TrainRunConfig(name="ref", storage_path=str(tmp_path / "runs")),
                     tmp_path / "ref")
    assert ref.restored_epoch == 0 and ref.metrics["epoch"] == EPOCHS
    ref_recall = _eval_recall(ref.adapter_dir, pairs)
    assert ref_recall > 0.5

    # The same run, its Train worker SIGKILLed after epoch 5 (checkpoints every 2 epochs).
    progress = tmp_path / "progress.json"
    killed: list[int] = []

    def kill_after_epoch_5():
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                p = json.loads(progress.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                p = {}
            if p.get("epoch", 0) >= 5:
                os.kill(p["pid"], signal.SIGKILL)
                killed.append(p["epoch"])
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_after_epoch_5, daemon=True)
    killer.start()
    run = TrainRunConfig(name="killed", storage_path=str(tmp_path / "runs"), max_failures=2)
    res = fit_stage1(db, _head(pairs), stage1, run, tmp_path / "killed", progress_file=str(progress),
                     epoch_sleep_s=0.5)
    killer.join(1)
    assert killed, "the worker was never killed"
    assert 2 <= res.restored_epoch <= killed[0], (res.restored_epoch, killed)  # resumed from a checkpoint
    assert res.metrics["epoch"] == EPOCHS
    # Ends within tolerance of the uninterrupted seeded run (Ray Data's shuffle differs after a
    # restart, so equal up to noise, not bit for bit).
    assert abs(_eval_recall(res.adapter_dir, pairs) - ref_recall) <= 0.1

    # Running the finished run's name again resumes it: nothing is retrained.
    again = fit_stage1(db, _head(pairs), stage1, run, tmp_path / "again")
    assert again.restored_epoch == EPOCHS
    assert _eval_recall(again.adapter_dir, pairs) == pytest.approx(_eval_recall(res.adapter_dir, pairs), abs=0.02)


def test_fit_refuses_pairs_of_another_encoder_or_width(ray_local, pairs_db, tmp_path):
    db, pairs = pairs_db
    run = TrainRunConfig(name="bad", storage_path=str(tmp_path))
    with pytest.raises(InvalidInputError, match="synthetic@0"):
        fit_stage1(db, HeadConfig("image", "other@1", pairs.features.shape[1]), Stage1Config(), run, tmp_path / "a")
    with pytest.raises(InvalidInputError, match="-d"):
        fit_stage1(db, HeadConfig("image", pairs.encoder, 7), Stage1Config(), run, tmp_path / "a")
    with pytest.raises(InvalidInputError, match="no audio pairs"):
        fit_stage1(db, HeadConfig("audio", pairs.encoder, 7), Stage1Config(), run, tmp_path / "a")


def test_run_config_validates():
    with pytest.raises(InvalidInputError, match="name"):
        TrainRunConfig(name="a/b", storage_path="/tmp")
    with pytest.raises(InvalidInputError, match="num_workers"):
        TrainRunConfig(name="a", storage_path="/tmp", num_workers=0)
