"""Real pictures and sounds with their texts: the dev set of the alignment training (issue #14).

Only the sources the team's notes list for dev sets, all from Debian packages, cached outside the
repo:

* ``openclipart-png`` pictures, titled by the ``<dc:title>`` of the same drawing in
  ``openclipart-svg`` (the PNGs are renderings of the SVGs, same relative paths). Collection
  names used as titles of many drawings ("Etiquette Icons") are no description and are
  dropped, so is every title after its first picture (one picture per title: a text query then
  has one right answer). Folders of icons, buttons, gradients, shapes and logos are left out.
* Labelled sounds: ``scratch``'s sound library, ``sonic-pi-samples`` and ``hedgewars-data``'s
  effects, each described by its file name split into words (``HorseGallop`` -> "horse gallop").
* Speech: ``hedgewars-data``'s voice packs, the phrase each file says (``Comeonthen`` ->
  "come on then"), split by voice so evaluated voices are never heard in training.

Splits are deterministic: a hash of the path puts a fifth of the pictures and sounds in
``eval``; three picture kinds (sub-folders) are held out of training entirely (``unseen``).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks.data.fetch import fetch_debian

_SVG = "usr/share/openclipart/svg"
_PNG = "usr/share/openclipart/png"
#: Folders without depictions (icon themes, UI parts, gradients, logos).
_SKIP_TOP = {"computer", "buttons", "decorations", "special", "shapes", "logos"}
#: Picture kinds never trained on: the "kind never seen in training" report queries them.
UNSEEN_KINDS = ("animals/bugs", "food/fruit", "transportation/vehicles")
#: A title shared by more drawings than this names a collection, not a picture.
_MAX_TITLE_USES = 3
_TITLE = re.compile(r"<cc:Work.*?<dc:title>([^<]*)</dc:title>", re.S)

SOUND_PACKAGES = ("scratch", "sonic-pi-samples", "hedgewars-data")
#: The spoken phrases of the Hedgewars voice packs, as said.
PHRASES = {"Byebye": "bye bye", "Comeonthen": "come on then", "Coward": "coward", "Cutitout": "cut it out",
           "Enemydown": "enemy down", "Firstblood": "first blood", "Flawless": "flawless", "Hello": "hello",
           "Hurry": "hurry", "Illgetyou": "i'll get you", "Incoming": "incoming", "Kamikaze": "kamikaze",
           "Leavemealone": "leave me alone", "Melon": "melon", "Missed": "missed", "Nutter": "nutter",
           "Oops": "oops", "Reinforcements": "reinforcements", "Sameteam": "same team", "Stupid": "stupid",
           "Takecover": "take cover", "Traitor": "traitor", "Victory": "victory", "Watchit": "watch it",
           "Yessir": "yes sir", "Youllregretthat": "you'll regret that"}
VOICES_TRAIN = ("Classic", "Default", "HillBilly", "Mobster", "Pirate", "Singer")
VOICES_EVAL = ("British", "Robot", "Surfer")


@dataclass(frozen=True)
class Captioned:
    """A file, its text, its split and its kind (picture sub-folder, sound library, voice)."""

    path: str
    text: str
    split: str
    kind: str


def _cache() -> Path:
    from benchmarks.data.devsets import default_cache

    return default_cache()


def eval_by_hash(key: str, share: int = 5) -> bool:
    """Whether ``key`` (a file's path in its package) is in the eval split: one in ``share``, by
    hash, so the split never depends on which files a package version happens to hold."""
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % share == 0


def words_of(name: str) -> str:
    """A file stem as words: ``HorseGallop2`` -> "horse gallop", ``drum_heavy_kick`` -> "drum heavy kick"."""
    s = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    s = re.sub(r"[_\-.]+", " ", s)
    s = re.sub(r"\d+", " ", s)
    return " ".join(s.lower().split())


def clean_title(title: str) -> str:
    return " ".join(words_of(title.strip()).split())


def pictures(log=print) -> list[Captioned]:
    """Titled clip-art pictures (see the module doc)."""
    root = fetch_debian(_cache(), ["openclipart-png", "openclipart-svg"], log)
    titled: list[tuple[str, Path, str]] = []
    for svg in sorted((root / _SVG).rglob("*.svg")):
        rel = svg.relative_to(root / _SVG)
        if rel.parts[0] in _SKIP_TOP:
            continue
        png = (root / _PNG / rel).with_suffix(".png")
        if not png.is_file():
            continue
        m = _TITLE.search(svg.read_text(errors="ignore"))
        title = clean_title(m.group(1)) if m else ""
        if len(title) >= 3:
            titled.append((title, png, "/".join(rel.parts[:2]) if len(rel.parts) > 2 else rel.parts[0]))
    uses = Counter(t for t, _, _ in titled)
    out, seen = [], set()
    for title, png, kind in titled:
        if uses[title] > _MAX_TITLE_USES or title in seen:
            continue
        seen.add(title)
        split = "eval" if kind in UNSEEN_KINDS or eval_by_hash(str(png.relative_to(root))) else "train"
        out.append(Captioned(str(png), title, split, kind))
    return out


def sounds(log=print) -> list[Captioned]:
    """Labelled sound effects and samples (see the module doc)."""
    root = fetch_debian(_cache(), list(SOUND_PACKAGES), log)
    files = []
    for lib, pattern in (("scratch", "usr/share/scratch/Media/Sounds/*/*"),
                         ("sonic-pi", "usr/share/sonic-pi/samples/*.flac"),
                         ("hedgewars", "usr/share/games/hedgewars/Data/Sounds/*.ogg")):
        files += [(lib, p) for p in sorted(root.glob(pattern)) if p.suffix in (".wav", ".mp3", ".flac", ".ogg")]
    out = []
    for lib, p in files:
        text = words_of(p.stem)
        if len(text) < 3:
            continue
        split = "eval" if eval_by_hash(str(p.relative_to(root))) else "train"
        out.append(Captioned(str(p), text, split, lib))
    return out


def speech(log=print) -> list[Captioned]:
    """Spoken phrases of the Hedgewars voice packs, split by voice."""
    root = fetch_debian(_cache(), ["hedgewars-data"], log)
    voices = root / "usr/share/games/hedgewars/Data/Sounds/voices"
    out = []
    for voice in VOICES_TRAIN + VOICES_EVAL:
        for stem, text in PHRASES.items():
            f = voices / voice / f"{stem}.ogg"
            if f.is_file():
                out.append(Captioned(str(f), text, "eval" if voice in VOICES_EVAL else "train", f"voice:{voice}"))
    return out
