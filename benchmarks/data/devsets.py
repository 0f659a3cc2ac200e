"""Builds the real-media dev sets of the sync benchmark (issue #12), deterministically (seeded).

Two sets, cached outside the repo (default ``~/.cache/omnialign/devsets``, or
``$OMNIALIGN_DEVSETS``), described by ``manifest.json`` there (secret shifts, drift, splices,
sources, licences):

* ``real_videos``: the real videos with their own soundtracks named by the issue, each re-muxed
  once unshifted (``copy``) and twice with a secret audio shift (±480 ms) and, for clips of 10 s
  or more, drift (±800 ppm). Scored relative to the copy, so the file's own offset cancels.
* ``coupled``: real photographs / clip-art and real recordings composed into clips
  (:mod:`benchmarks.data.coupled`) with a secret offset, drift and splices.

Usage::

    python -m benchmarks.data.devsets [--cache DIR] [--force]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.data.coupled import build_coupled_clip
from benchmarks.data.fetch import DEBIAN_SOURCES, SKIMAGE, fetch_all
from benchmarks.data.media_io import container_for, remux_shifted

SEED = 12
VERSION = 4  # 4: cuts on frames (coupled.compose)
#: (package, path inside the package, name, silent soundtrack).
REAL_VIDEOS = [("planetblupi-common", f"usr/share/planetblupi/movie/{n}.mkv", n, False)
               for n in ("play101", "play105", "play107", "play108", "play110", "play113", "play116", "play118",
                         "play119", "play124")] + [
    ("opencv-doc", "usr/share/doc/opencv-doc/examples/data/Megamind.avi", "megamind", False),
    ("kphotoalbum", "usr/share/kphotoalbum/demo/movie.avi", "kphotoalbum_movie", False),
    ("python3-hug-doc", "usr/share/doc/python3-hug/examples/streaming_movie_server/movie.mp4", "hug_movie", False),
    ("python3-imageio", "usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4", "cockatoo", True),
]
#: (kind, duration_s, speech language, splices as (fraction of duration, jump_ms), drift allowed).
COUPLED = [
    ("cuts", 14.0, None, (), False), ("cuts", 16.0, None, (), True), ("cuts", 16.0, None, ((0.55, 180.0),), False),
    ("cuts", 12.0, None, ((0.5, -150.0),), True),
    ("brightness", 12.0, "cs", (), False), ("brightness", 16.0, "nl", (), True),
    ("scale", 12.0, "nl", (), False), ("scale", 16.0, "cs", (), True),
    ("mouth", 10.0, "cs", (), False), ("mouth", 16.0, "nl", (), True), ("mouth", 14.0, "ru", (), False),
    ("mouth_gap", 18.0, "cs", (), False), ("mouth_gap", 16.0, "ru", (), True),
    ("mouth", 16.0, "nl", ((0.5, 160.0),), False),
]


def default_cache() -> Path:
    """``$OMNIALIGN_DEVSETS`` or ``~/.cache/omnialign/devsets``."""
    return Path(os.environ.get("OMNIALIGN_DEVSETS", Path.home() / ".cache" / "omnialign" / "devsets"))


def coupled_assets(x: Path) -> dict:
    """The real pictures, clip-art, speech and sounds (unpacked under ``x``) coupled clips are made of."""
    def g(*patterns):
        return sorted({p for pat in patterns for p in glob.glob(str(x / pat))})

    sk = [str(x / "skimage/data" / f) for f in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
                                                 "motorcycle_left.png", "hubble_deep_field.jpg", "camera.png",
                                                 "moon.png", "coins.png", "page.png", "retina.jpg", "brick.png")]
    return {
        "pictures": [p for p in sk if Path(p).exists()] + g("usr/share/openclipart/png/geography/*.png")[:8],
        "sprites": g("usr/share/openclipart/png/animals/*.png")[:60],
        "speech": g("usr/share/games/fillets-ng/sound/*/cs/*.ogg", "usr/share/games/fillets-ng/sound/*/nl/*.ogg"),
        "speech_ru": g("usr/share/festival/voices/russian/*/wav/*.wav"),
        "sounds": g("usr/share/scratch/Media/Sounds/Percussion/*", "usr/share/scratch/Media/Sounds/Effects/*",
                    "usr/share/scratch/Media/Sounds/Animal/*", "usr/share/sonic-pi/samples/drum_*.flac",
                    "usr/share/sonic-pi/samples/elec_*.flac", "usr/share/sonic-pi/samples/perc_*.flac",
                    "usr/share/games/hedgewars/Data/Sounds/*.ogg", "usr/share/ktuberling/sounds/*/*.wav"),
    }


def _clip_duration_s(path: str) -> float:
    import av

    with av.open(path) as c:
        return (c.duration or 0) / 1e6


def build(cache: Path | None = None, force: bool = False, log=print) -> dict:
    """Fetches the sources and builds both sets (skips work already done unless ``force``).

    Returns:
        The manifest (also written to ``cache / "manifest.json"``).
    """
    cache = Path(cache or default_cache())
    mpath = cache / "manifest.json"
    if mpath.exists() and not force:
        m = json.loads(mpath.read_text())
        if m.get("version") == VERSION and all(Path(v["path"]).exists() for c in m["real_videos"]
                                               for v in c["variants"] + [c["copy"]]):
            return m
    t0 = time.perf_counter()
    x = fetch_all(cache, log)
    rng = np.random.default_rng(SEED)
    out_dir = cache / "built"
    out_dir.mkdir(parents=True, exist_ok=True)
    real = []
    for pkg, rel, name, silent in REAL_VIDEOS:
        src = str(x / rel)
        dur = _clip_duration_s(src)
        ext = container_for(src)
        copy = {"path": str(out_dir / f"{name}_copy{ext}"), "shift_ms": 0.0, "drift_ppm": 0.0}
        info = remux_shifted(src, copy["path"], 0.0, 0.0)
        variants = []
        for k in range(2):
            shift = float(rng.choice([-1, 1]) * rng.uniform(40.0, 480.0))
            drift = float(rng.uniform(-800.0, 800.0)) if dur >= 10.0 else 0.0
            v = {"path": str(out_dir / f"{name}_s{k}{ext}"), "shift_ms": round(shift, 1), "drift_ppm": round(drift, 1)}
            remux_shifted(src, v["path"], v["shift_ms"], v["drift_ppm"])
            variants.append(v)
        real.append({"name": name, "package": pkg, "licence": DEBIAN_SOURCES[pkg], "source": rel,
                     "duration_s": round(dur, 3), "silent_audio": silent, "audio": info, "copy": copy,
                     "variants": variants})
        log(f"real video {name}: {dur:.1f} s, shifts {[v['shift_ms'] for v in variants]}")
    assets = coupled_assets(x)
    coupled = []
    for k, (kind, dur, lang, splices, drift_ok) in enumerate(COUPLED):
        spec = {"name": f"{kind}_{k:02d}", "kind": kind, "duration_s": dur, "speech": lang, "seed": SEED * 100 + k,
                "offset_ms": round(float(rng.uniform(-480.0, 480.0)), 1),
                "drift_ppm": round(float(rng.uniform(-800.0, 800.0)), 1) if drift_ok else 0.0,
                "splices": [[round(f * dur, 3), j] for f, j in splices]}
        path = out_dir / f"{spec['name']}.mp4"
        rec = build_coupled_clip(spec, path, assets)
        coupled.append({**rec, "path": str(path)})
        log(f"coupled {spec['name']}: offset {spec['offset_ms']} ms, drift {spec['drift_ppm']} ppm, "
            f"splices {spec['splices']}")
    manifest = {
        "version": VERSION, "seed": SEED, "cache": str(cache), "build_s": round(time.perf_counter() - t0, 1),
        "convention": "t_audio = offset + t_video*(1+drift_ppm*1e-6); shifted re-mux: audio content at tau "
                      "moves to shift + tau*(1+drift)",
        "sources": {**DEBIAN_SOURCES, SKIMAGE[0] + "==" + SKIMAGE[1]: SKIMAGE[2]},
        "coupled_assets": {k: len(v) for k, v in assets.items()},
        "real_videos": real, "coupled": coupled,
    }
    mpath.write_text(json.dumps(manifest, indent=1))
    return manifest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, default=None)
    p.add_argument("--force", action="store_true")
    a = p.parse_args()
    m = build(a.cache, a.force)
    print(f"{len(m['real_videos'])} real videos, {len(m['coupled'])} coupled clips in {m['cache']} "
          f"(built in {m['build_s']} s)")


if __name__ == "__main__":
    main()
