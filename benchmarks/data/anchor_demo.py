"""Real pictures and sounds for the demo's any-to-any search: none of them was trained on.

* Pictures: scikit-image's sample photographs (the shipped image adapter was trained on
  ``openclipart-png`` drawings only).
* Sounds: ``scratch`` sound-library files that :mod:`benchmarks.data.captions` puts in its
  ``eval`` split (the shipped audio adapter never saw them); checked here, so a change of the split
  cannot quietly turn the demo into a recall of its training set.

Usage (``make demo`` runs it)::

    python -m benchmarks.data.anchor_demo --export DIR [--cache DIR]

writes ``DIR/pictures/*.png`` and ``DIR/sounds/*``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from benchmarks.data.captions import eval_by_hash
from benchmarks.data.fetch import fetch_debian
from benchmarks.data.pictures import default_cache, skimage_pictures

PICTURES = ("chelsea", "coffee", "rocket", "astronaut", "motorcycle_left", "horse")
SOUNDS_DIR = "usr/share/scratch/Media/Sounds"
SOUNDS = ("Animal/Cat.mp3", "Instruments/Trumpet2.wav", "Percussion/Gong.wav", "Instruments/GuitarStrum.wav",
          "Human/Laugh-female.wav", "Effects/Ripples.wav")


def export(dest: Path, cache: Path | None = None, log=print) -> tuple[list[Path], list[Path]]:
    """Copies the demo's pictures and sounds into ``dest``; returns (pictures, sounds).

    Raises:
        ValueError: A listed sound is in the training split of the alignment dev set.
    """
    cache = cache or default_cache()
    pics = skimage_pictures(cache, log)
    root = fetch_debian(cache, ["scratch"], log)
    for rel in SOUNDS:
        if not eval_by_hash(f"{SOUNDS_DIR}/{rel}"):
            raise ValueError(f"{rel} is in the alignment training split; the demo must use eval sounds only")
    (dest / "pictures").mkdir(parents=True, exist_ok=True)
    (dest / "sounds").mkdir(parents=True, exist_ok=True)
    out_p = [Path(shutil.copy(pics[n], dest / "pictures" / pics[n].name)) for n in PICTURES]
    out_s = [Path(shutil.copy(root / SOUNDS_DIR / rel, dest / "sounds" / Path(rel).name)) for rel in SOUNDS]
    return out_p, out_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--export", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=None)
    args = ap.parse_args(argv)
    pics, snds = export(args.export, args.cache)
    print(f"wrote {len(pics)} pictures and {len(snds)} sounds into {args.export}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
