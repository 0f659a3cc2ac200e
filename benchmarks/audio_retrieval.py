"""Audio → audio retrieval by spoken phrase: the Whisper-encoder column vs the log-mel-statistics one.

A labelled speech set: the Hedgewars voice packs (Debian ``hedgewars-data``; each pack speaks
the same phrases, the file name is the phrase) — the nine English-speaking packs, the phrases
that are words (not grunts, jumps or laughs). Each clip is ingested as a stream of its own by
the product's reference loop (``run_local``: the decode, tokenizer and ASR stages of the Ray
pipeline, one process) into a fresh LanceDB table. Every clip's first segment is then the query
of the product's search (``engine.store.search``) over the whole table, once on
``audio_enc_emb`` (Whisper tiny.en's encoder states, pooled) and once on ``audio_emb`` (the
tokenizer's pooled log-mel features: what audio search used before). precision@5 = share of the
5 nearest *other* clips that say the same phrase (necessarily in another voice).

    python -m benchmarks.audio_retrieval [--out benchmarks/results/audio_retrieval.json]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.provenance import write_results

VOICES = ("British", "Classic", "Default", "HillBilly", "Mobster", "Pirate", "Robot", "Singer", "Surfer")
PHRASES = ("Byebye", "Comeonthen", "Coward", "Cutitout", "Enemydown", "Firstblood", "Flawless", "Hello", "Hurry",
           "Illgetyou", "Incoming", "Kamikaze", "Leavemealone", "Melon", "Missed", "Nutter", "Oops", "Reinforcements",
           "Sameteam", "Stupid", "Takecover", "Traitor", "Victory", "Watchit", "Yessir", "Youllregretthat")


def voice_clips() -> list[tuple[Path, str, str]]:
    """(file, voice, phrase) of the set, fetched into the dev-set cache if missing."""
    from benchmarks.data.devsets import default_cache
    from benchmarks.data.fetch import fetch_debian

    root = fetch_debian(default_cache(), ["hedgewars-data"], log=lambda *_: None)
    voices = root / "usr/share/games/hedgewars/Data/Sounds/voices"
    return [(voices / v / f"{p}.ogg", v, p) for v in VOICES for p in PHRASES if (voices / v / f"{p}.ogg").is_file()]


def run() -> dict:
    from engine.ingest.pipeline import PipelineConfig, run_local
    from engine.media.decode import iter_segments
    from engine.media.sources import default_stream_id
    from engine.store.search import SearchQuery, search
    from engine.store.table import SegmentStore
    from engine.tokenize.tokenizer import Tokenizer

    clips = voice_clips()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "clips"
        folder.mkdir()
        label = {}
        for f, v, p in clips:
            link = folder / f"{v}_{p}.ogg"
            link.symlink_to(f)
            label[default_stream_id(str(link))] = p
        t0 = time.perf_counter()
        cfg = PipelineConfig(db_dir=str(root / "db"), codebooks_dir=str(root / "codebooks"), image_encoder=None)
        Tokenizer.fit([s for link in sorted(folder.iterdir()) for s in iter_segments(str(link), cfg.media_config())]
                      ).save(root / "codebooks")
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = run_local([str(folder)], cfg)
        ingest_s = time.perf_counter() - t0
        store = SegmentStore.open(root / "db")
        rows = {sid: r for sid in label for r in [store.get(sid, 0)] if r is not None}
        out = {"clips": len(clips), "voices": list(VOICES), "phrases": len({p for _, _, p in clips}), "rows": len(rows),
               "failed": [r.error for r in results if r.error][:5], "fit_s": round(fit_s, 1),
               "ingest_s": round(ingest_s, 1), "encoders": store.encoders(), "columns": {}}
        for column in ("audio_enc_emb", "audio_emb"):
            precisions, top1, t_q = [], [], []
            for sid, row in rows.items():
                vec = getattr(row, column)
                if vec is None:
                    continue
                t1 = time.perf_counter()
                hits = search(store, SearchQuery(vector=vec, vector_column=column, k=12))
                t_q.append(time.perf_counter() - t1)
                others = list(dict.fromkeys(h.stream_id for h in hits if h.stream_id != sid))[:5]
                precisions.append(float(np.mean([label[o] == label[sid] for o in others])) if others else 0.0)
                top1.append(bool(others) and label[others[0]] == label[sid])
            out["columns"][column] = {"queries": len(precisions), "precision_at_5": round(float(np.mean(precisions)), 4),
                                      "top1": round(float(np.mean(top1)), 4),
                                      "median_query_ms": round(1000 * float(np.median(t_q)), 2)}
        n = len(label)
        out["chance"] = round(float(sum((k - 1) * k for k in Counter(label.values()).values()) / (n * (n - 1))), 4)
        return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="audio_retrieval")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = run()
    res["run_s"] = round(time.perf_counter() - t0, 1)
    path = write_results(args.out, {"benchmark": "audio_retrieval", **res})
    print(f"{res['clips']} clips, {res['phrases']} phrases x {len(res['voices'])} voices (chance {res['chance']:.3f})")
    print("| column | encoder | precision@5 | top-1 | median query ms |")
    print("|---|---|---|---|---|")
    for col, r in res["columns"].items():
        enc = res["encoders"].get(col, "pooled log-mel features (tokenizer)")
        print(f"| {col} | {enc} | {r['precision_at_5']:.3f} | {r['top1']:.3f} | {r['median_query_ms']:.2f} |")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
