"""Real pictures for the encoder tests and the image-retrieval benchmark (issue #13).

* ``openclipart-png`` (Debian, public domain): clip-art filed in category folders
  (``usr/share/openclipart/png/<category>/...``) — the labelled set of the benchmark;
* scikit-image's sample photographs (BSD wheel, only ``skimage/data`` unpacked) — small enough
  for ``make test`` (two photographs of one motorcycle from the left and the right, a cat, a
  cup of coffee, textures, ...).

Everything is fetched into the dev-set cache, never into the repo.

Usage (``make test`` runs it)::

    python -m benchmarks.data.pictures [--cache DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.data.fetch import fetch_debian, fetch_skimage

_CLIPART = "usr/share/openclipart/png"
#: Categories of the benchmark: folders with enough pictures of one kind of thing.
CATEGORIES = ("animals", "food", "transportation", "people", "plants", "buildings", "tools", "geography",
              "electronics", "office")


def default_cache() -> Path:
    from benchmarks.data.devsets import default_cache as devsets_cache

    return devsets_cache()


def skimage_pictures(cache: Path | None = None, log=print) -> dict[str, Path]:
    """``{name: path}`` of scikit-image's sample pictures (fetched on first use)."""
    root = fetch_skimage(cache or default_cache(), log) / "skimage" / "data"
    return {p.stem: p for p in sorted(root.glob("*.png")) + sorted(root.glob("*.jpg"))}


def clipart_set(per_category: int = 20, categories=CATEGORIES, cache: Path | None = None,
                log=print) -> list[tuple[Path, str]]:
    """``(path, category)`` of the first ``per_category`` pictures (sorted by path, sub-folders
    included) of each category. The package files some pictures twice (symlinks, sometimes in
    two categories): each picture counts once, and one filed in two categories not at all (its
    label would be ambiguous)."""
    root = fetch_debian(cache or default_cache(), ["openclipart-png"], log) / _CLIPART
    cats_of: dict[Path, set[str]] = {}
    for cat in categories:
        for f in (root / cat).rglob("*.png"):
            cats_of.setdefault(f.resolve(), set()).add(cat)
    out = []
    for cat in categories:
        seen: set[Path] = set()
        for f in sorted((root / cat).rglob("*.png")):
            real = f.resolve()
            if real in seen or len(cats_of[real]) > 1:
                continue
            seen.add(real)
            out.append((f, cat))
            if len(seen) == per_category:
                break
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=None)
    args = ap.parse_args(argv)
    print(f"scikit-image pictures: {len(skimage_pictures(args.cache))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
