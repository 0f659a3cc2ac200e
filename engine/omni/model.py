"""Build omni language models: a tiny local Qwen2 base, and modality tokens added to any HF causal LM.

Two jobs, both fully offline (nothing is downloaded):

* :func:`build_tiny_base` makes a small random-init ``Qwen2ForCausalLM`` (an architecture vLLM
  serves natively) with a byte-level BPE tokenizer trained here on a built-in English corpus,
  ChatML chat template included. It exists so the whole serving path can be exercised without
  any pretrained weights; its text output is noise.
* :func:`add_omni_tokens` appends the modality tokens of an :class:`engine.omni.vocab.OmniVocab`
  (delimiters, time markers, one token per RVQ stage/code) to a model + tokenizer and resizes
  the embeddings. New rows are set to the **mean of the existing token embeddings**: a new token
  then starts as an "average" token, so the model's output distribution barely moves before
  training (random rows of the usual scale would dominate logits of an already-trained model),
  and the rows are reproducible without a seed.

:func:`init_model` and :func:`extend_model` are the folder-to-folder forms used by the CLI
(``omnialign model init|extend``). An omni model folder holds ``config.json``,
``model.safetensors``, the tokenizer files and ``omni_vocab.json``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path

from engine.errors import InvalidInputError
from engine.hf import no_progress_bars
from engine.omni.vocab import VOCAB_FILE, OmniVocab

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
#: ChatML (as Qwen's instruct models use): each message is ``<|im_start|>role\ncontent<|im_end|>\n``.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Built-in corpus for the tiny tokenizer: plain English about media and time, so common words and
# digits become single tokens. Sentences are combined below (seeded) to reach a few tens of KB.
_SENTENCES = (
    "The camera records a street at night while a car passes under the lights.",
    "A woman speaks softly and the audio track follows her voice a moment later.",
    "Two people talk in a kitchen; a door closes and someone laughs.",
    "The video shows a red ball rolling across a green table before it falls.",
    "Music starts with a low drum, then a guitar and a voice join in.",
    "At twelve seconds the scene cuts to a wide view of the city from above.",
    "The speaker says hello, asks a question and waits for the answer.",
    "Rain hits the window and a dog barks somewhere outside the house.",
    "Each segment lasts two seconds and carries its own time stamps.",
    "What happens in the first minute of the recording?",
    "Describe the sound you hear when the light turns on.",
    "The children count from one to ten: one, two, three, four, five, six, seven, eight, nine, ten.",
    "A clock shows 10:45 and the news anchor reads the weather for Monday.",
    "The model answers in short sentences and names the time of each event.",
    "Please summarize the clip, then list the people, places and objects in it.",
    "A bird sings, a bell rings three times, and the crowd starts to cheer.",
    "The picture is dark at first; after a flash everything becomes bright.",
    "He walks to the left of the frame, stops, and looks at the camera.",
    "The sound and the picture are out of sync by about half a second.",
    "Thank you for watching. See you next week with another story.",
)
_WORDS = ("time", "second", "minute", "frame", "voice", "music", "light", "color", "move", "stop", "start",
          "left", "right", "near", "far", "fast", "slow", "loud", "quiet", "before", "after", "during",
          "person", "room", "water", "window", "table", "car", "street", "night", "morning", "today")


@dataclass(frozen=True)
class TinyModelConfig:
    """A tiny random-init Qwen2 model and its locally trained tokenizer.

    Attributes:
        hidden_size: Model width.
        num_layers: Decoder layers.
        num_attention_heads: Query heads (head dim = hidden_size / num_attention_heads).
        num_kv_heads: Key/value heads (grouped-query attention, as in Qwen2).
        intermediate_size: MLP width.
        max_position_tokens: Longest sequence the model accepts, in tokens.
        text_vocab_size: Target size of the BPE text vocabulary (incl. the chat special tokens);
            the trained vocabulary can be smaller when the corpus has fewer distinct merges.
        seed: Seed of the weight init and of the corpus composition.
    """

    hidden_size: int = 256
    num_layers: int = 2
    num_attention_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 512
    max_position_tokens: int = 8192
    text_vocab_size: int = 1024
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_attention_heads", "num_kv_heads", "intermediate_size",
                     "max_position_tokens"):
            if getattr(self, name) < 1:
                raise InvalidInputError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_attention_heads or self.num_attention_heads % self.num_kv_heads:
            raise InvalidInputError("num_attention_heads", "hidden_size must be a multiple of the heads, "
                                                           "and the heads a multiple of the kv heads")
        if self.text_vocab_size < 300:  # 256 byte symbols + chat tokens + some merges
            raise InvalidInputError("text_vocab_size", f"must be >= 300, got {self.text_vocab_size}")


def builtin_corpus(seed: int = 0, n_lines: int = 400) -> list[str]:
    """Deterministic English training lines: the built-in sentences plus seeded recombinations."""
    rng = random.Random(seed)
    lines = list(_SENTENCES)
    for i in range(n_lines):
        words = rng.sample(_WORDS, 5)
        lines.append(f"At {i % 60} seconds the {words[0]} and the {words[1]} {words[2]}, "
                     f"then the {words[3]} comes {words[4]}. {rng.choice(_SENTENCES)}")
    return lines


def build_text_tokenizer(vocab_size: int = 1024, seed: int = 0):
    """Trains a byte-level BPE tokenizer on :func:`builtin_corpus`; returns a ``PreTrainedTokenizerFast``.

    Byte-level: any text (any language, any bytes) encodes without unknown tokens. The chat
    tokens are special; ``eos_token`` is ``<|im_end|>`` (end of a chat turn, as in Qwen instruct
    models) and ``pad_token`` is ``<|endoftext|>``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[ENDOFTEXT, IM_START, IM_END],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(builtin_corpus(seed), trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=IM_END, pad_token=ENDOFTEXT,
                                  clean_up_tokenization_spaces=False)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_base(config: TinyModelConfig | None = None):
    """A tiny random-init ``Qwen2ForCausalLM`` and its tokenizer; deterministic for a given config.

    Returns:
        (model, tokenizer); the model's vocabulary size equals ``len(tokenizer)``.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = config or TinyModelConfig()
    tok = build_text_tokenizer(config.text_vocab_size, config.seed)
    eos, pad = tok.convert_tokens_to_ids(IM_END), tok.convert_tokens_to_ids(ENDOFTEXT)
    qcfg = Qwen2Config(
        vocab_size=len(tok), hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_kv_heads, max_position_embeddings=config.max_position_tokens,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=eos, pad_token_id=pad,
    )
    # Seed a forked RNG so building a model never changes the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = Qwen2ForCausalLM(qcfg).eval()
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad, do_sample=False)
    return model, tok


def add_omni_tokens(model, tokenizer, vocab: OmniVocab) -> OmniVocab:
    """Appends ``vocab``'s tokens to ``tokenizer`` and resizes ``model``'s embeddings (mean init).

    Args:
        model: A Hugging Face causal LM (modified in place).
        tokenizer: Its fast tokenizer (modified in place).
        vocab: The layout; its ``first_id`` is ignored and set to ``len(tokenizer)``.

    Returns:
        The layout with ``first_id`` set to the id of the first added token.

    Raises:
        InvalidInputError: The tokenizer already holds omni tokens, or the added ids do not
            follow the layout (the base already had some of the strings).
    """
    import torch
    from transformers import AddedToken

    base_len = len(tokenizer)
    vocab = replace(vocab, first_id=base_len)
    tokens = vocab.tokens()
    if tokenizer.convert_tokens_to_ids(tokens[0]) not in (None, tokenizer.unk_token_id):
        raise InvalidInputError("tokenizer", f"already holds omni tokens ({tokens[0]})")
    # special=True: one id each, never split or normalized, dropped by skip_special_tokens.
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in tokens], special_tokens=True)
    ids = tokenizer.convert_tokens_to_ids(tokens)
    if ids != list(range(vocab.first_id, vocab.end_id)):
        raise InvalidInputError("tokenizer", "added tokens did not get consecutive ids after the base vocabulary")

    old_rows = model.get_input_embeddings().weight.shape[0]
    with torch.no_grad():
        in_mean = model.get_input_embeddings().weight[:base_len].mean(dim=0)
        out_emb = model.get_output_embeddings()
        tied = out_emb is not None and out_emb.weight is model.get_input_embeddings().weight
        out_mean = out_emb.weight[:base_len].mean(dim=0) if out_emb is not None and not tied else None
        if vocab.end_id > old_rows:  # a model with a padded vocabulary may already have room
            model.resize_token_embeddings(vocab.end_id, mean_resizing=False)
        model.get_input_embeddings().weight[vocab.first_id:vocab.end_id] = in_mean
        if out_mean is not None:
            model.get_output_embeddings().weight[vocab.first_id:vocab.end_id] = out_mean
    return vocab


def save_model(model, tokenizer, vocab: OmniVocab | None, out: str | Path) -> Path:
    """Writes model (safetensors), tokenizer and, for omni models, ``omni_vocab.json`` into ``out``."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    with no_progress_bars():
        model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    if vocab is not None:
        vocab.save(path)
    return path


def load_model(directory: str | Path):
    """Loads ``(model, tokenizer, vocab)`` from a local folder; vocab is None for a text-only model.

    Raises:
        InvalidInputError: Not a Hugging Face model folder, or it cannot be loaded.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(directory)
    if not (path / "config.json").is_file():
        raise InvalidInputError(str(path), "no config.json: not a Hugging Face model folder")
    try:  # local_files_only: a local folder, never the hub
        with no_progress_bars():
            model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(str(path), f"cannot load model/tokenizer: {first_line}") from exc
    vocab = OmniVocab.load(path) if (path / VOCAB_FILE).is_file() else None
    return model, tokenizer, vocab


def init_model(out: str | Path, config: TinyModelConfig | None = None, codebooks: str | Path | None = None,
               time_markers: int = 512) -> OmniVocab | None:
    """Writes a tiny base model to ``out``; with ``codebooks``, with the omni tokens already added.

    Returns:
        The omni layout, or None for a text-only base.
    """
    model, tok = build_tiny_base(config)
    vocab = None
    if codebooks is not None:
        vocab = add_omni_tokens(model, tok, OmniVocab.from_codebooks(codebooks, time_markers=time_markers))
    save_model(model, tok, vocab, out)
    return vocab


def extend_model(base: str | Path, codebooks: str | Path, out: str | Path, time_markers: int = 512) -> OmniVocab:
    """Adds the omni tokens of a codebook folder to the local HF causal LM in ``base``; writes ``out``.

    Raises:
        InvalidInputError: Bad base or codebook folder, or a base that already is an omni model.
    """
    layout = OmniVocab.from_codebooks(codebooks, time_markers=time_markers)  # check cheap input first
    if (Path(base) / VOCAB_FILE).is_file():
        raise InvalidInputError(str(base), f"already an omni model ({VOCAB_FILE} present)")
    model, tok, _ = load_model(base)
    vocab = add_omni_tokens(model, tok, layout)
    save_model(model, tok, vocab, out)
    return vocab
