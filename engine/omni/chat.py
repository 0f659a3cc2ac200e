"""Chat messages with media parts → plain-text messages an omni model's chat template takes.

Content parts (OpenAI chat format, plus one omnialign type):

* ``{"type": "text", "text": ...}`` — as is (special-token strings are refused: text must not
  smuggle code tokens past the renderer);
* ``{"type": "segment_ref", "stream_id", "from_s", "to_s"}`` — the stored rows of that stream
  overlapping ``[from_s, to_s)``, tokens outside the window dropped, rendered with
  :func:`engine.omni.prompt.render_prompt` (time markers relative to the window start);
* ``{"type": "input_audio", "input_audio": {"data": base64, "format": "wav"}}`` and
  ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}`` — decoded,
  tokenized with the served codebooks exactly as ingested media, and rendered the same way.
  Only inline ``data:`` images: fetching remote URLs from a server is an SSRF risk.

:func:`modality_counts` counts a token-id sequence per modality (the router's gate input).
"""

from __future__ import annotations

import base64
import binascii
import io
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import InvalidInputError, MediaError
from engine.omni.vocab import OmniVocab
from engine.omni.prompt import SPECIAL_TOKEN_RE, RenderableSegment, render_prompt

_AUDIO_FORMATS = ("wav", "mp3", "flac", "ogg", "m4a", "webm")
_MAX_TIME_S = (2**63 - 1) // 1_000_000 - 1  # times become int64 microseconds


class SegmentNotFoundError(InvalidInputError):
    """A ``segment_ref`` matched no stored segment."""


@dataclass(frozen=True)
class ChatContext:
    """What rendering media parts needs.

    Attributes:
        vocab: The served model's token layout.
        rows_between: ``(stream_id, from_us, to_us) -> rows`` of the store (None: no store).
        tokenizer: Loaded codebooks (:class:`engine.tokenize.tokenizer.Tokenizer`) for inline media, or None.
        max_span_us: Longest window one ``segment_ref`` may cover.
        max_inline_bytes: Largest decoded inline media part.
    """

    vocab: OmniVocab
    rows_between: Callable[[str, int, int], Sequence] | None = None
    tokenizer: object | None = None
    max_span_us: int = 120_000_000
    max_inline_bytes: int = 4 * 1024 * 1024


def _window(row, from_us: int, to_us: int) -> RenderableSegment:
    """A stored row restricted to the tokens inside ``[from_us, to_us)``."""
    seg = RenderableSegment.from_row(row)
    a_keep = (seg.audio_t_us >= from_us) & (seg.audio_t_us < to_us)
    v_keep = (seg.video_t_us >= from_us) & (seg.video_t_us < to_us)
    sub = (lambda x, keep: x[keep] if len(x) else x)
    return RenderableSegment(
        max(seg.t_start_us, from_us), min(seg.t_end_us, to_us), sub(seg.audio_codes, a_keep), seg.audio_t_us[a_keep],
        sub(seg.video_codes, v_keep), seg.video_t_us[v_keep], sub(seg.video_row, v_keep), sub(seg.video_col, v_keep),
        seg.transcript, seg.codebook_version)


def _render_segment_ref(part: Mapping, ctx: ChatContext, where: str) -> str:
    stream_id, from_s, to_s = part.get("stream_id"), part.get("from_s"), part.get("to_s")
    if not isinstance(stream_id, str) or not stream_id:
        raise InvalidInputError(f"{where}.stream_id", "must be a non-empty string")
    for name, v in (("from_s", from_s), ("to_s", to_s)):
        # The comparison also refuses NaN/inf; the bound keeps microseconds inside int64.
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= _MAX_TIME_S:
            raise InvalidInputError(f"{where}.{name}", f"must be a number >= 0, got {v!r}")
    from_us, to_us = round(from_s * 1e6), round(to_s * 1e6)
    if to_us <= from_us:
        raise InvalidInputError(f"{where}.to_s", f"must be after from_s ({from_s} .. {to_s})")
    if to_us - from_us > ctx.max_span_us:
        raise InvalidInputError(f"{where}", f"spans {(to_us - from_us) / 1e6:g} s; at most {ctx.max_span_us / 1e6:g} s")
    if ctx.rows_between is None:
        raise InvalidInputError(where, "this server has no segment store")
    rows = ctx.rows_between(stream_id, from_us, to_us)
    if not rows:
        raise SegmentNotFoundError(where, f"no stored segments of stream {stream_id!r} in [{from_s}, {to_s}) s")
    return render_prompt([_window(r, from_us, to_us) for r in rows], ctx.vocab, origin_us=from_us)


def _b64(data, where: str, limit: int) -> bytes:
    if not isinstance(data, str) or not data:
        raise InvalidInputError(where, "must be a non-empty base64 string")
    if len(data) > limit * 4 // 3 + 4:  # cheap pre-check before decoding
        raise InvalidInputError(where, f"larger than {limit} bytes")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(where, "is not valid base64") from None
    if len(raw) > limit:
        raise InvalidInputError(where, f"larger than {limit} bytes")
    return raw


def _tokenized(segment, ctx: ChatContext, where: str) -> str:
    if ctx.tokenizer is None:
        raise InvalidInputError(where, "this server has no codebooks to tokenize media")
    toks = ctx.tokenizer.encode_segment(segment)
    a, v = toks.audio, toks.video
    q_a, q_v = ctx.vocab.audio_quantizers, ctx.vocab.video_quantizers
    row = RenderableSegment(
        segment.t_start_us, segment.t_end_us,
        a.codes if a is not None else np.zeros((0, q_a), np.int64), a.t_us if a is not None else np.zeros(0, np.int64),
        v.codes if v is not None else np.zeros((0, q_v), np.int64), v.t_us if v is not None else np.zeros(0, np.int64),
        v.row if v is not None else np.zeros(0, np.int64), v.col if v is not None else np.zeros(0, np.int64),
        None, ctx.tokenizer.codebook_version)
    return render_prompt([row], ctx.vocab, origin_us=segment.t_start_us)


def decode_audio(spec, where: str, max_bytes: int, max_duration_us: int = 120_000_000) -> np.ndarray:
    """Mono 16 kHz float32 samples of an ``{"data": base64, "format": ...}`` audio object.

    Raises:
        InvalidInputError: Not such an object, unknown format, bad base64, too large, or not
            decodable audio (``where`` names the input).
    """
    from engine.media.decode import MediaConfig, iter_segments

    if not isinstance(spec, Mapping):
        raise InvalidInputError(where, "must be an object with 'data' and 'format'")
    fmt = spec.get("format", "wav")
    if fmt not in _AUDIO_FORMATS:
        raise InvalidInputError(f"{where}.format", f"{fmt!r} is not one of {_AUDIO_FORMATS}")
    raw = _b64(spec.get("data"), f"{where}.data", max_bytes)
    with tempfile.TemporaryDirectory() as tmp:  # PyAV demuxes files; the data is small
        path = Path(tmp) / f"inline.{fmt}"
        path.write_bytes(raw)
        chunks, total_us = [], 0
        try:  # stop at the duration cap: a few KB of compressed silence can decode to hours
            for seg in iter_segments(str(path), MediaConfig(decode_video=False, require_audio=True)):
                chunks.append(seg.audio)
                total_us += seg.duration_us
                if total_us > max_duration_us:
                    raise InvalidInputError(where, f"longer than {max_duration_us / 1e6:g} s")
        except MediaError as exc:
            raise InvalidInputError(where, f"cannot decode: {exc.reason}") from None
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if not len(audio):
        raise InvalidInputError(where, "holds no audio samples")
    return audio


#: Largest inline picture accepted, in pixels (4096 x 4096): decoding costs 4 bytes per pixel.
MAX_IMAGE_PIXELS = 4096 * 4096
#: Inline pictures are shrunk to this longest side right after decoding.
MAX_IMAGE_SIDE_PX = 2048


def decode_image(url, where: str, max_bytes: int) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` of a ``data:image/...;base64,`` URL (remote URLs are refused)."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(url, str) or not url.startswith("data:image/") or ";base64," not in url:
        raise InvalidInputError(where, "only inline 'data:image/...;base64,' URLs are accepted")
    raw = _b64(url.split(";base64,", 1)[1], where, max_bytes)
    try:
        img = Image.open(io.BytesIO(raw))  # reads the header only
        if img.width * img.height > MAX_IMAGE_PIXELS:  # decompression bombs: a 131 KB PNG can be 6300x6300
            raise InvalidInputError(where, f"{img.width}x{img.height} pixels is more than {MAX_IMAGE_PIXELS:,}")
        # Decoded at most once at full size (JPEG: already reduced while decoding), then shrunk
        # before the RGBA/RGB conversions, which would each copy the full picture: every consumer
        # (codebook tokenizer, image encoder) resizes far below MAX_IMAGE_SIDE_PX anyway.
        img.draft("RGB", (MAX_IMAGE_SIDE_PX, MAX_IMAGE_SIDE_PX))
        img.thumbnail((MAX_IMAGE_SIDE_PX, MAX_IMAGE_SIDE_PX))
        from engine.encode.registry import rgb_on_white

        return rgb_on_white(img)  # transparency on white, as ingest decodes pictures
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise InvalidInputError(where, "not an image PIL can read") from None


def _render_audio(part: Mapping, ctx: ChatContext, where: str) -> str:
    from engine.media.decode import Segment

    audio = decode_audio(part.get("input_audio"), f"{where}.input_audio", ctx.max_inline_bytes, ctx.max_span_us)
    rate = 16_000
    seg = Segment("inline", 0, 0, len(audio) * 1_000_000 // rate, audio, rate, None, np.zeros(0, np.int64))
    return _tokenized(seg, ctx, where)


def _render_image(part: Mapping, ctx: ChatContext, where: str) -> str:
    from engine.media.decode import Segment

    spec = part.get("image_url")
    url = spec.get("url") if isinstance(spec, Mapping) else spec
    frame = decode_image(url, f"{where}.image_url", ctx.max_inline_bytes)
    # One frame shown for one token interval (1 / video_token_fps).
    fps = getattr(getattr(ctx.tokenizer, "config", None), "video_token_fps", None) or 5
    seg = Segment("inline", 0, 0, int(1_000_000 / fps), None, 16_000, [frame], np.zeros(1, np.int64))
    return _tokenized(seg, ctx, where)


def render_content(content, ctx: ChatContext | None, where: str = "content") -> str:
    """One message's content (a string or a list of parts) as prompt text.

    ``ctx`` may be None when the content holds only text (a media part then is refused).
    """
    if isinstance(content, str):
        return _checked_text(content, where)
    if not isinstance(content, list):
        raise InvalidInputError(where, "must be a string or a list of content parts")
    out = []
    for i, part in enumerate(content):
        w = f"{where}[{i}]"
        if not isinstance(part, Mapping):
            raise InvalidInputError(w, "must be an object with a 'type'")
        kind = part.get("type")
        if kind == "text":
            text = _checked_text(part.get("text"), f"{w}.text")
            if i and isinstance(content[i - 1], Mapping) and content[i - 1].get("type") == "text":
                text = _checked_text(out.pop() + text, f"{w}.text")  # joined parts must not form a token either
            out.append(text)
        elif kind in ("segment_ref", "input_audio", "image_url") and ctx is None:
            raise InvalidInputError(f"{w}.type", f"{kind!r} needs an omni model (modality tokens) on this server")
        elif kind == "segment_ref":
            out.append(_render_segment_ref(part, ctx, w))
        elif kind == "input_audio":
            out.append(_render_audio(part, ctx, w))
        elif kind == "image_url":
            out.append(_render_image(part, ctx, w))
        else:
            raise InvalidInputError(f"{w}.type", f"{kind!r} is not one of text, segment_ref, input_audio, image_url")
    return "".join(out)


def _checked_text(text, where: str) -> str:
    if not isinstance(text, str):
        raise InvalidInputError(where, "must be a string")
    m = SPECIAL_TOKEN_RE.search(text)
    if m:
        raise InvalidInputError(where, f"contains the special-token string {m.group()!r}; send media as content parts")
    return text


def render_messages(messages, ctx: ChatContext | None) -> list[dict[str, str]]:
    """Messages with media parts → ``[{"role", "content": str}]`` for the chat template."""
    if not isinstance(messages, list) or not messages:
        raise InvalidInputError("messages", "must be a non-empty list")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") not in ("system", "user", "assistant"):
            raise InvalidInputError(f"messages[{i}].role", "must be system, user or assistant")
        out.append({"role": m["role"], "content": render_content(m.get("content", ""), ctx, f"messages[{i}].content")})
    return out


def modality_counts(token_ids: Sequence[int], vocab: OmniVocab) -> dict[str, int]:
    """Tokens per modality: audio codes, video codes, and everything else as text."""
    ids = np.asarray(token_ids, np.int64)
    audio = int(((ids >= vocab.audio_first_id) & (ids < vocab.video_first_id)).sum())
    video = int(((ids >= vocab.video_first_id) & (ids < vocab.end_id)).sum())
    # Delimiters and time markers are structure, not text the user wrote.
    structure = int(((ids >= vocab.first_id) & (ids < vocab.audio_first_id)).sum())
    return {"text": len(ids) - audio - video - structure, "audio": audio, "video": video}
