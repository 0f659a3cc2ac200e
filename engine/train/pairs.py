"""The pairs table: frozen features of one modality next to the anchor embedding of their text.

Stage 1 reads it through Ray Data (``ray.data.read_lance``) into the Train workers. One table
holds every modality (a ``modality`` filter picks one), keyed by a deterministic ``pair_id`` and
written with merge-insert, so re-running a builder never duplicates a pair.

Columns: ``pair_id``, ``modality``, ``encoder`` (frozen encoder name@hash), ``split``
(``train``/``eval``), ``text`` (the paired text), ``group`` (pairs with the same text share it:
they are all positives of each other), ``feature`` (fixed-size float32, the encoder's width) and
``anchor`` (384 float32, MiniLM of ``text``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.errors import InvalidInputError
from engine.train.config import ANCHOR_DIM, MODALITIES

TABLE = "pairs"
SPLITS = ("train", "eval")


@dataclass(frozen=True)
class PairSet:
    """Pairs of one modality, as arrays (what a builder writes, what evaluation reads).

    Attributes:
        modality: ``image``, ``audio`` or ``codes``.
        encoder: The frozen encoder (name@hash) the features come from.
        ids: ``[N]`` pair ids (unique, deterministic).
        texts: ``[N]`` paired texts.
        splits: ``[N]`` ``train``/``eval``.
        features: ``[N, F]`` float32.
        anchors: ``[N, 384]`` float32 unit vectors.
    """

    modality: str
    encoder: str
    ids: list[str]
    texts: list[str]
    splits: list[str]
    features: np.ndarray
    anchors: np.ndarray

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise InvalidInputError("modality", f"must be one of {MODALITIES}, got {self.modality!r}")
        n = len(self.ids)
        if len(set(self.ids)) != n:
            raise InvalidInputError("ids", "pair ids must be unique")
        if not (len(self.texts) == len(self.splits) == len(self.features) == len(self.anchors) == n):
            raise InvalidInputError("pairs", "ids, texts, splits, features and anchors must have equal lengths")
        if self.anchors.ndim != 2 or self.anchors.shape[1] != ANCHOR_DIM:
            raise InvalidInputError("anchors", f"must be [N, {ANCHOR_DIM}], got {self.anchors.shape}")
        bad = set(self.splits) - set(SPLITS)
        if bad:
            raise InvalidInputError("splits", f"unknown split(s) {sorted(bad)}; known: {SPLITS}")

    def groups(self) -> np.ndarray:
        """``[N]`` ids equal for equal (case-folded) texts."""
        index: dict[str, int] = {}
        return np.array([index.setdefault(t.strip().lower(), len(index)) for t in self.texts], np.int64)

    def split(self, name: str) -> "PairSet":
        """The pairs of one split."""
        keep = [i for i, s in enumerate(self.splits) if s == name]
        return PairSet(self.modality, self.encoder, [self.ids[i] for i in keep], [self.texts[i] for i in keep],
                       [name] * len(keep), self.features[keep], self.anchors[keep])


def _tables(db) -> list[str]:
    return list(db.list_tables().tables)


def _fixed(values: np.ndarray) -> pa.FixedSizeListArray:
    v = np.ascontiguousarray(values, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])


def write_pairs(db_dir: str | Path, pairs: PairSet) -> str:
    """Upserts ``pairs`` into ``db_dir``'s pairs table (one table per feature width: a table's
    ``feature`` column has one width); returns the table's Lance URI."""
    import lancedb

    name = f"{TABLE}_{pairs.modality}"
    groups = pairs.groups()
    data = pa.table({"pair_id": pairs.ids, "modality": [pairs.modality] * len(pairs.ids),
                     "encoder": [pairs.encoder] * len(pairs.ids), "split": pairs.splits, "text": pairs.texts,
                     "group": groups, "feature": _fixed(pairs.features), "anchor": _fixed(pairs.anchors)})
    db = lancedb.connect(str(db_dir))
    if name in _tables(db):
        tbl = db.open_table(name)
        (tbl.merge_insert("pair_id").when_matched_update_all().when_not_matched_insert_all().execute(data))
    else:
        db.create_table(name, data)
    return str(Path(db_dir) / f"{name}.lance")


def read_pairs(db_dir: str | Path, modality: str) -> PairSet:
    """The whole pairs table of ``modality`` as a :class:`PairSet` (for evaluation).

    Raises:
        InvalidInputError: No pairs of that modality are stored.
    """
    import lancedb

    db = lancedb.connect(str(db_dir))
    name = f"{TABLE}_{modality}"
    if name not in _tables(db):
        raise InvalidInputError(str(db_dir), f"no {modality} pairs stored (table {name!r} is missing)")
    t = db.open_table(name).to_arrow().sort_by("pair_id")
    feats = np.stack(t.column("feature").to_numpy(zero_copy_only=False)).astype(np.float32)
    anchors = np.stack(t.column("anchor").to_numpy(zero_copy_only=False)).astype(np.float32)
    encoders = set(t.column("encoder").to_pylist())
    if len(encoders) != 1:
        raise InvalidInputError(name, f"pairs of several encoders {sorted(encoders)} in one table")
    return PairSet(modality, encoders.pop(), t.column("pair_id").to_pylist(), t.column("text").to_pylist(),
                   t.column("split").to_pylist(), feats, anchors)


def pairs_uri(db_dir: str | Path, modality: str) -> str:
    """The Lance URI of ``modality``'s pairs table (what ``ray.data.read_lance`` reads)."""
    return str(Path(db_dir) / f"{TABLE}_{modality}.lance")
