"""Fetches the dev-set sources (Debian packages and the scikit-image wheel) into a cache.

Only the sources issue #12 names are used, so the dev sets stay disjoint from the hidden
evaluation sets. Debian packages are fetched with ``apt-get download`` (one ``apt-get update``
first, if a package is missing) and unpacked with ``dpkg -x``: nothing is installed. The
scikit-image wheel is fetched with ``pip download --no-deps`` and only its ``skimage/data``
pictures are unpacked.
"""

from __future__ import annotations

import glob
import subprocess
import sys
import zipfile
from pathlib import Path

#: Debian package -> licence (as stated in the package's copyright file), for the manifest.
DEBIAN_SOURCES: dict[str, str] = {
    "planetblupi-common": "GPL-3+ (Epsitec SA)",
    "opencv-doc": "Apache-2.0 / BSD-3-Clause (OpenCV docs; Megamind.avi sample)",
    "kphotoalbum": "GPL-2+ (demo movie)",
    "python3-hug-doc": "MIT (hug examples)",
    "python3-imageio": "BSD-2-Clause (imageio resources)",
    "fillets-ng-data-cs": "GPL-2+ (Fish Fillets NG voices, Czech)",
    "fillets-ng-data-nl": "GPL-2+ (Fish Fillets NG voices, Dutch)",
    "festvox-ru": "BSD-like (festvox msu_ru_nsh voice)",
    "scratch": "GPL-2 / CC-BY-SA (Scratch media library)",
    "sonic-pi-samples": "CC0 / CC-BY (Sonic Pi samples, see package copyright)",
    "hedgewars-data": "GPL-2 / CC-BY-SA / FDL (Hedgewars data)",
    "ktuberling-data": "GPL-2+ (KTuberling sounds)",
    "openclipart-png": "Public domain (Open Clip Art Library)",
}
#: Speech with reference transcripts for the ASR tests and benchmark (issue #13).
SPEECH_SOURCES: dict[str, str] = {
    "pocketsphinx-testdata": "BSD-2-Clause (CMU Sphinx test data; LibriVox recordings are public domain)",
}
SKIMAGE = ("scikit-image", "0.26.0", "BSD-3-Clause; pictures: public domain / CC0 / CC-BY (see skimage/data/README)")


def _debs(cache: Path, pkg: str) -> list[str]:
    return sorted(glob.glob(str(cache / "debs" / f"{pkg}_*.deb")))


def fetch_debian(cache: Path, packages: list[str], log=print) -> Path:
    """Downloads (if missing) and unpacks Debian ``packages`` into ``cache / "x"``; returns it.

    Raises:
        RuntimeError: A package could not be fetched (the message names it).
    """
    debs = cache / "debs"
    root = cache / "x"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not _debs(cache, p)]
    if missing:
        log(f"apt-get update; downloading {len(missing)} packages")
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)
        for pkg in missing:
            done = subprocess.run(["apt-get", "download", pkg], cwd=debs, capture_output=True, text=True)
            if done.returncode != 0 or not _debs(cache, pkg):
                raise RuntimeError(f"apt-get download {pkg} failed: {done.stderr.strip()[-300:]}")
    for pkg in packages:
        stamp = root / ".unpacked" / pkg
        if not stamp.exists():
            log(f"unpacking {pkg}")
            subprocess.run(["dpkg", "-x", _debs(cache, pkg)[-1], str(root)], check=True)
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.touch()
    return root


def fetch_all(cache: Path, log=print) -> Path:
    """Downloads (if missing) and unpacks every source; returns the unpack root.

    Args:
        cache: Cache folder (outside the repo), e.g. ``~/.cache/omnialign/devsets``.
        log: Progress sink.

    Returns:
        ``cache / "x"``: the unpacked tree (Debian paths, plus ``skimage/data``).

    Raises:
        RuntimeError: A source could not be fetched (the message names it).
    """
    fetch_debian(cache, list(DEBIAN_SOURCES), log)
    return fetch_skimage(cache, log)


def fetch_skimage(cache: Path, log=print) -> Path:
    """Downloads (if missing) the scikit-image wheel and unpacks only its ``skimage/data``
    pictures into ``cache / "x"``; returns that root."""
    debs, root = cache / "debs", cache / "x"
    debs.mkdir(parents=True, exist_ok=True)
    name, ver, _ = SKIMAGE
    wheels = sorted(glob.glob(str(debs / "scikit_image-*.whl")))
    if not wheels:
        log("pip download scikit-image")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(debs), f"{name}=={ver}"],
                       check=True, capture_output=True)
        wheels = sorted(glob.glob(str(debs / "scikit_image-*.whl")))
    if not (root / "skimage" / "data").exists():
        with zipfile.ZipFile(wheels[-1]) as z:
            for member in z.namelist():
                if member.startswith("skimage/data/") and member.endswith((".png", ".jpg")):
                    z.extract(member, root)
    return root
