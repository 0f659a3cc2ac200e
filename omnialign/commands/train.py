"""``omnialign train``: build pairs from files and their texts, then train a modality's adapter
into the text-anchored space on Ray Train (stage 1, global anchoring; resumable by run name)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.errors import InvalidInputError

#: Keys a ``--config`` JSON file may set: the head's shape and stage 1's settings.
_HEAD_KEYS = ("hidden_dim", "dropout")
_STAGE1_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "seed")


def register(sub) -> None:
    p = sub.add_parser("train", help="train alignment adapters into the text-anchored space (Ray Train)")
    steps = p.add_subparsers(dest="step", metavar="STEP", required=True)
    b = steps.add_parser("pairs", help="encode files and their texts into a pairs table (frozen encoders)")
    b.add_argument("--pairs-db", required=True, help="LanceDB folder of the pairs tables")
    b.add_argument("--modality", choices=("image", "audio"), required=True)
    b.add_argument("--items", required=True, type=Path,
                   help='JSON lines: {"path": file, "text": what it shows or sounds like, "split": "train"|"eval"}')
    b.set_defaults(func=run_pairs)
    s = steps.add_parser("stage1", help="global anchoring of one modality's adapter (symmetric InfoNCE, "
                                        "learnable temperature); running a name again resumes it")
    s.add_argument("--pairs-db", required=True)
    s.add_argument("--modality", choices=("image", "audio"), required=True)
    s.add_argument("--out", required=True, help="adapter folder to write (safetensors + config + hash)")
    s.add_argument("--name", required=True, help="run name (resumes the run of that name in --storage)")
    s.add_argument("--storage", required=True, help="Ray Train storage path (run state and checkpoints)")
    s.add_argument("--config", type=Path, help=f"JSON with any of {_HEAD_KEYS + _STAGE1_KEYS}")
    s.add_argument("--epochs", type=int, help="overrides the config's epochs")
    s.add_argument("--workers", type=int, default=1, help="Train workers (data parallel)")
    s.add_argument("--cpus-per-worker", type=float, default=1.0)
    s.add_argument("--gpu", action="store_true", help="one GPU per worker")
    s.add_argument("--max-failures", type=int, default=2)
    s.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray)")
    s.set_defaults(func=run_stage1)


def _read_items(path: Path):
    from engine.train.builders import PairItem

    if not path.is_file():
        raise InvalidInputError(str(path), "no such items file")
    items = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            items.append(PairItem(str(d["path"]), str(d["text"]), str(d.get("split", "train"))))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"{path}:{n}", f"need a JSON object with path and text ({exc})") from exc
    if not items:
        raise InvalidInputError(str(path), "holds no items")
    return items


def run_pairs(args: argparse.Namespace) -> int:
    from engine.train.builders import build_pairs
    from engine.train.pairs import write_pairs

    pairs, failed = build_pairs(_read_items(args.items), args.modality, log=print)
    uri = write_pairs(args.pairs_db, pairs)
    for line in failed:
        print(f"left out: {line}")
    n_eval = sum(s == "eval" for s in pairs.splits)
    print(f"{args.modality}: {len(pairs.ids)} pairs ({n_eval} eval) by {pairs.encoder} -> {uri}")
    return 0


def _config(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        cfg = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(str(path), f"not a readable JSON config ({exc})") from exc
    unknown = set(cfg) - set(_HEAD_KEYS + _STAGE1_KEYS)
    if not isinstance(cfg, dict) or unknown:
        raise InvalidInputError(str(path), f"unknown keys {sorted(unknown)}; known: {_HEAD_KEYS + _STAGE1_KEYS}")
    return cfg


def run_stage1(args: argparse.Namespace) -> int:
    from actors.runtime import init_ray
    from actors.train import TrainRunConfig, fit_stage1
    from engine.train.config import HeadConfig, Stage1Config
    from engine.train.pairs import read_pairs

    cfg = _config(args.config)
    if args.epochs is not None:
        cfg["epochs"] = args.epochs
    pairs = read_pairs(args.pairs_db, args.modality)
    head = HeadConfig(args.modality, pairs.encoder, pairs.features.shape[1],
                      **{k: cfg[k] for k in _HEAD_KEYS if k in cfg})
    stage1 = Stage1Config(**{k: cfg[k] for k in _STAGE1_KEYS if k in cfg})
    run = TrainRunConfig(name=args.name, storage_path=str(Path(args.storage).resolve()), num_workers=args.workers,
                         cpus_per_worker=args.cpus_per_worker, use_gpu=args.gpu, max_failures=args.max_failures)
    init_ray(args.ray_address)
    res = fit_stage1(args.pairs_db, head, stage1, run, args.out)
    for m in res.history:  # the checkpointed epochs
        print(f"epoch {int(m['epoch']):3d}  loss {m['loss']:.4f}  temperature {m['temperature']:.4f}  "
              f"val R@5 {m['val_recall_at_5']:.3f}")
    resumed = f", resumed from epoch {res.restored_epoch}" if res.restored_epoch else ""
    print(f"{args.modality} adapter {res.adapter_hash} -> {res.adapter_dir} (best val R@5 "
          f"{res.best.get('val_recall_at_5', float('nan')):.3f}, {res.wall_s:.0f} s{resumed})")
    return 0
