"""Hierarchical compression of a segment's tokens (used by :mod:`engine.tokenize.tokenizer`).

Three steps, each keeping the **exact** ``t_us`` (and for video the ``row``/``col``) of a source
token -- a kept or merged token is never stamped with an interpolated time:

1. Keyframes (:func:`select_keyframes`): a frame's change score is the relative L2 distance
   between its region features and those of the last kept keyframe. Frame 0 and every scene cut
   (score against the *previous* frame >= ``scene_cut_threshold``) are always kept; other
   frames are kept when their score reaches ``keyframe_threshold``.
2. Region merging (:func:`merge_regions`): within each kept frame, 4-neighbour-adjacent regions
   are merged greedily, most similar pair (cosine of mean features) first, until the segment
   fits ``budget_tokens_per_s``. A merged token's features are the mean of its members; its
   codes, ``t_us``, ``row`` and ``col`` are those of its representative -- the member nearest
   to that mean.
3. Audio run-length (:func:`merge_audio_runs`): consecutive frames whose first
   ``match_stages`` codes are equal collapse into the run's first frame, with a frame count and
   a duration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numba
import numpy as np

from engine.errors import InvalidInputError, check_fields
from engine.tokenize.features import Features


@dataclass(frozen=True)
class CompressionConfig:
    """Knobs of the hierarchical compression.

    Attributes:
        keyframe_threshold: Relative change (``||f - f_key|| / ||f_key||`` over the frame's
            concatenated region features) from the last keyframe that makes a new keyframe.
        scene_cut_threshold: Relative change from the previous frame that marks a scene cut
            (always kept).
        budget_tokens_per_s: Maximum video region tokens per second of segment.
        audio_match_stages: Leading RVQ stages that must be equal for consecutive audio frames
            to merge (``None`` = all stages, i.e. identical codes).
    """

    keyframe_threshold: float = 0.15
    scene_cut_threshold: float = 0.5
    budget_tokens_per_s: float = 128.0
    audio_match_stages: Optional[int] = 2

    def __post_init__(self) -> None:
        check_fields(self, non_negative=("keyframe_threshold", "scene_cut_threshold"),
                     positive=("budget_tokens_per_s", "audio_match_stages"))


class _TokenCounts:
    """Token counts shared by :class:`VideoTokens` and :class:`AudioTokens` (``codes`` [M, Q],
    ``tokens_in``)."""

    codes: np.ndarray
    tokens_in: int

    @property
    def tokens_out(self) -> int:
        return int(self.codes.shape[0])

    @property
    def compression_ratio(self) -> float:
        """tokens_in / tokens_out."""
        return self.tokens_in / max(1, self.tokens_out)


@dataclass(frozen=True)
class VideoTokens(_TokenCounts):
    """Compressed video region tokens of one segment.

    Attributes:
        codes: int64 [M, Q] RVQ codes (the representative's).
        values: float32 [M, D] mean features of the merged regions.
        t_us: int64 [M] exact frame time of the representative source token.
        row: int32 [M] grid row of the representative.
        col: int32 [M] grid column of the representative.
        num_regions: int32 [M] source regions merged into each token.
        source_index: int64 [M] index of the representative in the input tokens.
        tokens_in: Region tokens before compression.
        keyframes: Indices of the kept frames (into the segment's frames).
    """

    codes: np.ndarray
    values: np.ndarray
    t_us: np.ndarray
    row: np.ndarray
    col: np.ndarray
    num_regions: np.ndarray
    source_index: np.ndarray
    tokens_in: int
    keyframes: np.ndarray


@dataclass(frozen=True)
class AudioTokens(_TokenCounts):
    """Run-length merged audio tokens of one segment.

    Attributes:
        codes: int64 [M, Q] codes of each run's first frame.
        t_us: int64 [M] exact time of each run's first frame.
        frame_count: int32 [M] frames in each run.
        duration_us: int64 [M] run duration (frame_count * hop_us).
        source_index: int64 [M] index of the run's first frame in the input.
        tokens_in: Frames before merging.
    """

    codes: np.ndarray
    t_us: np.ndarray
    frame_count: np.ndarray
    duration_us: np.ndarray
    source_index: np.ndarray
    tokens_in: int


# --------------------------------------------------------------------------------------------
# 1. keyframes


def frame_change_scores(frame_vectors: np.ndarray) -> np.ndarray:
    """Relative L2 change of each frame from the previous one (frame 0 scores +inf)."""
    diff = np.linalg.norm(np.diff(frame_vectors, axis=0), axis=1)
    base = np.linalg.norm(frame_vectors[:-1], axis=1) + 1e-12
    return np.concatenate([[np.inf], diff / base])


def select_keyframes(frame_vectors: np.ndarray, config: CompressionConfig) -> np.ndarray:
    """Indices of kept frames (sorted). Frame 0 and every scene cut are always kept.

    Args:
        frame_vectors: float [F, E] one vector per frame (e.g. its region features flattened).
        config: Thresholds.
    """
    if frame_vectors.shape[0] == 0:
        raise InvalidInputError("frame_vectors", "no frames")
    cuts = frame_change_scores(frame_vectors) >= config.scene_cut_threshold
    kept = [0]
    for i in range(1, frame_vectors.shape[0]):
        ref = frame_vectors[kept[-1]]
        change = np.linalg.norm(frame_vectors[i] - ref) / (np.linalg.norm(ref) + 1e-12)
        if cuts[i] or change >= config.keyframe_threshold:
            kept.append(i)
    return np.asarray(kept, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# 2. region merging


def _merge_frame(values: np.ndarray, row: np.ndarray, col: np.ndarray, target: int) -> np.ndarray:
    """Greedy adjacent merging inside one frame; returns a group label per region.

    Repeatedly merges the 4-neighbour-adjacent pair of groups whose mean features have the
    highest cosine similarity (the lexicographically first pair on ties; the higher-numbered
    group joins the lower) until ``target`` groups remain.
    """
    n = values.shape[0]
    if n <= target:
        return np.arange(n)
    # Right and down neighbours through a (row, col) -> region lookup grid: vectorised, since a
    # per-region Python loop here cost as much as the merge itself.
    row, col = np.asarray(row, np.int64), np.asarray(col, np.int64)
    row, col = row - row.min(), col - col.min()
    grid = np.full((int(row.max()) + 2, int(col.max()) + 2), -1, np.int64)
    grid[row, col] = np.arange(n)
    adj = np.zeros((n, n), dtype=np.bool_)
    for j in (grid[row, col + 1], grid[row + 1, col]):
        has = j >= 0
        i, k = np.flatnonzero(has), j[has]
        adj[np.minimum(i, k), np.maximum(i, k)] = True
    return _merge_groups(values.astype(np.float64), adj, int(target))


@numba.njit(cache=True, nogil=True)
def _merge_groups(values, adj, target):  # pragma: no cover - compiled
    # Compiled: the greedy loop is O(merges x groups^2) and ran ~1 ms per frame in numpy, the
    # dominant cost of tokenizing video; here only the merged group's similarities change.
    n, d = values.shape
    labels = np.arange(n)
    sums = values.copy()
    counts = np.ones(n)
    unit = np.empty((n, d))
    for i in range(n):
        norm = np.sqrt((values[i] * values[i]).sum()) + 1e-12
        unit[i] = values[i] / norm
    groups = n
    while groups > target:
        best = -np.inf
        ba = -1
        bb = -1
        for a in range(n):
            for b in range(a + 1, n):
                if adj[a, b]:
                    sim = 0.0
                    for k in range(d):
                        sim += unit[a, k] * unit[b, k]
                    if sim > best:
                        best = sim
                        ba = a
                        bb = b
        if ba < 0:
            break  # no adjacent pair left (disconnected regions)
        sums[ba] += sums[bb]
        counts[ba] += counts[bb]
        for i in range(n):
            if labels[i] == bb:
                labels[i] = ba
        for k in range(n):  # bb's neighbours become ba's; bb disappears
            if k != ba and k != bb and (adj[min(k, bb), max(k, bb)]):
                adj[min(k, ba), max(k, ba)] = True
            adj[min(k, bb), max(k, bb)] = False
        adj[ba, bb] = False
        mean = sums[ba] / counts[ba]
        norm = np.sqrt((mean * mean).sum()) + 1e-12
        unit[ba] = mean / norm
        groups -= 1
    return labels


@numba.njit(cache=True, nogil=True)
def group_representatives(values, labels):  # pragma: no cover - compiled
    # Per group, in increasing label order: the member closest to the group mean (first on
    # ties), the mean, and the size. Compiled: per-group numpy calls cost more than the merge.
    n, d = values.shape
    sums = np.zeros((n, d))
    counts = np.zeros(n, np.int64)
    for i in range(n):
        counts[labels[i]] += 1
        sums[labels[i]] += values[i]
    groups = np.flatnonzero(counts)
    means = np.empty((groups.size, d))
    slot = np.full(n, -1)
    for g in range(groups.size):
        slot[groups[g]] = g
        means[g] = sums[groups[g]] / counts[groups[g]]
    best = np.full(groups.size, np.inf)
    rep = np.full(groups.size, -1)
    for i in range(n):
        g = slot[labels[i]]
        dist = 0.0
        for k in range(d):
            diff = values[i, k] - means[g, k]
            dist += diff * diff
        if dist < best[g]:
            best[g] = dist
            rep[g] = i
    return rep, means, counts[groups]


def merge_regions(features: Features, codes: np.ndarray, keyframes: np.ndarray,
                  duration_us: int, config: CompressionConfig) -> VideoTokens:
    """Keeps the keyframes' regions and merges them down to the token budget.

    Args:
        features: Region features of the segment (with ``row``, ``col``, ``frame_index``).
        codes: int [N, Q] RVQ codes of ``features`` rows.
        keyframes: Kept frame indices (from :func:`select_keyframes`).
        duration_us: Segment duration; budget = ``floor(budget_tokens_per_s * duration_us / 1e6)``
            (at least one token per kept frame -- keyframes beyond the budget are dropped, the
            most-changed ones and frame 0 kept first).
        config: Budget.
    """
    if features.row is None or features.frame_index is None:
        raise InvalidInputError("features", "region features need row, col and frame_index")
    if codes.shape[0] != len(features):
        raise InvalidInputError("codes", f"has {codes.shape[0]} rows, features have {len(features)}")
    if duration_us <= 0:
        raise InvalidInputError("duration_us", f"must be > 0, got {duration_us}")
    budget = max(1, int(config.budget_tokens_per_s * duration_us // 1_000_000))
    keyframes = np.sort(np.asarray(keyframes, dtype=np.int64))
    if keyframes.size > budget:  # more keyframes than tokens: keep frame 0, then the biggest changes
        frame_vecs = np.stack([features.values[features.frame_index == f].ravel() for f in keyframes])
        scores = frame_change_scores(frame_vecs)  # change between consecutive keyframes
        keyframes = np.sort(keyframes[np.argsort(-scores, kind="stable")[:budget]])
    per_frame = np.full(keyframes.size, budget // keyframes.size)
    per_frame[: budget % keyframes.size] += 1  # remainder to the earliest frames

    out_idx, out_vals, out_sizes = [], [], []
    for f, target in zip(keyframes, per_frame):
        idx = np.flatnonzero(features.frame_index == f)
        vals = features.values[idx]
        labels = _merge_frame(vals, features.row[idx], features.col[idx], int(target))
        rep, mean, size = group_representatives(vals.astype(np.float64), labels)
        out_idx.append(idx[rep])
        out_vals.append(mean)
        out_sizes.append(size)
    src = np.concatenate(out_idx).astype(np.int64)
    return VideoTokens(codes=np.asarray(codes)[src].astype(np.int64), values=np.concatenate(out_vals).astype(np.float32),
                       t_us=features.t_us[src].copy(), row=features.row[src].copy(), col=features.col[src].copy(),
                       num_regions=np.concatenate(out_sizes).astype(np.int32), source_index=src,
                       tokens_in=len(features), keyframes=keyframes)


# --------------------------------------------------------------------------------------------
# 3. audio runs


def merge_audio_runs(codes: np.ndarray, t_us: np.ndarray, hop_us: int = 10_000,
                     match_stages: Optional[int] = 2) -> AudioTokens:
    """Collapses consecutive audio frames with equal leading codes into their first frame.

    Args:
        codes: int [N, Q] codes per frame.
        t_us: int64 [N] frame times.
        hop_us: Frame hop, microseconds (10 000 for the default log-mel).
        match_stages: Leading stages compared (None = all).
    """
    codes = np.asarray(codes)
    t_us = np.asarray(t_us, dtype=np.int64)
    if codes.ndim != 2 or codes.shape[0] == 0:
        raise InvalidInputError("codes", f"must be non-empty [N, Q], got shape {codes.shape}")
    if t_us.shape != (codes.shape[0],):
        raise InvalidInputError("t_us", f"must have shape ({codes.shape[0]},), got {t_us.shape}")
    key = codes[:, : (match_stages or codes.shape[1])]
    starts = np.concatenate([[True], (key[1:] != key[:-1]).any(axis=1)])
    first = np.flatnonzero(starts)
    counts = np.diff(np.append(first, codes.shape[0])).astype(np.int32)
    return AudioTokens(codes=codes[first].astype(np.int64), t_us=t_us[first].copy(), frame_count=counts,
                       duration_us=counts.astype(np.int64) * hop_us, source_index=first.astype(np.int64),
                       tokens_in=int(codes.shape[0]))
