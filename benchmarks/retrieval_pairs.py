"""The retrieval benchmark's pairs: the dev set's files through the product's pair builder into
a LanceDB pairs table (cached: encoding ~2,600 files takes minutes on 2 cores).

    python -m benchmarks.retrieval_pairs [--db DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

from benchmarks.data.captions import Captioned, pictures, sounds, speech

#: Bumped when the dev set or the builder changes, so a stale cache is never reused.
VERSION = 1


def default_db() -> Path:
    base = Path(os.environ.get("OMNIALIGN_DEVSETS", Path.home() / ".cache" / "omnialign" / "devsets"))
    return base.parent / f"retrieval-pairs-v{VERSION}"


def dev_items(log=print) -> dict[str, list[Captioned]]:
    """The dev set by modality: ``image`` (titled pictures), ``audio`` (sounds, then speech)."""
    return {"image": pictures(log), "audio": sounds(log) + speech(log)}


def build(db: Path, log=print) -> dict[str, list[Captioned]]:
    """Builds (if missing) the pairs tables of both modalities in ``db``; returns the items by
    modality, and writes nothing when the tables already hold them."""
    import lancedb

    from engine.train.builders import PairItem, build_pairs
    from engine.train.pairs import TABLE, write_pairs

    items = dev_items(log)
    names = list(lancedb.connect(str(db)).list_tables().tables) if db.exists() else []
    for modality, caps in items.items():
        if f"{TABLE}_{modality}" in names:
            continue
        pairs, failed = build_pairs([PairItem(c.path, c.text, c.split) for c in caps], modality, log=log)
        for line in failed[:5]:
            log(f"left out: {line}")
        write_pairs(db, pairs)
        log(f"{modality}: {len(pairs.ids)} pairs ({len(failed)} files left out)")
    return items


def pair_id_of(c: Captioned) -> str:
    return hashlib.sha1(f"{c.path}\0{c.text}".encode()).hexdigest()[:20]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, default=default_db())
    args = ap.parse_args(argv)
    build(args.db)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
