"""``omnialign model init|extend``: build omni language-model folders (tiny local base, code tokens)."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("model", help="build omni language models: tiny local base, modality code tokens")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION", required=True)

    init = msub.add_parser("init", help="write a tiny random-init Qwen2 model + locally trained tokenizer")
    init.add_argument("--out", required=True, help="model folder to write")
    init.add_argument("--codebooks", help="codebook folder (`rvq fit`): add its code tokens too "
                                          "(without it: a text-only base for `model extend`)")
    init.add_argument("--time-markers", type=int, default=512, help="number of <|time_N|> chunk markers (default 512)")
    init.add_argument("--hidden-size", type=int, default=256)
    init.add_argument("--layers", type=int, default=2)
    init.add_argument("--heads", type=int, default=4)
    init.add_argument("--kv-heads", type=int, default=2)
    init.add_argument("--intermediate-size", type=int, default=512)
    init.add_argument("--text-vocab-size", type=int, default=1024, help="BPE target size (default 1024)")
    init.add_argument("--seed", type=int, default=0)
    init.set_defaults(func=run_init)

    ext = msub.add_parser("extend", help="add audio/video code tokens, time markers and delimiters to a local HF model")
    ext.add_argument("--base", required=True, help="local Hugging Face causal-LM folder")
    ext.add_argument("--codebooks", required=True, help="codebook folder written by `rvq fit`")
    ext.add_argument("--out", required=True, help="model folder to write")
    ext.add_argument("--time-markers", type=int, default=512, help="number of <|time_N|> chunk markers (default 512)")
    ext.set_defaults(func=run_extend)


def _describe(vocab) -> str:
    return (f"{vocab.num_tokens} omni tokens at ids {vocab.first_id}..{vocab.end_id - 1} "
            f"(audio {vocab.audio_quantizers}x{vocab.audio_codebook_size}, video {vocab.video_quantizers}x"
            f"{vocab.video_codebook_size}, {vocab.time_markers} time markers of {vocab.chunk_us / 1e6:g} s; "
            f"codebook_version {vocab.codebook_version})")


def run_init(args: argparse.Namespace) -> int:
    from engine.omni.model import TinyModelConfig, init_model

    config = TinyModelConfig(hidden_size=args.hidden_size, num_layers=args.layers, num_attention_heads=args.heads,
                             num_kv_heads=args.kv_heads, intermediate_size=args.intermediate_size,
                             text_vocab_size=args.text_vocab_size, seed=args.seed)
    vocab = init_model(args.out, config, codebooks=args.codebooks, time_markers=args.time_markers)
    print(f"wrote {args.out}: tiny Qwen2 ({config.num_layers} layers, hidden {config.hidden_size})"
          + (f", {_describe(vocab)}" if vocab else ", text only (add code tokens with `model extend`)"))
    return 0


def run_extend(args: argparse.Namespace) -> int:
    from engine.omni.model import extend_model

    vocab = extend_model(args.base, args.codebooks, args.out, time_markers=args.time_markers)
    print(f"wrote {args.out}: {_describe(vocab)}")
    return 0
