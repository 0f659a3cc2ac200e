"""Omni models built offline: tiny Qwen2 base, code tokens from real fitted codebooks, prompt rendering."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from engine.tokenize.compress import CompressionConfig
from engine.errors import InvalidInputError
from engine.tokenize.features import RegionConfig
from engine.media.decode import MediaConfig, iter_segments
from engine.omni.model import (
    TinyModelConfig, add_omni_tokens, build_text_tokenizer, extend_model, init_model, load_model,
)
from engine.omni.vocab import DELIMITERS, CodeToken, OmniVocab
from engine.omni.prompt import RenderableSegment, parse_prompt, render_prompt
from engine.media.synth import SynthSpec
from engine.tokenize.tokenizer import Tokenizer, TokenizerConfig

SMALL = TokenizerConfig(
    audio_quantizers=2, audio_codebook_size=16, video_quantizers=3, video_codebook_size=8,
    region=RegionConfig(resize_height_px=48, resize_width_px=64, patch_px=16, dim=16), max_fit_vectors=5_000,
    compression=CompressionConfig(budget_tokens_per_s=30.0),
)
MARKERS = 16


@pytest.fixture(scope="module")
def codebooks(clip_factory, tmp_path_factory):
    """A real codebook folder fitted on a synthesized clip, and that clip's encoded segments."""
    truth = clip_factory(SynthSpec(duration_s=4.0, speech=True, seed=7), "omni.mp4")
    segs = list(iter_segments(truth.path, MediaConfig(video_width=128, video_height=96)))
    tok = Tokenizer.fit(segs, SMALL)
    folder = tok.save(tmp_path_factory.mktemp("omni_cb"))
    rows = []
    for seg in segs:
        t = tok.encode_segment(seg)
        rows.append(RenderableSegment(seg.t_start_us, seg.t_end_us, t.audio.codes, t.audio.t_us, t.video.codes,
                                      t.video.t_us, t.video.row, t.video.col, f"segment {seg.index} says hi",
                                      tok.codebook_version))
    return folder, tok, rows


@pytest.fixture(scope="module")
def models(codebooks, tmp_path_factory):
    """(text-only base dir, omni dir made by `init --codebooks`, omni dir made by `extend` on the base)."""
    folder = codebooks[0]
    root = tmp_path_factory.mktemp("models")
    assert init_model(root / "base") is None
    init_model(root / "init", codebooks=folder, time_markers=MARKERS)
    extend_model(root / "base", folder, root / "ext", time_markers=MARKERS)
    return root / "base", root / "init", root / "ext"


def test_init_is_deterministic_loads_and_generates(models, codebooks, tmp_path):
    _, init_dir, _ = models
    model, tok, vocab = load_model(init_dir)
    assert type(model).__name__ == "Qwen2ForCausalLM" and model.config.num_hidden_layers == 2
    assert model.get_input_embeddings().weight.shape[0] == model.config.vocab_size == len(tok) == vocab.end_id
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert "<|im_start|>assistant\n" in tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                                                 add_generation_prompt=True)
    ids = tok("the camera records", return_tensors="pt")
    a = model.generate(**ids, max_new_tokens=6, do_sample=False)
    b = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert a.shape[1] > ids["input_ids"].shape[1] and torch.equal(a, b)
    # Same seed, same folder bytes-for-tensors; another seed, other weights.
    init_model(tmp_path / "again", codebooks=codebooks[0], time_markers=MARKERS)
    w1, w2 = load_file(str(init_dir / "model.safetensors")), load_file(str(tmp_path / "again" / "model.safetensors"))
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)
    assert (init_dir / "tokenizer.json").read_text() == (tmp_path / "again" / "tokenizer.json").read_text()
    init_model(tmp_path / "seed1", TinyModelConfig(seed=1))
    w3 = load_file(str(tmp_path / "seed1" / "model.safetensors"))
    assert not torch.equal(w1["model.layers.0.mlp.up_proj.weight"], w3["model.layers.0.mlp.up_proj.weight"])


def test_every_omni_token_is_one_id_and_decodes_back(models, codebooks):
    _, init_dir, _ = models
    _, tok, vocab = load_model(init_dir)
    cb_tok = codebooks[1]
    assert vocab.codebook_version == cb_tok.codebook_version
    assert (vocab.audio_quantizers, vocab.audio_codebook_size, vocab.video_quantizers, vocab.video_codebook_size) == (2, 16, 3, 8)
    tokens = vocab.tokens()
    for i, token in enumerate(tokens):
        ids = tok.encode(token, add_special_tokens=False)
        assert ids == [vocab.first_id + i], token
        assert tok.decode(ids) == token
    # The arithmetic layout agrees with the tokenizer, and decode_id inverts code_id.
    for modality in ("audio", "video"):
        q, k = vocab.sizes(modality)
        for s in range(q):
            for c in range(k):
                tid = vocab.code_id(modality, s, c)
                assert tok.convert_ids_to_tokens(tid) == vocab.code_token(modality, s, c)
                assert vocab.decode_id(tid) == CodeToken(modality, s, c)
    assert vocab.decode_id(vocab.first_id) is None and vocab.decode_id(0) is None
    assert vocab.time_index(tok.convert_tokens_to_ids("<|time_5|>")) == 5
    # Text next to code tokens still round-trips exactly (byte-level BPE, no added spaces).
    text = "<|time_0|><|audio_start|><|a0_3|><|a1_15|><|audio_end|> Hello, wörld 12:30!"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    saved = json.loads((init_dir / "omni_vocab.json").read_text())
    assert saved["audio_first_id"] == vocab.code_id("audio", 0, 0) and saved["end_id"] == len(tok)


def test_extend_adds_exact_tokens_with_mean_rows(models):
    base_dir, init_dir, ext_dir = models
    base, base_tok, none = load_model(base_dir)
    ext, ext_tok, vocab = load_model(ext_dir)
    assert none is None
    added = 2 * 16 + 3 * 8 + MARKERS + len(DELIMITERS)
    assert vocab.num_tokens == added and len(ext_tok) == len(base_tok) + added
    assert vocab.first_id == len(base_tok) and ext.config.vocab_size == len(ext_tok)
    old = base.get_input_embeddings().weight.detach()
    new = ext.get_input_embeddings().weight.detach()
    assert new.shape == (old.shape[0] + added, old.shape[1])
    assert torch.equal(new[: old.shape[0]], old)  # original rows (= original ids) untouched
    assert torch.allclose(new[old.shape[0]:], old.mean(dim=0).expand(added, -1))
    assert old[:5].std() > 0 and not torch.allclose(old.mean(dim=0), old[0])  # the mean is not trivially a row
    sentence = "The speaker says hello at 12 seconds."
    assert ext_tok.encode(sentence) == base_tok.encode(sentence)
    # extend of the tiny base and init --codebooks are the same model.
    assert json.loads((ext_dir / "omni_vocab.json").read_text()) == json.loads((init_dir / "omni_vocab.json").read_text())
    w_init = load_file(str(init_dir / "model.safetensors"))
    assert torch.equal(w_init["model.embed_tokens.weight"], new)


def test_untied_output_rows_are_mean_initialised_too():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = build_text_tokenizer(400)
    torch.manual_seed(3)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False))
    head = model.lm_head.weight.detach().clone()
    vocab = add_omni_tokens(model, tok, OmniVocab("v1", 1, 4, 1, 4, time_markers=2))
    assert model.lm_head.weight.shape[0] == vocab.end_id == len(tok)
    assert torch.equal(model.lm_head.weight[: head.shape[0]], head)
    assert torch.allclose(model.lm_head.weight[vocab.first_id:], head.mean(dim=0).expand(vocab.num_tokens, -1))
    with pytest.raises(InvalidInputError, match="already holds omni tokens"):
        add_omni_tokens(model, tok, OmniVocab("v1", 1, 4, 1, 4, time_markers=2))


def test_extend_errors(models, codebooks, tmp_path):
    base_dir, init_dir, _ = models
    with pytest.raises(InvalidInputError, match="already an omni model"):
        extend_model(init_dir, codebooks[0], tmp_path / "x")
    with pytest.raises(InvalidInputError, match="not a Hugging Face model folder"):
        extend_model(tmp_path, codebooks[0], tmp_path / "x")
    with pytest.raises(InvalidInputError, match="not a codebook folder"):
        extend_model(base_dir, tmp_path, tmp_path / "x")
    with pytest.raises(InvalidInputError, match="not an omni model"):
        OmniVocab.load(base_dir)
    with pytest.raises(InvalidInputError, match="multiple"):
        TinyModelConfig(hidden_size=100, num_attention_heads=3)


# -- rendering -------------------------------------------------------------------------------------
VOCAB = OmniVocab("cbv", audio_quantizers=2, audio_codebook_size=10, video_quantizers=1, video_codebook_size=5,
                  time_markers=8, first_id=100)


def _row(t0, t1, a_codes, a_t, v_codes, v_t, text=None, version="cbv", row=None, col=None):
    return {"t_start_us": t0, "t_end_us": t1, "audio_codes": np.asarray(a_codes, np.int16).reshape(-1, 2),
            "audio_t_us": np.asarray(a_t, np.int64), "video_codes": np.asarray(v_codes, np.int16).reshape(-1, 1),
            "video_t_us": np.asarray(v_t, np.int64), "video_row": row if row is not None else [],
            "video_col": col if col is not None else [], "transcript": text, "codebook_version": version}


def test_render_interleaves_per_two_second_chunk_in_time_order():
    # One 4 s row (two chunks) with tokens out of time order, then a gap, then a 2 s row.
    r1 = _row(0, 4_000_000, [[1, 2], [3, 4], [5, 6]], [2_500_000, 100_000, 1_900_000],
              [[4], [2], [3]], [2_000_000, 0, 0], text="first words", row=[0, 0, 0], col=[0, 1, 0])
    r2 = _row(6_000_000, 8_000_000, [[9, 9]], [6_000_000], [], [], text=None)
    text = render_prompt([r2, r1], VOCAB)  # input order does not matter
    assert text == ("<|time_0|><|video_start|><|v0_3|><|v0_2|><|video_end|>"
                    "<|audio_start|><|a0_3|><|a1_4|><|a0_5|><|a1_6|><|audio_end|>"
                    "<|time_1|><|video_start|><|v0_4|><|video_end|><|audio_start|><|a0_1|><|a1_2|><|audio_end|>"
                    "<|text_start|>first words<|text_end|>"
                    "<|time_3|><|audio_start|><|a0_9|><|a1_9|><|audio_end|>")
    chunks = parse_prompt(text, VOCAB, origin_us=0)
    assert [c.index for c in chunks] == [0, 1, 3] and [c.t_start_us for c in chunks] == [0, 2_000_000, 6_000_000]
    assert chunks[0].audio_codes.tolist() == [[3, 4], [5, 6]] and chunks[0].video_codes.tolist() == [[3], [2]]
    assert chunks[1].text == "first words" and chunks[0].text is None
    assert chunks[2].video_codes.shape == (0, 1)
    # An origin before the rows shifts every marker; a covered chunk without tokens keeps its marker.
    shifted = render_prompt([_row(2_000_000, 4_000_000, [], [], [], [], text="quiet")], VOCAB, origin_us=0)
    assert shifted == "<|time_1|><|text_start|>quiet<|text_end|>"


def test_render_round_trips_real_codes_through_the_model_tokenizer(models, codebooks):
    _, init_dir, _ = models
    _, tok, vocab = load_model(init_dir)
    rows = codebooks[2]
    assert sum(len(r.audio_codes) + len(r.video_codes) for r in rows) > 20
    text = render_prompt(rows, vocab)
    ids = tok.encode(text, add_special_tokens=False)
    decoded = tok.decode(ids)
    assert decoded == text
    chunks = parse_prompt(decoded, vocab, origin_us=rows[0].t_start_us)
    assert len(chunks) == len(rows)  # 2 s segments = 2 s chunks
    for row, chunk in zip(rows, chunks):
        assert chunk.t_start_us == row.t_start_us and chunk.text == row.transcript
        np.testing.assert_array_equal(chunk.audio_codes, row.audio_codes[np.argsort(row.audio_t_us, kind="stable")])
        v_order = np.lexsort((np.arange(len(row.video_t_us)), row.video_col, row.video_row, row.video_t_us))
        np.testing.assert_array_equal(chunk.video_codes, row.video_codes[v_order])
    # A stored row (duck-typed, no conversion by the caller) renders the same as its plain form.
    from engine.store.table import SegmentRow

    r = rows[0]
    stored = SegmentRow("s", 0, r.t_start_us, r.t_end_us, audio_codes=r.audio_codes.astype(np.int16),
                        audio_t_us=r.audio_t_us, video_codes=r.video_codes.astype(np.int16), video_t_us=r.video_t_us,
                        video_row=r.video_row, video_col=r.video_col, transcript=r.transcript,
                        codebook_version=r.codebook_version)
    assert render_prompt([stored], vocab) == render_prompt([r], vocab)
    # Code tokens as ids map back to the same codes.
    codes = [vocab.decode_id(i) for i in ids if vocab.decode_id(i) is not None]
    assert sum(c.modality == "audio" for c in codes) == 2 * sum(len(r.audio_codes) for r in rows)


def test_render_refuses_what_the_vocabulary_cannot_hold():
    ok = _row(0, 2_000_000, [[1, 2]], [0], [[1]], [0])
    with pytest.raises(InvalidInputError, match="outside the vocabulary"):
        render_prompt([{**ok, "audio_codes": np.array([[1, 10]])}], VOCAB)
    with pytest.raises(InvalidInputError, match="outside the vocabulary"):
        render_prompt([{**ok, "video_codes": np.array([[-1]])}], VOCAB)
    with pytest.raises(InvalidInputError, match="stages"):
        render_prompt([{**ok, "audio_codes": np.array([[1, 2, 3]])}], VOCAB)
    with pytest.raises(InvalidInputError, match="codebook_version"):
        render_prompt([{**ok, "codebook_version": "other"}], VOCAB)
    with pytest.raises(InvalidInputError, match="time markers"):
        render_prompt([ok, _row(16_000_000, 18_000_000, [], [], [], [])], VOCAB)
    with pytest.raises(InvalidInputError, match="special-token"):
        render_prompt([{**ok, "transcript": "say <|a0_1|>"}], VOCAB)
    with pytest.raises(InvalidInputError, match="before origin"):
        render_prompt([{**ok, "audio_t_us": np.array([-5])}], VOCAB)
    with pytest.raises(InvalidInputError, match="outside the vocabulary"):
        parse_prompt("<|time_0|><|audio_start|><|a0_11|><|a1_0|><|audio_end|>", VOCAB)
    with pytest.raises(InvalidInputError, match="expected audio stage 1"):
        parse_prompt("<|time_0|><|audio_start|><|a0_1|><|a0_1|><|audio_end|>", VOCAB)
    with pytest.raises(InvalidInputError, match="time marker"):
        parse_prompt("hello", VOCAB)
    assert render_prompt([], VOCAB) == "" and parse_prompt("", VOCAB) == []
    # A row without codes needs no codebook version (text-only rows).
    assert render_prompt([_row(0, 1, [], [], [], [], text="t", version="")], VOCAB).endswith("t<|text_end|>")
