"""``omnialign model init`` / ``model extend`` end to end: real codebooks, real HF folders."""

from __future__ import annotations

import json

import torch

from engine.tokenize.compress import CompressionConfig
from engine.tokenize.features import RegionConfig
from engine.media.decode import MediaConfig, iter_segments
from engine.media.synth import SynthSpec
from engine.tokenize.tokenizer import Tokenizer, TokenizerConfig
from omnialign.cli import main


def test_init_then_extend(tmp_path, capsys, clip_factory):
    truth = clip_factory(SynthSpec(duration_s=2.0, speech=True, seed=11), "model_cli.mp4")
    segs = list(iter_segments(truth.path, MediaConfig(video_width=128, video_height=96)))
    config = TokenizerConfig(audio_quantizers=2, audio_codebook_size=8, video_quantizers=1, video_codebook_size=8,
                             region=RegionConfig(resize_height_px=48, resize_width_px=64, patch_px=16, dim=16),
                             compression=CompressionConfig(budget_tokens_per_s=30.0), max_fit_vectors=2_000)
    cb = Tokenizer.fit(segs, config).save(tmp_path / "cb")

    assert main(["model", "init", "--out", str(tmp_path / "base"), "--layers", "1"]) == 0
    assert "text only" in capsys.readouterr().out
    assert not (tmp_path / "base" / "omni_vocab.json").exists()

    assert main(["model", "extend", "--base", str(tmp_path / "base"), "--codebooks", str(cb),
                 "--out", str(tmp_path / "omni"), "--time-markers", "30"]) == 0
    out = capsys.readouterr().out
    assert "60 omni tokens" in out and "audio 2x8, video 1x8" in out  # 6 delimiters + 30 markers + 16 + 8
    layout = json.loads((tmp_path / "omni" / "omni_vocab.json").read_text())
    assert layout["end_id"] - layout["first_id"] == 60

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "omni", local_files_only=True)
    tok = AutoTokenizer.from_pretrained(tmp_path / "omni", local_files_only=True)
    assert model.config.num_hidden_layers == 1 and model.config.vocab_size == len(tok) == layout["end_id"]
    assert tok.encode("<|v0_7|>", add_special_tokens=False) == [layout["end_id"] - 1]
    ids = tok("<|time_0|>", return_tensors="pt")
    assert torch.equal(model.generate(**ids, max_new_tokens=3, do_sample=False),
                       model.generate(**ids, max_new_tokens=3, do_sample=False))

    capsys.readouterr()  # drop the loaders' progress output
    # Bad folders: one clear line, exit 1, no traceback.
    for argv, message in (
        (["model", "extend", "--base", str(tmp_path / "nope"), "--codebooks", str(cb), "--out", str(tmp_path / "x")],
         "not a Hugging Face model folder"),
        (["model", "extend", "--base", str(tmp_path / "base"), "--codebooks", str(tmp_path), "--out", str(tmp_path / "x")],
         "not a codebook folder"),
        (["model", "extend", "--base", str(tmp_path / "omni"), "--codebooks", str(cb), "--out", str(tmp_path / "x")],
         "already an omni model"),
        (["model", "init", "--out", str(tmp_path / "y"), "--codebooks", str(tmp_path / "nope")], "not a codebook folder"),
        (["model", "init", "--out", str(tmp_path / "y"), "--heads", "3"], "multiple"),
    ):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("omnialign: error:") and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
