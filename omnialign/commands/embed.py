"""``omnialign embed``: fill the anchor space of an ingested table with trained adapters (no re-ingest)."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("embed", help="embed stored rows into the text-anchored space with trained adapters "
                                     "(image_emb / audio_enc_emb -> anchors table), for any-to-any search")
    p.add_argument("--db", required=True, help="LanceDB folder")
    p.add_argument("--adapter", action="append", required=True, metavar="DIR",
                   help="adapter folder from `omnialign train stage1` (repeatable, one per modality)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.store.anchors import embed_store, install_adapter
    from engine.store.table import SegmentStore

    store = SegmentStore.open(args.db)
    for folder in args.adapter:
        adapter = install_adapter(args.db, folder)
        n = embed_store(store, adapter)
        print(f"{adapter.config.modality}: {n} rows embedded by adapter {adapter.name}")
    return 0
