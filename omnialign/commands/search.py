"""``omnialign search``: text (hybrid), audio, image or time queries over an ingested table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omnialign.commands.common import print_table


def register(sub) -> None:
    p = sub.add_parser("search", help="search ingested segments by text, audio, image or time")
    p.add_argument("--db", required=True, help="LanceDB folder")
    q = p.add_mutually_exclusive_group()
    q.add_argument("--text", help="text query: MiniLM vector + full-text over transcripts, fused (RRF)")
    q.add_argument("--audio", metavar="FILE", help="audio query: the table's audio encoder (audio_enc_emb), else "
                                                   "embedded like ingested audio (audio_emb)")
    q.add_argument("--image", metavar="FILE", help="image query: the table's image encoder (image_emb), else "
                                                   "embedded like ingested video (video_emb)")
    p.add_argument("--target", choices=("image", "audio", "any"),
                   help="search the text-anchored space (after `omnialign embed`): rank rows by their image or "
                        "audio vectors (any: both) whatever the query's modality")
    p.add_argument("--stream", help="only this stream id")
    p.add_argument("--from-s", type=float, help="only segments overlapping [from_s, to_s)")
    p.add_argument("--to-s", type=float)
    p.add_argument("-k", type=int, default=5, help="number of hits (default 5)")
    p.add_argument("--codebooks", help="codebook folder (default DB/codebooks)")
    p.add_argument("--json", action="store_true", help="print hits as JSON lines")
    p.set_defaults(func=run)


def query_vector(args: argparse.Namespace) -> tuple:
    """(vector, column) for an audio or image query, through the ingestion embedding path."""
    import numpy as np

    from engine.media.decode import MediaConfig, iter_segments
    from engine.tokenize.tokenizer import Tokenizer

    if args.audio:
        from engine.store.table import SegmentStore

        audio = np.concatenate([s.audio for s in iter_segments(args.audio, MediaConfig(decode_video=False, require_audio=True))])
        spec = SegmentStore.open(args.db).encoders().get("audio_enc_emb")
        if spec:  # what was said or sounded, not log-mel statistics
            from engine.encode.audio import query_audio_embedding

            return query_audio_embedding(spec, audio), "audio_enc_emb"
        return Tokenizer.load(args.codebooks or Path(args.db) / "codebooks").embed_audio(audio), "audio_emb"
    from PIL import Image

    from engine.errors import NotMediaError

    from engine.encode.registry import query_image_embedding, rgb_on_white
    from engine.store.table import SegmentStore

    try:
        img = rgb_on_white(Image.open(args.image))
    except (OSError, ValueError):
        raise NotMediaError(args.image, "not an image PIL can read") from None
    spec = SegmentStore.open(args.db).encoders().get("image_emb")
    if spec:  # semantic neighbours from the pretrained encoder, not pixel copies
        return query_image_embedding(spec, img), "image_emb"
    # Codebooks only for the fallback: a table with a pretrained image column needs none.
    tok = Tokenizer.load(args.codebooks or Path(args.db) / "codebooks")
    return tok.embed_frames(img[None], np.zeros(1, np.int64)), "video_emb"


def anchor_query(args: argparse.Namespace):
    """The query in the anchor space: MiniLM of text, or the DB's adapter over the table's encoder."""
    import numpy as np

    from engine.errors import InvalidInputError
    from engine.store.anchors import anchor_query_vector

    if args.text:
        from engine.store.text_embed import get_text_embedder

        return np.asarray(get_text_embedder().embed([args.text])[0], np.float32), "text"
    if not (args.audio or args.image):
        raise InvalidInputError("--target", "needs a --text, --audio or --image query")
    vec, column = query_vector(args)
    modality = "audio" if args.audio else "image"
    if column not in ("audio_enc_emb", "image_emb"):
        raise InvalidInputError("--target", f"the table has no pretrained {modality} encoder column to adapt")
    return anchor_query_vector(args.db, modality, vec), modality


def run_anchor(args: argparse.Namespace) -> int:
    from engine.store.anchors import anchor_search

    vec, source = anchor_query(args)
    targets = None if args.target == "any" else (args.target,)
    hits = anchor_search(args.db, vec, targets, k=args.k, stream_id=args.stream)
    if args.json:
        for h in hits:
            print(json.dumps({"stream_id": h.stream_id, "segment_index": h.segment_index, "t_start_us": h.t_start_us,
                              "t_end_us": h.t_end_us, "score": h.score, "matched": h.modality, "query": source,
                              "adapter": h.adapter}))
        return 0
    rows = [{"rank": i + 1, "stream_id": h.stream_id, "segment": h.segment_index,
             "from_s": f"{h.t_start_us / 1e6:.2f}", "to_s": f"{h.t_end_us / 1e6:.2f}", "score": f"{h.score:.4f}",
             "matched": h.modality} for i, h in enumerate(hits)]
    print_table(rows, ("rank", "stream_id", "segment", "from_s", "to_s", "score", "matched"))
    return 0


def run(args: argparse.Namespace) -> int:
    from engine.store.search import SearchQuery, search
    from engine.store.table import SegmentStore

    if args.target:
        return run_anchor(args)
    store = SegmentStore.open(args.db)
    vector = column = None
    if args.audio or args.image:
        vector, column = query_vector(args)
    query = SearchQuery(
        text=args.text, vector=vector, vector_column=column, stream_id=args.stream, k=args.k,
        from_us=None if args.from_s is None else int(args.from_s * 1e6),
        to_us=None if args.to_s is None else int(args.to_s * 1e6),
    )
    hits = search(store, query)
    if args.json:
        for h in hits:
            print(json.dumps({"stream_id": h.stream_id, "segment_index": h.segment_index, "t_start_us": h.t_start_us,
                              "t_end_us": h.t_end_us, "score": h.score, "retrieval": h.retrieval, "transcript": h.transcript}))
        return 0
    rows = [{"rank": i + 1, "stream_id": h.stream_id, "segment": h.segment_index,
             "from_s": f"{h.t_start_us / 1e6:.2f}", "to_s": f"{h.t_end_us / 1e6:.2f}", "score": f"{h.score:.4f}",
             "via": h.retrieval, "transcript": (h.transcript or "")[:60]} for i, h in enumerate(hits)]
    print_table(rows, ("rank", "stream_id", "segment", "from_s", "to_s", "score", "via", "transcript"))
    return 0
