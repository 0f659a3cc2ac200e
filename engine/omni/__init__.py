"""Stage 6, omni: RVQ codes and text in, prompts for the omni language model out.

The omni LM's vocabulary holds one token per (modality, RVQ stage, code), time markers and
modality delimiters; this stage builds or extends such a model and renders segments and chat
messages into one chunked prompt that parses back exactly.

In: stored segment codes, chat messages with media parts, a codebook version.
Out: token-id prompts, :class:`~engine.omni.vocab.OmniVocab` (``omni_vocab.json``), local HF
model folders.

Public names:
    vocab: OmniVocab, CodeToken, DELIMITERS, VOCAB_FILE
    model: TinyModelConfig, init_model, extend_model, load_model, save_model
    prompt: RenderableSegment, ParsedChunk, render_prompt, parse_prompt, SPECIAL_TOKEN_RE
    chat: ChatContext, render_messages, render_content, modality_counts, SegmentNotFoundError
"""
