"""``omnialign train pairs`` / ``stage1`` on real photographs (EfficientNet-Lite0, MiniLM)."""

from __future__ import annotations

import json

import pytest

from benchmarks.data.pictures import skimage_pictures
from engine.train.adapter import load_adapter
from engine.train.pairs import read_pairs
from omnialign.cli import main

TITLES = {"chelsea": "a cat", "coffee": "a cup of coffee", "rocket": "a rocket", "astronaut": "an astronaut",
          "motorcycle_left": "a motorcycle", "motorcycle_right": "a motorcycle", "brick": "a brick wall",
          "moon": "the moon"}


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    pics = skimage_pictures(log=lambda *_: None)
    path = tmp_path_factory.mktemp("items") / "items.jsonl"
    lines = [json.dumps({"path": str(pics[n]), "text": t, "split": "eval" if i % 4 == 3 else "train"})
             for i, (n, t) in enumerate(TITLES.items())]
    path.write_text("\n".join(lines + [json.dumps({"path": "/nonexistent.png", "text": "nothing"})]) + "\n")
    return path


def test_pairs_then_stage1_write_an_adapter(ray_local, items, tmp_path, capsys):
    db = tmp_path / "pairs"
    assert main(["train", "pairs", "--pairs-db", str(db), "--modality", "image", "--items", str(items)]) == 0
    out = capsys.readouterr().out
    assert "left out: /nonexistent.png" in out and "8 pairs (2 eval)" in out
    pairs = read_pairs(db, "image")
    assert pairs.features.shape == (8, 1280) and pairs.encoder.startswith("efficientnet-lite0@")
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"hidden_dim": 32, "batch_size": 8}))
    assert main(["train", "stage1", "--pairs-db", str(db), "--modality", "image", "--out", str(tmp_path / "ad"),
                 "--name", "cli", "--storage", str(tmp_path / "runs"), "--config", str(cfg), "--epochs", "2"]) == 0
    ad = load_adapter(tmp_path / "ad")
    assert ad.config.hidden_dim == 32 and ad.config.encoder == pairs.encoder
    assert ad.trained["epoch"] == 2 and ad.embed(pairs.features).shape == (8, 384)
    assert f"image adapter {ad.hash}" in capsys.readouterr().out


def test_bad_inputs_are_named(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"path": "x.png"}\n')
    assert main(["train", "pairs", "--pairs-db", str(tmp_path), "--modality", "image", "--items", str(bad)]) == 1
    assert f"{bad}:1" in capsys.readouterr().err
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"learning_rate": 1}')
    assert main(["train", "stage1", "--pairs-db", str(tmp_path), "--modality", "image", "--out", str(tmp_path / "o"),
                 "--name", "n", "--storage", str(tmp_path), "--config", str(cfg)]) == 1
    assert "unknown keys ['learning_rate']" in capsys.readouterr().err
