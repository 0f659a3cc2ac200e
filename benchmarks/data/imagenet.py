"""ImageNet class names for the zero-shot ConSE peer (issue #14).

They ship in torchvision's wheel (``torchvision/models/_meta.py``); the wheel is fetched with
``pip download --no-deps`` into the dev-set cache and only that file is read, never installed
(PyPI's torchvision is a CUDA build that would break this machine's imports).
"""

from __future__ import annotations

import ast
import glob
import subprocess
import sys
import zipfile
from pathlib import Path

TORCHVISION = ("torchvision", "0.28.0")


def imagenet_classes(cache: Path | None = None) -> list[str]:
    """The 1,000 ImageNet-1k class names in the classifier's order."""
    from benchmarks.data.devsets import default_cache

    debs = (cache or default_cache()) / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    name, ver = TORCHVISION
    wheels = sorted(glob.glob(str(debs / f"{name}-{ver}-*.whl")))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(debs), f"{name}=={ver}"],
                       check=True, capture_output=True)
        wheels = sorted(glob.glob(str(debs / f"{name}-{ver}-*.whl")))
    with zipfile.ZipFile(wheels[-1]) as z:
        src = z.read("torchvision/models/_meta.py").decode()
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_IMAGENET_CATEGORIES" for t in node.targets):
            names = ast.literal_eval(node.value)
            if len(names) != 1000:
                raise RuntimeError(f"expected 1000 ImageNet classes, found {len(names)}")
            return list(names)
    raise RuntimeError("_IMAGENET_CATEGORIES not found in torchvision's wheel")
