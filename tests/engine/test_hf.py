"""Model loads and saves draw no transformers progress bars; bars outside them still do."""

from __future__ import annotations


def test_loading_and_saving_a_model_draws_no_bar_and_bars_elsewhere_still_show(tiny_model_dir, tmp_path, capsys):
    from transformers.utils.logging import tqdm

    from engine.omni.model import load_model, save_model

    capsys.readouterr()
    model, tokenizer, vocab = load_model(tiny_model_dir)
    save_model(model, tokenizer, vocab, tmp_path / "copy")
    err = capsys.readouterr().err
    assert "Loading weights" not in err and "Writing model shards" not in err and "it/s]" not in err
    for _ in tqdm(range(2), desc="elsewhere"):
        pass
    assert "elsewhere" in capsys.readouterr().err  # the hook was scoped to the block
