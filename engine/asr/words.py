"""Recognized words on the unified timeline, and the text measures used to judge them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Word:
    """One recognized word.

    Attributes:
        text: The word as Whisper wrote it (leading space and punctuation stripped).
        t_start_us: Start on the stream's unified timeline.
        t_end_us: End on the same timeline (>= start).
        probability: The recognizer's probability of the word, in [0, 1].
    """

    text: str
    t_start_us: int
    t_end_us: int
    probability: float

    def as_dict(self) -> dict:
        """The store's struct of a word."""
        return {"text": self.text, "t_start_us": int(self.t_start_us), "t_end_us": int(self.t_end_us),
                "probability": float(self.probability)}


def words_in(words: Iterable[Word], t_start_us: int, t_end_us: int) -> list[Word]:
    """The words that *start* in ``[t_start_us, t_end_us)``: a word that spans a boundary
    belongs to the segment where it starts, so it is stored exactly once."""
    return [w for w in words if t_start_us <= w.t_start_us < t_end_us]


def text_of(words: Sequence[Word]) -> str | None:
    """The words joined as a transcript, or None when there are none."""
    return " ".join(w.text for w in words) if words else None


_NUMBERS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
            "sixteen seventeen eighteen nineteen twenty").split()
_ABBREV = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}


def normalize_text(text: str) -> list[str]:
    """Lower-case words without punctuation, for WER: hyphens split words, small numbers and a
    few abbreviations are spelled out (Whisper writes "10" and "Mr." where a reference says
    "ten" and "mister")."""
    out = []
    for tok in re.sub(r"[-_/]", " ", text.lower()).split():
        tok = re.sub(r"[^a-z0-9']", "", tok).strip("'")
        if not tok:
            continue
        if tok.isdigit() and int(tok) < len(_NUMBERS):
            tok = _NUMBERS[int(tok)]
        out.append(_ABBREV.get(tok, tok))
    return out


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER: total word edits (substitutions + insertions + deletions) over total
    reference words, after :func:`normalize_text`."""
    edits = total = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        r, h = normalize_text(ref), normalize_text(hyp)
        total += len(r)
        prev = list(range(len(h) + 1))
        for i, rw in enumerate(r, 1):
            cur = [i] + [0] * len(h)
            for j, hw in enumerate(h, 1):
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != hw))
            prev = cur
        edits += prev[-1]
    return edits / max(total, 1)
