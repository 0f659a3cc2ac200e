"""Transcript sidecars (``.srt`` / ``.vtt``) parsed onto the unified timeline.

A sidecar sits next to its media file with the same stem (``talk.mp4`` -> ``talk.srt`` or
``talk.vtt``). Its cue times count from the start of the media as a player shows it, which is
the zero of omnialign's unified timeline (the earliest stream start), so a cue maps to the
timeline unchanged; ``offset_us`` shifts it when a sidecar is known to be off.

Parsing is line based and forgiving about layout -- BOM, CRLF, several blank lines, a missing
blank line between SRT cues, VTT headers, ``NOTE``/``STYLE``/``REGION`` blocks, cue identifiers
and cue settings -- but strict about timestamps: a timing line that cannot be read raises
:class:`TranscriptError` naming the file and line, because silently dropping a cue would shift
what the search layer believes was said when.

Cue text is cleaned for search: markup tags (``<i>``, ``<v Speaker>``, ``<00:01.000>``), SRT
override codes (``{\\an8}``) and HTML entities are removed or decoded, and the cue's lines are
joined with single spaces.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from engine.errors import OmniAlignError
from engine.media.decode import Segment
from engine.media.sources import classify

#: Sidecar suffixes looked for, in order of preference.
SIDECAR_SUFFIXES = (".srt", ".vtt")

_US_PER_MS = 1000
# [hours:]minutes:seconds(,|.)milliseconds. Hours may have any number of digits (long
# recordings); SRT writes a comma, VTT a dot, and real files mix them, so both are accepted.
_TIMESTAMP = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{3})$")
# A line that looks like the start of a timing line ("00:01" ...) but has no "-->": a broken
# arrow. Caught so the cue is reported instead of vanishing.
_LOOKS_LIKE_TIMING = re.compile(r"^\d+:\d{2}")
_TAG = re.compile(r"<[^>]*>")
_SRT_OVERRIDE = re.compile(r"\{\\[^}]*\}")
_VTT_BLOCKS_TO_SKIP = ("NOTE", "STYLE", "REGION")


class TranscriptError(OmniAlignError, ValueError):
    """A transcript sidecar could not be parsed.

    Attributes:
        path: The file (or ``"<string>"``) the error is about.
        line: 1-based line number of the offending line.
        reason: Human-readable reason, one line.
    """

    def __init__(self, path: str, line: int, reason: str) -> None:
        self.path = str(path)
        self.line = int(line)
        self.reason = reason
        super().__init__(f"{self.path}:{self.line}: {reason}")

    def __reduce__(self):  # keep the fields across pickling (Ray tasks, processes)
        return (type(self), (self.path, self.line, self.reason))


@dataclass(frozen=True)
class Cue:
    """One subtitle cue on the unified timeline.

    Attributes:
        t_start_us: Start of the cue (microseconds, inclusive).
        t_end_us: End of the cue (microseconds, exclusive).
        text: Cleaned cue text, lines joined by single spaces.
    """

    t_start_us: int
    t_end_us: int
    text: str


def parse_timestamp(value: str) -> int:
    """Parses an SRT/VTT timestamp (``[HH:]MM:SS,mmm`` or ``[HH:]MM:SS.mmm``) to microseconds.

    Raises:
        ValueError: The value is not a timestamp (callers wrap it with file and line).
    """
    m = _TIMESTAMP.match(value.strip())
    if m is None:
        raise ValueError(f"malformed timestamp {value.strip()!r}")
    hours, minutes, seconds, millis = m.groups()
    if int(minutes) >= 60 or int(seconds) >= 60:
        raise ValueError(f"minutes/seconds out of range in {value.strip()!r}")
    total_ms = ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(millis)
    return total_ms * _US_PER_MS


def _parse_timing_line(line: str, source: str, lineno: int) -> tuple[int, int]:
    left, _, right = line.partition("-->")
    # Anything after the end timestamp is cue settings (VTT "align:start") or SRT box
    # coordinates ("X1:..."); only the first token is the timestamp.
    right_tokens = right.split()
    if not right_tokens:
        raise TranscriptError(source, lineno, f"timing line has no end time: {line!r}")
    try:
        start = parse_timestamp(left)
        end = parse_timestamp(right_tokens[0])
    except ValueError as exc:
        raise TranscriptError(source, lineno, str(exc)) from None
    if end < start:
        raise TranscriptError(source, lineno, f"cue ends before it starts: {line!r}")
    return start, end


def _clean(lines: Sequence[str]) -> str:
    text = " ".join(lines)
    text = _SRT_OVERRIDE.sub("", _TAG.sub("", text))
    text = html.unescape(text).replace("\u00a0", " ")
    return " ".join(text.split())


def parse_cues(text: str, source: str = "<string>", offset_us: int = 0) -> list[Cue]:
    """Parses the cues of an SRT or WebVTT document (the two share one cue grammar here).

    Args:
        text: The document (a leading BOM is ignored).
        source: Name used in errors (usually the file path).
        offset_us: Added to every cue time.

    Returns:
        Cues sorted by start time; cues whose cleaned text is empty are dropped.

    Raises:
        TranscriptError: A timing line is malformed (names ``source`` and the line).
    """
    lines = text.lstrip("\ufeff").splitlines()
    cues: list[Cue] = []
    current: Optional[tuple[int, int, list[str]]] = None
    skipping_block = False  # inside a VTT NOTE/STYLE/REGION block or the WEBVTT header block

    def close() -> None:
        if current is not None:
            body = _clean(current[2])
            if body:
                cues.append(Cue(current[0] + offset_us, current[1] + offset_us, body))

    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            close()
            current, skipping_block = None, False
            continue
        # WebVTT forbids "-->" in header and comment blocks, so an arrow always starts a cue.
        if "-->" in line:
            if current is not None:
                # No blank line before this cue: a trailing bare number in the previous cue's
                # text is this cue's SRT index, not speech.
                if current[2] and current[2][-1].isdigit():
                    current[2].pop()
                close()
            start, end = _parse_timing_line(line, source, lineno)
            current = (start, end, [])
            continue
        if current is not None:
            current[2].append(line)
            continue
        # Outside a cue: SRT indexes, VTT header / identifiers / comment blocks.
        if line.startswith("WEBVTT") or line.split(maxsplit=1)[0] in _VTT_BLOCKS_TO_SKIP:
            skipping_block = True
        elif not skipping_block and _LOOKS_LIKE_TIMING.match(line):
            raise TranscriptError(source, lineno, f"timing line without '-->': {line!r}")
    close()
    cues.sort(key=lambda c: (c.t_start_us, c.t_end_us))
    return cues


def load_transcript(path: str | Path, offset_us: int = 0) -> list[Cue]:
    """Reads an ``.srt`` or ``.vtt`` file into cues on the unified timeline.

    Args:
        path: The sidecar file.
        offset_us: Added to every cue time.

    Raises:
        TranscriptError: Unknown suffix, unreadable file or malformed timing line.
    """
    p = Path(path)
    if p.suffix.lower() not in SIDECAR_SUFFIXES:
        raise TranscriptError(str(p), 0, f"not a transcript sidecar (expected {SIDECAR_SUFFIXES})")
    try:
        # utf-8-sig drops a BOM; undecodable bytes are replaced rather than failing the stream.
        text = p.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise TranscriptError(str(p), 0, f"cannot read: {exc.strerror or exc}") from None
    return parse_cues(text, source=str(p), offset_us=offset_us)


def find_sidecar(media_path: str | Path) -> Optional[Path]:
    """Returns the transcript next to ``media_path`` with the same stem, or ``None``.

    ``.srt`` is preferred over ``.vtt``; the suffix match is case-insensitive. URLs and other
    non-file inputs simply have no sidecar.
    """
    p = Path(media_path)
    parent = p.parent
    if not parent.is_dir():
        return None
    candidates = {f.suffix.lower(): f for f in parent.iterdir()
                  if f.stem == p.stem and f.is_file() and f.suffix.lower() in SIDECAR_SUFFIXES}
    for suffix in SIDECAR_SUFFIXES:
        if suffix in candidates:
            return candidates[suffix]
    return None


def text_for_span(cues: Iterable[Cue], t_start_us: int, t_end_us: int) -> Optional[str]:
    """Joins the text of the cues overlapping the half-open span ``[t_start_us, t_end_us)``.

    A cue that straddles a segment boundary belongs to both segments, so each segment's
    transcript holds everything said during it (search finds either neighbour).

    Returns:
        The texts in time order joined by spaces, or ``None`` if no cue overlaps.
    """
    parts = [c.text for c in cues if c.t_end_us > t_start_us and c.t_start_us < t_end_us]
    return " ".join(parts) if parts else None


class TranscriptSidecar:
    """Text of a file's .srt/.vtt sidecar per segment (None when there is none)."""

    def __init__(self, source_uri: str) -> None:
        self.cues = None
        ref = classify(source_uri)
        if not ref.is_live:
            sidecar = find_sidecar(ref.target)
            if sidecar is not None:
                self.cues = load_transcript(sidecar)

    def text(self, seg: Segment) -> str | None:
        """The text of the cues overlapping ``seg``."""
        return text_for_span(self.cues, seg.t_start_us, seg.t_end_us) if self.cues else None
