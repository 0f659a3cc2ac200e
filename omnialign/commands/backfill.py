"""``omnialign backfill``: fill an encoder column of a stored table (keyframes or re-decoded audio)."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("backfill", help="compute image_emb (from stored keyframes) or audio_enc_emb (from the sources' "
                                        "audio) for stored rows, without re-ingesting")
    p.add_argument("--db", required=True, help="LanceDB folder")
    p.add_argument("--table", default="segments")
    p.add_argument("--column", choices=("image_emb", "audio_enc_emb"), default="image_emb")
    p.add_argument("--encoder", help="image_emb: efficientnet-lite0 (default) or hf:<local folder>; "
                                     "audio_enc_emb: whisper-tiny.en (default) or whisper:<CTranslate2 folder>")
    p.add_argument("--force", action="store_true", help="recompute rows that already have an embedding")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.store.table import SegmentStore

    store = SegmentStore.open(args.db, args.table)
    if args.column == "audio_enc_emb":
        from engine.encode.audio import DEFAULT_AUDIO_ENCODER, build_audio_encoder
        from engine.encode.backfill import backfill_audio_enc_emb

        name = args.encoder or DEFAULT_AUDIO_ENCODER
        res = backfill_audio_enc_emb(store, build_audio_encoder(name), force=args.force)
        print(f"audio_enc_emb: {res.updated} rows filled by {name}; {res.unavailable} rows' audio is not available")
        return 0
    from engine.encode.backfill import backfill_image_emb
    from engine.encode.registry import build_image_encoder

    name = args.encoder or "efficientnet-lite0"
    res = backfill_image_emb(store, build_image_encoder(name), force=args.force)
    print(f"image_emb: {res.updated} rows filled by {name}; {res.without_keyframes} rows have no keyframe")
    return 0
