"""``omnialign serve``: run the Serve application locally (real vLLM CPU engine) until interrupted."""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the omni model, search and ingest over HTTP (Ray Serve + vLLM)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", help="omni model folder (default: build a tiny one from the store's codebooks)")
    p.add_argument("--db", default="demo_out/lancedb", help="LanceDB folder searched and ingested into "
                                                            "(default demo_out/lancedb, made by `omnialign demo`)")
    p.add_argument("--codebooks", help="codebook folder (default DB/codebooks)")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=DIR:MODALITIES",
                   help="register a peft LoRA adapter, e.g. speech=./lora/speech:audio,text (repeatable)")
    p.add_argument("--allow-root", action="append", default=[], metavar="DIR",
                   help="folder whose files /v1/ingest and /v1/adapters may read (repeatable)")
    p.add_argument("--allow-private-hosts", action="store_true",
                   help="let /v1/ingest URLs name loopback, private or link-local hosts (off: no SSRF to "
                        "internal services)")
    p.add_argument("--allow-scheme", action="append", default=[], metavar="SCHEME",
                   help="also accept this URL scheme in /v1/ingest, e.g. tcp (repeatable; default rtsp, rtsps, "
                        "http, https, udp, srt, rtmp)")
    p.add_argument("--api-keys-file", default="", metavar="FILE",
                   help="API keys, one 'KEY SCOPE' per line (scope user or admin); $OMNIALIGN_API_KEYS "
                        "(KEY:SCOPE,...) adds more. With no key the server binds to 127.0.0.1 only")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    p.set_defaults(func=run)


def _adapter_arg(text: str) -> dict:
    from engine.errors import InvalidInputError

    name, sep, rest = text.partition("=")
    path, sep2, mods = rest.rpartition(":")
    if not (sep and sep2 and name and path and mods):
        raise InvalidInputError("--adapter", f"{text!r}: expected NAME=DIR:MODALITY[,MODALITY]")
    return {"name": name, "path": str(Path(path).resolve()), "modalities": mods.split(",")}


def bind_host(host: str, auth: dict) -> str:
    """``host``, or loopback when no API key is configured (an open server must not face a network)."""
    from serve_apps.auth import is_loopback
    from serve_apps.config import AuthConfig

    if AuthConfig(**auth).resolved().key_sha256:
        return host
    if not is_loopback(host):
        print(f"omnialign: no API key configured (--api-keys-file, $OMNIALIGN_API_KEYS): serving on 127.0.0.1 "
              f"only, not {host}", flush=True)
        return "127.0.0.1"
    return host


def _schemes(extra: list[str]) -> list[str]:
    from serve_apps.ingest_policy import IngestPolicy

    return list(dict.fromkeys([*IngestPolicy().allowed_schemes, *(x.lower() for x in extra)]))


def default_model(db: Path, codebooks: Path) -> Path:
    """The tiny local omni model for these codebooks, built once next to the store."""
    from engine.errors import InvalidInputError
    from engine.omni.model import init_model
    from engine.omni.vocab import OmniVocab

    if not codebooks.is_dir():
        raise InvalidInputError(str(codebooks), "no codebooks: run `omnialign demo` (or `omnialign rvq fit`) first, "
                                                "or pass --model")
    model = db.parent / f"omni-tiny-{OmniVocab.from_codebooks(codebooks).codebook_version}"
    if not (model / "config.json").is_file():
        print(f"omnialign: building the tiny local omni model in {model} ...")
        init_model(model, codebooks=codebooks)
    return model


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    db = Path(args.db).resolve()
    codebooks = Path(args.codebooks).resolve() if args.codebooks else db / "codebooks"
    model = Path(args.model).resolve() if args.model else default_model(db, codebooks)
    roots = [str(Path(r).resolve()) for r in args.allow_root]
    app_args = {
        "engine": {"model_dir": str(model)},
        "store": {"db_dir": str(db), "codebooks_dir": str(codebooks), "upload_dir": str(db.parent / "uploads")},
        "routing": {"adapters": [_adapter_arg(a) for a in args.adapter]},
        "ingest_policy": {"allowed_roots": roots, "allow_private_hosts": args.allow_private_hosts,
                          "allowed_schemes": _schemes(args.allow_scheme)},
        "auth": {"keys_file": args.api_keys_file},
    }
    host = bind_host(args.host, app_args["auth"])
    import ray
    from ray import serve

    from actors.runtime import init_ray
    from serve_apps.app import build_app

    app = build_app(app_args)  # validates the arguments before Ray starts
    # SIGTERM (systemd, docker stop, Kubernetes) ends like Ctrl-C: Serve drains and shuts down and
    # the local Ray stops with its object store. Without this, Ray's core worker handles SIGTERM
    # in the driver by aborting (exit 134, a crash dump, a shared-memory segment left behind).
    # Installed before Ray starts (a TERM while it starts) and again after (Ray replaced it).
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        init_ray(args.address)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        serve.start(http_options={"host": host, "port": args.port})
        serve.run(app, name="omnialign", route_prefix="/")
        signal.signal(signal.SIGTERM, _raise_interrupt)
        print(f"omnialign: serving {model.name} on http://{host}:{args.port} "
              f"(OpenAI API under /v1, /metrics, /healthz); Ctrl-C or SIGTERM stops", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("omnialign: stopping (draining requests) ...", flush=True)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not cut the shutdown short
        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()
    return 0


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
