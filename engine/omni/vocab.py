"""Vocabulary layout of the modality tokens an omni language model holds.

A language model that reads omnialign rows needs one token per RVQ code of each stage, time
markers and modality delimiters. :class:`OmniVocab` is that layout: which token strings exist,
in which order they were appended to the base tokenizer, and therefore which id each one has.
It is bound to one ``codebook_version`` (the content hash of the codebooks, see
:mod:`engine.tokenize.tokenizer`): codes from other codebooks mean other things and are refused.

Token strings (all in the ``<|...|>`` form that added-token tries match as one piece)::

    <|audio_start|> <|audio_end|> <|video_start|> <|video_end|> <|text_start|> <|text_end|>
    <|time_N|>       N = 0 .. time_markers-1: the N-th time chunk counted from the prompt's origin
    <|aQ_K|>         audio RVQ stage Q (0-based), code K   (Q < audio_quantizers, K < audio_codebook_size)
    <|vQ_K|>         video RVQ stage Q, code K

Id layout: the tokens are appended to the base tokenizer in exactly the order above
(delimiters, time markers, audio stage-major, video stage-major), starting at
``first_id = len(base tokenizer)``. Hence ``id(<|aQ_K|>) = audio_first_id + Q·Ka + K`` and
``id(<|vQ_K|>) = video_first_id + Q·Kv + K``; :meth:`OmniVocab.decode_id` inverts it.

The layout is written as ``omni_vocab.json`` next to the model so that serving, rendering and
training all agree on it without re-deriving anything.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.errors import InvalidInputError

FORMAT_VERSION = 1
VOCAB_FILE = "omni_vocab.json"

AUDIO_START, AUDIO_END = "<|audio_start|>", "<|audio_end|>"
VIDEO_START, VIDEO_END = "<|video_start|>", "<|video_end|>"
TEXT_START, TEXT_END = "<|text_start|>", "<|text_end|>"
#: Delimiters in id order.
DELIMITERS = (AUDIO_START, AUDIO_END, VIDEO_START, VIDEO_END, TEXT_START, TEXT_END)

#: Modality letter used in code token strings.
_LETTER = {"audio": "a", "video": "v"}
_CODE_RE = re.compile(r"<\|([av])(\d+)_(\d+)\|>")
_TIME_RE = re.compile(r"<\|time_(\d+)\|>")


@dataclass(frozen=True)
class CodeToken:
    """What one code token stands for.

    Attributes:
        modality: "audio" or "video".
        stage: 0-based RVQ stage.
        code: Codeword index within that stage's codebook.
    """

    modality: str
    stage: int
    code: int


@dataclass(frozen=True)
class OmniVocab:
    """The modality-token layout of one omni model (see the module docstring).

    Attributes:
        codebook_version: Content hash of the codebooks whose codes the tokens stand for.
        audio_quantizers: Audio RVQ stages (0: the codebooks have no audio).
        audio_codebook_size: Codewords per audio stage.
        video_quantizers: Video RVQ stages (0: the codebooks have no video).
        video_codebook_size: Codewords per video stage.
        time_markers: Number of ``<|time_N|>`` markers; a prompt can span at most this many
            chunks (``time_markers · chunk_us`` of media).
        chunk_us: Length of one time chunk in microseconds (what one marker step means).
        first_id: Id of the first added token (= size of the base vocabulary).
    """

    codebook_version: str
    audio_quantizers: int
    audio_codebook_size: int
    video_quantizers: int
    video_codebook_size: int
    time_markers: int = 512
    chunk_us: int = 2_000_000
    first_id: int = 0

    def __post_init__(self) -> None:
        for name in ("audio_quantizers", "audio_codebook_size", "video_quantizers", "video_codebook_size", "first_id"):
            if getattr(self, name) < 0:
                raise InvalidInputError(name, f"must be >= 0, got {getattr(self, name)}")
        if self.time_markers < 1 or self.chunk_us < 1:
            raise InvalidInputError("time_markers/chunk_us", "must be >= 1")
        if not self.codebook_version:
            raise InvalidInputError("codebook_version", "must be set: the tokens stand for one set of codebooks")

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_codebooks(cls, directory: str | Path, time_markers: int = 512, chunk_us: int = 2_000_000,
                       first_id: int = 0) -> OmniVocab:
        """Layout for the codebook folder written by ``omnialign rvq fit`` (sizes from its manifest).

        Raises:
            InvalidInputError: The folder is not a valid codebook folder.
        """
        from engine.tokenize.tokenizer import Tokenizer

        tok = Tokenizer.load(directory)
        c = tok.config
        # A modality without fitted codebooks gets no code tokens at all.
        qa = c.audio_quantizers if tok.audio_rvq is not None else 0
        qv = c.video_quantizers if tok.video_rvq is not None else 0
        return cls(tok.codebook_version, qa, c.audio_codebook_size if qa else 0, qv,
                   c.video_codebook_size if qv else 0, time_markers, chunk_us, first_id)

    # -- token strings -------------------------------------------------------------------------
    @staticmethod
    def time_token(index: int) -> str:
        return f"<|time_{index}|>"

    @staticmethod
    def code_token(modality: str, stage: int, code: int) -> str:
        return f"<|{_LETTER[modality]}{stage}_{code}|>"

    def tokens(self) -> list[str]:
        """All added token strings in id order (``tokens()[i]`` has id ``first_id + i``)."""
        out = list(DELIMITERS)
        out += [self.time_token(n) for n in range(self.time_markers)]
        for modality in ("audio", "video"):
            q, k = self.sizes(modality)
            out += [self.code_token(modality, s, c) for s in range(q) for c in range(k)]
        return out

    @property
    def num_tokens(self) -> int:
        """Number of added tokens: delimiters + time markers + Qa·Ka + Qv·Kv."""
        return (len(DELIMITERS) + self.time_markers + self.audio_quantizers * self.audio_codebook_size
                + self.video_quantizers * self.video_codebook_size)

    # -- ids -----------------------------------------------------------------------------------
    def sizes(self, modality: str) -> tuple[int, int]:
        """(quantizers, codebook_size) of ``modality``."""
        if modality == "audio":
            return self.audio_quantizers, self.audio_codebook_size
        if modality == "video":
            return self.video_quantizers, self.video_codebook_size
        raise InvalidInputError("modality", f"{modality!r} is not 'audio' or 'video'")

    @property
    def time_first_id(self) -> int:
        return self.first_id + len(DELIMITERS)

    @property
    def audio_first_id(self) -> int:
        return self.time_first_id + self.time_markers

    @property
    def video_first_id(self) -> int:
        return self.audio_first_id + self.audio_quantizers * self.audio_codebook_size

    @property
    def end_id(self) -> int:
        """One past the last added id (= the model's vocabulary size after extension)."""
        return self.first_id + self.num_tokens

    def code_id(self, modality: str, stage: int, code: int) -> int:
        """Token id of ``code`` at RVQ ``stage`` of ``modality``.

        Raises:
            InvalidInputError: Stage or code outside this layout.
        """
        self.check_code(modality, stage, code)
        first = self.audio_first_id if modality == "audio" else self.video_first_id
        return first + stage * self.sizes(modality)[1] + code

    def check_code(self, modality: str, stage: int, code: int) -> None:
        q, k = self.sizes(modality)
        if not (0 <= stage < q and 0 <= code < k):
            raise InvalidInputError(f"{modality}_codes", f"stage {stage} code {code} is outside the vocabulary "
                                                         f"({q} stages x {k} codes)")

    def decode_id(self, token_id: int) -> CodeToken | None:
        """The (modality, stage, code) a token id stands for; None for any non-code id."""
        for modality, first in (("audio", self.audio_first_id), ("video", self.video_first_id)):
            q, k = self.sizes(modality)
            if first <= token_id < first + q * k:
                stage, code = divmod(token_id - first, k)
                return CodeToken(modality, stage, code)
        return None

    def time_index(self, token_id: int) -> int | None:
        """Chunk index of a time-marker id; None for any other id."""
        n = token_id - self.time_first_id
        return n if 0 <= n < self.time_markers else None

    def parse_code_token(self, token: str) -> CodeToken | None:
        """The code a token *string* stands for (checked against the layout); None if not a code token."""
        m = _CODE_RE.fullmatch(token)
        if m is None:
            return None
        modality = "audio" if m.group(1) == "a" else "video"
        out = CodeToken(modality, int(m.group(2)), int(m.group(3)))
        self.check_code(out.modality, out.stage, out.code)
        return out

    def parse_time_token(self, token: str) -> int | None:
        m = _TIME_RE.fullmatch(token)
        if m is None:
            return None
        n = int(m.group(1))
        if n >= self.time_markers:
            raise InvalidInputError("time marker", f"{token} is outside the vocabulary ({self.time_markers} markers)")
        return n

    def check_codebook_version(self, version: str, where: str = "row") -> None:
        """Raises InvalidInputError unless ``version`` is this layout's codebook version."""
        if version != self.codebook_version:
            raise InvalidInputError(where, f"codebook_version {version!r} does not match the model's "
                                           f"{self.codebook_version!r}: codes of other codebooks mean other things")

    # -- persistence ---------------------------------------------------------------------------
    def to_json(self) -> dict:
        """JSON form: the fields plus derived first ids (for readers that do not use this class)."""
        return {"format_version": FORMAT_VERSION, **asdict(self), "delimiters": list(DELIMITERS),
                "time_first_id": self.time_first_id, "audio_first_id": self.audio_first_id,
                "video_first_id": self.video_first_id, "end_id": self.end_id,
                "token_format": {"time": "<|time_N|>", "audio": "<|aQ_K|>", "video": "<|vQ_K|>"}}

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / VOCAB_FILE
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> OmniVocab:
        """Reads ``omni_vocab.json`` from a model folder.

        Raises:
            InvalidInputError: The file is missing or of an unknown format.
        """
        path = Path(directory) / VOCAB_FILE
        if not path.is_file():
            raise InvalidInputError(str(directory), f"no {VOCAB_FILE}: not an omni model "
                                                    "(make one with `omnialign model extend`)")
        data = json.loads(path.read_text())
        if data.get("format_version") != FORMAT_VERSION:
            raise InvalidInputError(str(path), f"format_version {data.get('format_version')!r} is not supported")
        fields = ("codebook_version", "audio_quantizers", "audio_codebook_size", "video_quantizers",
                  "video_codebook_size", "time_markers", "chunk_us", "first_id")
        return cls(**{f: data[f] for f in fields})
