"""Stage 2, tokenize: segments in, RVQ codes with exact timestamps out.

Audio becomes log-mel frames, video becomes region features of the sampled frames; residual
vector quantization (k-means++/Lloyd codebooks, greedy or beam encoding) turns them into codes,
and compression keeps keyframes and merges runs of equal tokens without losing their times.

In: :class:`~engine.media.decode.Segment` (or its token view) and fitted codebooks.
Out: :class:`~engine.tokenize.tokenizer.SegmentTokens` — audio codes with time and duration,
video region codes with frame time and grid position, keyframe thumbnails, pooled embeddings.

Public names:
    tokenizer: Tokenizer, TokenizerConfig, SegmentTokens, FeatureNormalizer, pooled_embedding
    features: Features, FeatureExtractor, LogMelConfig, LogMelExtractor, RegionConfig, check_frames,
        RegionExtractor, HFEncoderExtractor
    rvq: ResidualVQ, RVQConfig, FitReport, bits_per_vector
    kmeans: kmeanspp, lloyd, nearest_codewords
    compress: CompressionConfig, VideoTokens, AudioTokens, select_keyframes, merge_regions,
        merge_audio_runs
    kernels.rvq_beam_cpu: encode_beam_lut (numba CPU beam-LUT encoder)
    kernels.rvq_triton: KernelConfig, DEFAULT_CONFIG, rvq_encode_fused (Triton GPU kernel)
"""
