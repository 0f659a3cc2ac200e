"""Stage 7, train: learned alignment into the frozen MiniLM text space (pure torch, no Ray).

Global anchoring first: each modality's adapter maps its frozen encoder's features into the
anchor space with a symmetric InfoNCE loss against the anchor embeddings of paired text. Nothing
trainable is shared between modalities, so a new adapter never changes an existing one, and any
two modalities meet in the anchor space (retrieval between them needs no pairs of the two).
Ray Train wiring lives in :mod:`actors.train`.

Local losses: masked reconstruction of RVQ audio codes conditioned on the video's region codes,
with time embeddings from µs timestamps; its loss against an artificial A/V shift is a learned
sync score (:mod:`engine.train.shift_curve`).

In: pairs of frozen features and texts (files through the product's encoders, or stored rows).
Out: adapter folders (safetensors, config, content hash) that embed features into the space.

Public names:
    config: HeadConfig, AnchorLossConfig, Stage1Config, ANCHOR_DIM
    heads: ProjectionHead, trainable_parameters
    code_encoder: CodeEncoder, CodeEncoderConfig, TimeEmbedding
    losses: AnchorLoss
    pairs: PairSet, write_pairs, read_pairs, pairs_uri
    builders: PairItem, build_pairs, feature_extractor
    adapter: Adapter, save_adapter, load_adapter
    loop: Stage1State, train_epoch, shuffled_batches, anchor_recall
    evaluate: first_relevant_ranks, recall_metrics, cosine_scores
    code_streams: CodeStreams, code_streams
    windows: WindowConfig, start_range_us, span_mask, cut_window, collate
    masked: MaskedConfig, MaskedCodeModel
    shift_curve: MaskedTrainConfig, train_masked, shift_curve, curve_offset_us, token_us
"""
