"""The short hash that names a pretrained model's weights in the table's schema metadata."""

from __future__ import annotations

import hashlib
from pathlib import Path


def weights_hash(*paths: str | Path) -> str:
    """First 16 hex digits of the SHA-256 of the files' bytes, in the order given (read in
    4 MiB blocks: weights files are tens of MB)."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()[:16]
