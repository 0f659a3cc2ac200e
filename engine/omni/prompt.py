"""The one prompt rendering of stored segments for an omni language model, and its inverse.

:func:`render_prompt` turns segment rows (codes with exact times, transcript text) into the text
an omni model reads; :func:`parse_prompt` turns such text back into codes and text per chunk.
Training data, serving prompts and evaluation must all use this module so that the model sees
one format.

Format (TMRoPE-style interleaving, as in Qwen2.5-Omni: per time chunk, video then audio)::

    <|time_N|> [<|video_start|> v-tokens <|video_end|>] [<|audio_start|> a-tokens <|audio_end|>]
               [<|text_start|> transcript <|text_end|>]
    <|time_N+1|> ...

* A chunk is ``[origin_us + N·chunk_us, origin_us + (N+1)·chunk_us)``; ``chunk_us`` is the
  vocabulary's (2 s by default), ``origin_us`` defaults to the earliest segment start. Markers
  are relative to the origin (what a model can generalise over), so the absolute time is
  ``origin_us + N·chunk_us`` — the caller keeps ``origin_us`` (e.g. in the request metadata).
* Every chunk that a segment overlaps gets a marker, even without tokens (time passed, nothing
  changed); chunks no segment covers (gaps between rows) are skipped, the next marker tells.
* One audio/video token is its ``Q`` stage codes in stage order (``<|a0_K0|><|a1_K1|>...``).
  Within a chunk, video tokens are ordered by ``(t_us, row, col)`` and audio tokens by ``t_us``
  (ties keep input order), so the order follows the media.
* A segment's transcript goes into the chunk holding the segment's last instant
  (``t_end_us - 1``): text about media comes after that media, which is what a causal model can
  use. Several transcripts in one chunk are joined with one space. Empty blocks are left out.

Rendering is exact for codes: ``parse_prompt(render_prompt(rows))`` gives back every code in
the order above (exact token times are not in the text; only their chunk is).

This module works on plain arrays and duck-typed rows (:class:`engine.store.schema.SegmentRow`, dicts);
it does not import the store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from engine.errors import InvalidInputError
from engine.omni.vocab import AUDIO_END, AUDIO_START, TEXT_END, TEXT_START, VIDEO_END, VIDEO_START, OmniVocab

# Any ``<|...|>`` piece: special tokens are matched as whole strings by the tokenizer, so
# transcript text must not contain them (it would change the token stream) and parsing splits
# on them.
SPECIAL_TOKEN_RE = re.compile(r"<\|[^<>|]*\|>")


def _empty_codes() -> np.ndarray:
    return np.zeros((0, 0), np.int64)


def _empty_times() -> np.ndarray:
    return np.zeros(0, np.int64)


@dataclass(frozen=True)
class RenderableSegment:
    """What rendering needs of one stored segment row.

    Attributes:
        t_start_us: Segment start on the stream timeline (microseconds).
        t_end_us: Segment end, exclusive (microseconds).
        audio_codes: int [Ma, Qa] RVQ codes of the kept audio tokens.
        audio_t_us: int64 [Ma] time of each audio token.
        video_codes: int [Mv, Qv] RVQ codes of the kept video region tokens.
        video_t_us: int64 [Mv] frame time of each video token.
        video_row: int [Mv] region grid row (orders tokens of one frame); empty = all 0.
        video_col: int [Mv] region grid column; empty = all 0.
        transcript: Transcript text of the segment, or None.
        codebook_version: Version of the codebooks that produced the codes.
    """

    t_start_us: int
    t_end_us: int
    audio_codes: np.ndarray = field(default_factory=_empty_codes)
    audio_t_us: np.ndarray = field(default_factory=_empty_times)
    video_codes: np.ndarray = field(default_factory=_empty_codes)
    video_t_us: np.ndarray = field(default_factory=_empty_times)
    video_row: np.ndarray = field(default_factory=_empty_times)
    video_col: np.ndarray = field(default_factory=_empty_times)
    transcript: str | None = None
    codebook_version: str = ""

    @classmethod
    def from_row(cls, row) -> RenderableSegment:
        """From a :class:`engine.store.schema.SegmentRow`, a mapping, or anything with those attributes."""
        if isinstance(row, RenderableSegment):
            return row

        def get(name, default=None):
            if isinstance(row, Mapping):
                return row.get(name, default)
            return getattr(row, name, default)

        def arr(name, ndim):
            value = get(name)
            if value is None:
                return np.zeros((0,) * ndim, np.int64)
            return np.asarray(value)

        return cls(int(get("t_start_us")), int(get("t_end_us")), arr("audio_codes", 2), arr("audio_t_us", 1),
                   arr("video_codes", 2), arr("video_t_us", 1), arr("video_row", 1), arr("video_col", 1),
                   get("transcript"), get("codebook_version") or "")


@dataclass(frozen=True)
class ParsedChunk:
    """One chunk read back from a prompt.

    Attributes:
        index: Chunk index N of its ``<|time_N|>`` marker.
        t_start_us: Chunk start, ``origin_us + N·chunk_us``.
        audio_codes: int64 [Ma, Qa] audio codes in prompt order.
        video_codes: int64 [Mv, Qv] video codes in prompt order.
        text: Transcript text of the chunk, or None.
    """

    index: int
    t_start_us: int
    audio_codes: np.ndarray
    video_codes: np.ndarray
    text: str | None


def _check_codes(codes: np.ndarray, t_us: np.ndarray, modality: str, vocab: OmniVocab) -> np.ndarray:
    """Validated int64 [M, Q] codes (raises InvalidInputError for anything the vocab cannot hold)."""
    q, k = vocab.sizes(modality)
    if codes.size == 0 and len(t_us) == 0:
        return np.zeros((0, q), np.int64)
    if codes.ndim != 2 or codes.shape[1] != q:
        raise InvalidInputError(f"{modality}_codes", f"shape {codes.shape} does not match the vocabulary's "
                                                     f"{q} {modality} stages")
    if len(codes) != len(t_us):
        raise InvalidInputError(f"{modality}_t_us", f"{len(t_us)} times for {len(codes)} tokens")
    if not np.issubdtype(codes.dtype, np.integer):
        raise InvalidInputError(f"{modality}_codes", f"dtype {codes.dtype} is not an integer type")
    codes = codes.astype(np.int64)
    bad = np.argwhere((codes < 0) | (codes >= k))
    if len(bad):
        i, s = bad[0]
        vocab.check_code(modality, int(s), int(codes[i, s]))  # raises with the offending code
    return codes


def _check_text(text: str) -> str:
    if SPECIAL_TOKEN_RE.search(text):
        raise InvalidInputError("transcript", f"contains a special-token string {SPECIAL_TOKEN_RE.search(text).group()!r}")
    return text


def render_prompt(segments: Iterable, vocab: OmniVocab, origin_us: int | None = None) -> str:
    """Renders segment rows into one prompt, interleaved per time chunk (see the module docstring).

    Args:
        segments: Rows (:class:`RenderableSegment`, :class:`engine.store.schema.SegmentRow`, dicts), any order.
        vocab: The model's token layout; its ``chunk_us`` is the chunk length.
        origin_us: Start of chunk 0; default the earliest ``t_start_us``. Must not be later
            than any segment start or token time.

    Returns:
        The prompt text ("" for no segments).

    Raises:
        InvalidInputError: Codes outside the vocabulary layout, a ``codebook_version`` other
            than the vocabulary's on a row with codes, times before ``origin_us``, more chunks
            than time markers, or a transcript holding a special-token string.
    """
    segs = sorted((RenderableSegment.from_row(s) for s in segments), key=lambda s: s.t_start_us)
    if not segs:
        return ""
    origin = segs[0].t_start_us if origin_us is None else int(origin_us)
    chunk_us = vocab.chunk_us

    covered: set[int] = set()
    texts: dict[int, list[str]] = {}
    parts = {m: ([], [], []) for m in ("audio", "video")}  # codes, chunk, sort keys
    for seg in segs:
        if seg.t_end_us <= seg.t_start_us:
            raise InvalidInputError("t_end_us", f"segment [{seg.t_start_us}, {seg.t_end_us}) is empty")
        if seg.t_start_us < origin:
            raise InvalidInputError("origin_us", f"{origin} is after a segment start {seg.t_start_us}")
        first, last = (seg.t_start_us - origin) // chunk_us, (seg.t_end_us - 1 - origin) // chunk_us
        covered.update(range(first, last + 1))
        if seg.transcript:
            texts.setdefault(last, []).append(_check_text(seg.transcript))
        has_codes = False
        for modality, codes, t_us in (("audio", seg.audio_codes, seg.audio_t_us),
                                      ("video", seg.video_codes, seg.video_t_us)):
            t_us = np.asarray(t_us, np.int64)
            codes = _check_codes(np.asarray(codes), t_us, modality, vocab)
            if not len(codes):
                continue
            has_codes = True
            if int(t_us.min()) < origin:
                raise InvalidInputError(f"{modality}_t_us", f"token time {int(t_us.min())} is before origin {origin}")
            chunk = (t_us - origin) // chunk_us
            covered.update(np.unique(chunk).tolist())
            if modality == "video":
                n = len(codes)
                row = np.asarray(seg.video_row, np.int64) if len(seg.video_row) else np.zeros(n, np.int64)
                col = np.asarray(seg.video_col, np.int64) if len(seg.video_col) else np.zeros(n, np.int64)
                keys = np.stack([t_us, row, col], axis=1)
            else:
                keys = t_us[:, None]
            parts[modality][0].append(codes)
            parts[modality][1].append(chunk)
            parts[modality][2].append(keys)
        if has_codes:
            vocab.check_codebook_version(seg.codebook_version, f"segment at {seg.t_start_us} us")
    if max(covered) >= vocab.time_markers:
        raise InvalidInputError("segments", f"span {max(covered) + 1} chunks of {chunk_us} us; the vocabulary has "
                                            f"{vocab.time_markers} time markers (render a shorter window)")

    # Per modality: the token strings of each token, grouped by chunk in media order.
    by_chunk: dict[str, dict[int, list[str]]] = {}
    for modality, (codes_l, chunk_l, keys_l) in parts.items():
        by_chunk[modality] = {}
        if not codes_l:
            continue
        codes, chunk, keys = np.concatenate(codes_l), np.concatenate(chunk_l), np.concatenate(keys_l)
        # lexsort: last key is primary; input position is the final tie-break (stable order).
        order = np.lexsort((np.arange(len(codes)), *keys.T[::-1], chunk))
        q, k = vocab.sizes(modality)
        table = [[vocab.code_token(modality, s, c) for c in range(k)] for s in range(q)]
        for i in order:
            token = "".join(table[s][c] for s, c in enumerate(codes[i].tolist()))
            by_chunk[modality].setdefault(int(chunk[i]), []).append(token)

    out = []
    for n in sorted(covered):
        out.append(vocab.time_token(n))
        if n in by_chunk["video"]:
            out += [VIDEO_START, *by_chunk["video"][n], VIDEO_END]
        if n in by_chunk["audio"]:
            out += [AUDIO_START, *by_chunk["audio"][n], AUDIO_END]
        if n in texts:
            out += [TEXT_START, " ".join(texts[n]), TEXT_END]
    return "".join(out)


def parse_prompt(text: str, vocab: OmniVocab, origin_us: int = 0) -> list[ParsedChunk]:
    """Reads a prompt written by :func:`render_prompt` back into codes and text per chunk.

    Args:
        text: The prompt (e.g. ``tokenizer.decode(ids)`` of a rendered prompt).
        vocab: The layout it was rendered with.
        origin_us: The origin it was rendered with (only sets ``ParsedChunk.t_start_us``).

    Raises:
        InvalidInputError: Text that does not follow the format, or tokens outside the layout.
    """
    pieces = [p for p in re.split(f"({SPECIAL_TOKEN_RE.pattern})", text) if p]
    chunks: list[ParsedChunk] = []
    i = 0

    def fail(reason: str):
        raise InvalidInputError("prompt", f"piece {i} ({pieces[i] if i < len(pieces) else 'end'!r}): {reason}")

    while i < len(pieces):
        n = vocab.parse_time_token(pieces[i])
        if n is None:
            fail("expected a time marker")
        i += 1
        codes = {"audio": [], "video": []}
        chunk_text = None
        for start, end, modality in ((VIDEO_START, VIDEO_END, "video"), (AUDIO_START, AUDIO_END, "audio")):
            if i < len(pieces) and pieces[i] == start:
                i += 1
                q = vocab.sizes(modality)[0]
                token: list[int] = []
                while i < len(pieces) and pieces[i] != end:
                    code = vocab.parse_code_token(pieces[i])
                    if code is None or code.modality != modality or code.stage != len(token):
                        fail(f"expected {modality} stage {len(token)}")
                    token.append(code.code)
                    if len(token) == q:
                        codes[modality].append(token)
                        token = []
                    i += 1
                if i == len(pieces) or token:
                    fail(f"unterminated {modality} block")
                i += 1
        if i < len(pieces) and pieces[i] == TEXT_START:
            if i + 2 < len(pieces) and pieces[i + 2] == TEXT_END:
                chunk_text, i = pieces[i + 1], i + 3
            else:
                fail("expected transcript text then <|text_end|>")
        arrays = {m: np.asarray(c, np.int64).reshape(-1, vocab.sizes(m)[0]) for m, c in codes.items()}
        chunks.append(ParsedChunk(n, origin_us + n * vocab.chunk_us, arrays["audio"], arrays["video"], chunk_text))
    return chunks
