"""``omnialign backfill``: fill an encoder column of a stored table from its keyframes."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("backfill", help="compute image_emb for stored rows from their keyframes (no re-ingest)")
    p.add_argument("--db", required=True, help="LanceDB folder")
    p.add_argument("--table", default="segments")
    p.add_argument("--encoder", default="efficientnet-lite0", help="efficientnet-lite0 or hf:<local folder>")
    p.add_argument("--force", action="store_true", help="recompute rows that already have an embedding")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.encode.backfill import backfill_image_emb
    from engine.encode.registry import build_image_encoder
    from engine.store.table import SegmentStore

    store = SegmentStore.open(args.db, args.table)
    res = backfill_image_emb(store, build_image_encoder(args.encoder), force=args.force)
    print(f"image_emb: {res.updated} rows filled by {args.encoder}; {res.without_keyframes} rows have no keyframe")
    return 0
