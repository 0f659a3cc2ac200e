"""Any-to-any retrieval through the text-anchored space (issue #14), on the dev set's eval split.

Stage 1 trains one adapter per modality on Ray Train (``actors.train.fit_stage1``: one worker of
one CPU, pairs streamed from LanceDB by Ray Data): pictures (EfficientNet-Lite0 features) against
their titles, and sounds and speech (Whisper tiny.en encoder states) against their names and
phrases, all into frozen MiniLM. Then every direction is scored on pairs never trained on:

* text→image, image→text (eval pictures; three picture kinds are held out of training entirely);
* text→sound, sound→text (eval sound effects and samples);
* speech→text without ASR (the voices held out of training, against the 26 phrases);
* sound→image, **never trained as a pair** (emergent): a sound is right about a picture when a
  word of its name is a word of the picture's title ("dog" → "cartoon dog").

Peers (:mod:`benchmarks.retrieval_peers`): zero-shot ConSE, the bridge over today's
same-modality columns, random. Reports R@1/5/10, median rank, chance, a bootstrap interval of
R@1, trainable parameters, stage wall times, and the held-out kinds' neighbours.

    python -m benchmarks.retrieval [--epochs 20]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.data.captions import UNSEEN_KINDS
from benchmarks.provenance import write_results
from benchmarks.retrieval_pairs import build, default_db, pair_id_of
from benchmarks.retrieval_peers import bridge_scores, conse_embeddings, random_scores

#: Words of sound names that say nothing a picture could show.
_STOP = {"the", "and", "sound", "loop", "soft", "hard", "hit", "low", "high", "mid", "male", "female", "one", "two"}


def _metrics(scores: np.ndarray, relevant: list[set[int]]) -> dict:
    from engine.train.evaluate import first_relevant_ranks, recall_metrics

    return recall_metrics(first_relevant_ranks(scores, relevant), scores.shape[1], relevant)


def _unique(texts: list[str], anchors: np.ndarray) -> tuple[list[str], np.ndarray]:
    seen: dict[str, int] = {}
    for i, t in enumerate(texts):
        seen.setdefault(t, i)
    return list(seen), anchors[list(seen.values())]


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 3 and w not in _STOP}


def train_adapters(db: Path, work: Path, epochs: int) -> dict:
    """Stage 1 of both modalities on Ray Train; returns the adapters and their run facts."""
    from actors.runtime import init_ray
    from actors.train import TrainRunConfig, fit_stage1
    from engine.train.adapter import load_adapter
    from engine.train.config import HeadConfig, Stage1Config
    from engine.train.pairs import read_pairs

    init_ray(None)
    out = {}
    for modality, batch in (("image", 256), ("audio", 128)):
        pairs = read_pairs(db, modality)
        head = HeadConfig(modality, pairs.encoder, pairs.features.shape[1], hidden_dim=512, dropout=0.5)
        res = fit_stage1(db, head, Stage1Config(epochs=epochs, batch_size=batch),
                         TrainRunConfig(name=f"stage1-{modality}", storage_path=str(work / "runs")),
                         work / "adapters" / modality)
        adapter = load_adapter(res.adapter_dir)
        out[modality] = {"adapter": adapter, "wall_s": round(res.wall_s, 1), "hash": res.adapter_hash,
                         # Loaded adapters are frozen: count what stage 1 trained.
                         "params": sum(p.numel() for p in adapter.head.parameters()),
                         "epochs": epochs, "best": {k: round(v, 4) for k, v in res.best.items()
                                                    if k in ("epoch", "loss", "val_recall_at_5", "temperature")},
                         "train_pairs": sum(s == "train" for s in pairs.splits)}
    return out


def frozen_parameters() -> dict:
    """Parameter counts of the frozen parts (those torch holds; Whisper runs in CTranslate2)."""
    from safetensors import safe_open

    from engine.encode.efficientnet import EfficientNetLiteExtractor
    from engine.store.text_embed import default_model_dir

    with safe_open(str(default_model_dir() / "model.safetensors"), "np") as f:
        minilm = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
    return {"efficientnet-lite0": sum(p.numel() for p in EfficientNetLiteExtractor().net.parameters()),
            "all-MiniLM-L6-v2": minilm,
            # tiny.en's published size: 39 M in all, of which the encoder ~8 M (CTranslate2
            # holds it as int8 and exposes no parameter count).
            "whisper-tiny.en-encoder (published)": 8_000_000}


def evaluate(db: Path, items: dict, adapters: dict) -> dict:
    """Every direction with its peers."""
    from benchmarks.data.imagenet import imagenet_classes
    from engine.encode.efficientnet import EfficientNetLiteExtractor
    from engine.store.text_embed import get_text_embedder
    from engine.train.evaluate import cosine_scores
    from engine.train.pairs import read_pairs

    kind_of = {pair_id_of(c): c.kind for caps in items.values() for c in caps}
    img, aud = read_pairs(db, "image"), read_pairs(db, "audio")
    img_tr, img_ev = img.split("train"), img.split("eval")
    aud_tr, aud_ev = aud.split("train"), aud.split("eval")
    ia, aa = adapters["image"]["adapter"], adapters["audio"]["adapter"]
    z_img = ia.embed(img_ev.features)
    classes = get_text_embedder().embed(imagenet_classes())
    conse = conse_embeddings(img_ev.features, classes, EfficientNetLiteExtractor().net._fc)
    directions = {}

    def add(name: str, trained: bool, ours: np.ndarray, rel: list[set[int]], peers: dict) -> None:
        row = {"trained_as_pair": trained, "ours": _metrics(ours, rel)}
        for peer, s in peers.items():
            row[peer] = _metrics(s, rel) if s is not None else None
        row["random"] = _metrics(random_scores(*ours.shape), rel)
        directions[name] = row

    # text <-> image: one picture per title, so each title has one right picture.
    rel = [{i} for i in range(len(img_ev.ids))]
    add("text→image", True, cosine_scores(img_ev.anchors, z_img), rel,
        {"conse": cosine_scores(img_ev.anchors, conse),
         "bridge": bridge_scores(img_ev.anchors, img_tr.anchors, img_tr.features, img_ev.features)})
    add("image→text", True, cosine_scores(z_img, img_ev.anchors), rel,
        {"conse": cosine_scores(conse, img_ev.anchors),
         "bridge": bridge_scores(img_ev.features, img_tr.features, img_tr.anchors, img_ev.anchors)})

    # text <-> sound (effects and samples; speech is scored on its own below).
    is_voice = np.array([kind_of[i].startswith("voice:") for i in aud_ev.ids])
    snd = [i for i in range(len(aud_ev.ids)) if not is_voice[i]]
    s_feat, s_text = aud_ev.features[snd], [aud_ev.texts[i] for i in snd]
    texts, t_anchor = _unique(s_text, aud_ev.anchors[snd])
    z_snd = aa.embed(s_feat)
    tr_snd = [i for i, pid in enumerate(aud_tr.ids) if not kind_of[pid].startswith("voice:")]
    rel_t2s = [{j for j, x in enumerate(s_text) if x == t} for t in texts]
    add("text→sound", True, cosine_scores(t_anchor, z_snd), rel_t2s,
        {"conse": None, "bridge": bridge_scores(t_anchor, aud_tr.anchors[tr_snd], aud_tr.features[tr_snd], s_feat)})
    rel_s2t = [{texts.index(x)} for x in s_text]
    add("sound→text", True, cosine_scores(z_snd, t_anchor), rel_s2t,
        {"conse": None, "bridge": bridge_scores(s_feat, aud_tr.features[tr_snd], aud_tr.anchors[tr_snd], t_anchor)})

    # speech -> text, no ASR: held-out voices against the phrases.
    vo = [i for i in range(len(aud_ev.ids)) if is_voice[i]]
    v_text = [aud_ev.texts[i] for i in vo]
    phrases, p_anchor = _unique(v_text, aud_ev.anchors[vo])
    tr_vo = [i for i, pid in enumerate(aud_tr.ids) if kind_of[pid].startswith("voice:")]
    add("speech→text", True, cosine_scores(aa.embed(aud_ev.features[vo]), p_anchor), [{phrases.index(x)} for x in v_text],
        {"conse": None, "bridge": bridge_scores(aud_ev.features[vo], aud_tr.features[tr_vo], aud_tr.anchors[tr_vo],
                                                p_anchor)})

    # sound -> image, emergent: no sound was ever paired with a picture. Every non-speech sound
    # is a query (the pictures are all unseen); right = a picture sharing a content word.
    all_snd = [i for i, pid in enumerate(aud.ids) if not kind_of[pid].startswith("voice:")]
    title_words = [_content_words(t) for t in img_ev.texts]
    q, rel_si, examples = [], [], []
    for i in all_snd:
        rel_i = {j for j, w in enumerate(title_words) if _content_words(aud.texts[i]) & w}
        if rel_i:
            q.append(i)
            rel_si.append(rel_i)
    z_q = aa.embed(aud.features[q])
    s_si = cosine_scores(z_q, z_img)
    add("sound→image (emergent)", False, s_si, rel_si, {"conse": None, "bridge": None})
    for n, i in enumerate(q[:60]):
        top = np.argsort(-s_si[n])[:3]
        examples.append({"sound": aud.texts[i], "top3": [img_ev.texts[j] for j in top],
                         "hit_at_3": bool(set(top.tolist()) & rel_si[n])})

    # Held-out kinds: their pictures' nearest other eval pictures, adapter space vs image_emb.
    kinds = [kind_of[pid] for pid in img_ev.ids]
    unseen = [i for i, k in enumerate(kinds) if k in UNSEEN_KINDS]

    def p_at_5(emb: np.ndarray) -> float:
        s = cosine_scores(emb[unseen], emb)
        s[np.arange(len(unseen)), unseen] = -np.inf
        top = np.argsort(-s, axis=1)[:, :5]
        return round(float(np.mean([[kinds[j] == kinds[unseen[n]] for j in row] for n, row in enumerate(top)])), 4)

    share = {k: kinds.count(k) for k in UNSEEN_KINDS}
    held = {"kinds": share, "queries": len(unseen), "precision_at_5_adapter": p_at_5(z_img),
            "precision_at_5_image_emb": p_at_5(img_ev.features),
            "chance": round(float(np.mean([(share[kinds[i]] - 1) / (len(kinds) - 1) for i in unseen])), 4),
            "text→image_R@10_unseen": round(float(np.mean(
                [((cosine_scores(img_ev.anchors[i:i + 1], z_img)[0] > (img_ev.anchors[i] @ z_img[i])).sum() < 10)
                 for i in unseen])), 4)}
    i0 = unseen[0]
    s0 = cosine_scores(z_img[i0:i0 + 1], z_img)[0]
    s0[i0] = -np.inf
    held["example"] = {"query": img_ev.texts[i0], "kind": kinds[i0],
                       "neighbours": [(img_ev.texts[j], kinds[j]) for j in np.argsort(-s0)[:5]]}
    return {"directions": directions, "emergent_examples": examples[:12], "held_out_kinds": held,
            "sizes": {"image_train": len(img_tr.ids), "image_eval": len(img_ev.ids), "audio_train": len(aud_tr.ids),
                      "sound_eval": len(snd), "speech_eval": len(vo), "emergent_queries": len(q)}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--db", type=Path, default=default_db(), help="pairs cache (built when missing)")
    ap.add_argument("--out", default="retrieval")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    frozen = frozen_parameters()
    t_pairs = time.perf_counter()
    items = build(args.db)
    pairs_s = time.perf_counter() - t_pairs
    with tempfile.TemporaryDirectory() as tmp:
        adapters = train_adapters(args.db, Path(tmp), args.epochs)
        res = evaluate(args.db, items, adapters)
    frozen_of = {"image": frozen["efficientnet-lite0"], "audio": frozen["whisper-tiny.en-encoder (published)"]}
    res["adapters"] = {m: {k: v for k, v in a.items() if k != "adapter"} | {
        "share_of_frozen_encoder": round(a["params"] / frozen_of[m], 4),
        "share_of_frozen_encoder_and_anchor": round(a["params"] / (frozen_of[m] + frozen["all-MiniLM-L6-v2"]), 4)}
        for m, a in adapters.items()}
    res["frozen_parameters"] = frozen
    res["pairs_build_s"] = round(pairs_s, 1)
    res["run_s"] = round(time.perf_counter() - t0, 1)
    path = write_results(args.out, {"benchmark": "retrieval", **res})
    print("| direction | trained | ours R@1 / R@10 / med | ConSE R@1 / R@10 | bridge R@1 / R@10 | chance R@1 |")
    print("|---|---|---|---|---|---|")
    for name, d in res["directions"].items():
        o = d["ours"]
        f = (lambda m: f"{m['R@1']:.3f} / {m['R@10']:.3f}" if m else "–")
        print(f"| {name} | {'yes' if d['trained_as_pair'] else 'no'} | {o['R@1']:.3f} / {o['R@10']:.3f} / "
              f"{o['median_rank']:.0f} | {f(d['conse'])} | {f(d['bridge'])} | {o['chance_R@1']:.4f} |")
    for m, a in res["adapters"].items():
        print(f"{m}: {a['params']:,} trainable ({a['share_of_frozen_encoder']:.1%} of its encoder), "
              f"stage 1 {a['wall_s']} s")
    print(f"held-out kinds: {res['held_out_kinds']}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
