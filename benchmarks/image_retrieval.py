"""Image → image retrieval by category: the EfficientNet-Lite0 column vs the pixel-statistics one.

A labelled picture set (``openclipart-png``: the first N pictures of each of 10 category folders)
is ingested as a folder — each picture its own stream of one segment — by the product's
reference loop (``run_local``: the same decode, tokenizer and encoder stages as the Ray
pipeline, one process), into a fresh LanceDB table. Then every picture's stored vector is the
query of the product's search (``engine.store.search``) over the whole table, once on
``image_emb`` (EfficientNet-Lite0, frozen) and once on ``video_emb`` (the tokenizer's pooled
region features: normalised pixel statistics under a random projection — what image search used
before). precision@5 = share of the 5 nearest *other* pictures in the query's category.

    python -m benchmarks.image_retrieval [--per-category 20] [--out benchmarks/results/image_retrieval.json]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.data.pictures import CATEGORIES, clipart_set
from benchmarks.provenance import write_results


def run(per_category: int) -> dict:
    from engine.ingest.pipeline import PipelineConfig, run_local
    from engine.media.decode import MediaConfig, iter_segments
    from engine.media.sources import default_stream_id
    from engine.store.search import SearchQuery, search
    from engine.store.table import SegmentStore
    from engine.tokenize.tokenizer import Tokenizer

    pictures = clipart_set(per_category)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Pictures with the same name in two folders: a folder of links keeps them apart.
        folder = root / "pictures"
        folder.mkdir()
        links = []
        for i, (p, c) in enumerate(pictures):
            link = folder / f"{i:04d}_{c}_{p.name}"
            link.symlink_to(p)
            links.append((link, c))
        label = {default_stream_id(str(link)): c for link, c in links}
        t0 = time.perf_counter()
        cfg = PipelineConfig(db_dir=str(root / "db"), codebooks_dir=str(root / "codebooks"), asr=None)
        segs = [s for link, _ in links for s in iter_segments(str(link), cfg.media_config())]
        Tokenizer.fit(segs).save(root / "codebooks")
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = run_local([str(folder)], cfg)
        ingest_s = time.perf_counter() - t0
        failed = [r.error for r in results if r.error]
        store = SegmentStore.open(root / "db")
        rows = {r.stream_id: r for sid in label for r in [store.get(sid, 0)] if r is not None}
        out = {"pictures": len(links), "categories": list(CATEGORIES), "per_category": per_category,
               "rows": len(rows), "failed": failed[:5], "fit_s": round(fit_s, 1), "ingest_s": round(ingest_s, 1),
               "encoders": store.encoders(), "columns": {}}
        for column in ("image_emb", "video_emb"):
            precisions, per_cat, t_q = [], {c: [] for c in CATEGORIES}, []
            example = None
            for sid, row in rows.items():
                vec = getattr(row, column)
                t1 = time.perf_counter()
                hits = search(store, SearchQuery(vector=vec, vector_column=column, k=6))
                t_q.append(time.perf_counter() - t1)
                others = [h.stream_id for h in hits if h.stream_id != sid][:5]
                p = float(np.mean([label[o] == label[sid] for o in others])) if others else 0.0
                precisions.append(p)
                per_cat[label[sid]].append(p)
                if example is None and column == "image_emb" and others and label[others[0]] == label[sid]:
                    example = {"query": Path(row.source_uri).name, "category": label[sid],
                               "top5": [(Path(rows[o].source_uri).name, label[o]) for o in others]}
            out["columns"][column] = {
                "precision_at_5": round(float(np.mean(precisions)), 4),
                "per_category": {c: round(float(np.mean(v)), 3) for c, v in per_cat.items() if v},
                "median_query_ms": round(1000 * float(np.median(t_q)), 2)}
            if example:
                out["example"] = example
        out["chance"] = round(float(sum((n - 1) * n for n in Counter(label.values()).values())
                                    / (len(label) * (len(label) - 1))), 4)
        return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-category", type=int, default=20)
    ap.add_argument("--out", default="image_retrieval")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = run(args.per_category)
    res["run_s"] = round(time.perf_counter() - t0, 1)
    path = write_results(args.out, {"benchmark": "image_retrieval", **res})
    print(f"{res['pictures']} pictures in {len(res['categories'])} categories (chance {res['chance']:.3f}), "
          f"{res['rows']} rows")
    print("| column | encoder | precision@5 | median query ms |")
    print("|---|---|---|---|")
    for col, r in res["columns"].items():
        enc = res["encoders"].get(col, "pooled RVQ region features (pixel statistics)")
        print(f"| {col} | {enc} | {r['precision_at_5']:.3f} | {r['median_query_ms']:.2f} |")
    if "example" in res:
        ex = res["example"]
        print(f"example: {ex['query']} ({ex['category']}) -> " + ", ".join(f"{n} ({c})" for n, c in ex["top5"]))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
