"""Chat messages with media parts → prompt text: real codebooks, real WAV/PNG decoding, hand-made store rows."""

from __future__ import annotations

import base64
import io
import wave

import numpy as np
import pytest

from engine.omni.chat import (
    ChatContext,
    SegmentNotFoundError,
    decode_audio,
    decode_image,
    modality_counts,
    render_content,
    render_messages,
)
from engine.errors import InvalidInputError
from engine.tokenize.features import RegionConfig
from engine.media.decode import MediaConfig, Segment, iter_segments
from engine.omni.vocab import (
    AUDIO_END,
    AUDIO_START,
    DELIMITERS,
    TEXT_START,
    VIDEO_START,
    OmniVocab,
)
from engine.omni.prompt import SPECIAL_TOKEN_RE, parse_prompt
from engine.media.synth import SynthSpec
from engine.tokenize.tokenizer import Tokenizer, TokenizerConfig

SMALL = TokenizerConfig(
    audio_quantizers=2, audio_codebook_size=16, video_quantizers=2, video_codebook_size=16,
    region=RegionConfig(resize_height_px=48, resize_width_px=64, patch_px=16, dim=16), max_fit_vectors=5_000,
)
RATE = 16_000


@pytest.fixture(scope="module")
def served(clip_factory, tmp_path_factory):
    """(tokenizer, vocab) of a real codebook folder fitted on a synthesized 4 s clip."""
    truth = clip_factory(SynthSpec(duration_s=4.0, speech=True, seed=11), "chat.mp4")
    segs = list(iter_segments(truth.path, MediaConfig(video_width=160, video_height=120)))
    tok = Tokenizer.fit(segs, SMALL)
    folder = tok.save(tmp_path_factory.mktemp("chat_cb"))
    vocab = OmniVocab.from_codebooks(folder, time_markers=16, first_id=1000)
    assert vocab.codebook_version == tok.codebook_version
    return tok, vocab


@pytest.fixture
def tok(served):
    return served[0]


@pytest.fixture
def vocab(served):
    return served[1]


def _tone_pcm(seconds: float = 1.0, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * hz * t) * 32767).astype(np.int16)


def _wav_b64(pcm: np.ndarray, rate: int = RATE) -> str:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return base64.b64encode(buf.getvalue()).decode()


def _png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def _image() -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def _all(chunks, modality: str) -> np.ndarray:
    return np.concatenate([getattr(c, f"{modality}_codes") for c in chunks])


# -- segment_ref -----------------------------------------------------------------------------------
def _row(vocab, t0, t1, a_codes, a_t, v_codes, v_t, text=None, version=None):
    return {"t_start_us": t0, "t_end_us": t1, "audio_codes": np.asarray(a_codes, np.int16).reshape(-1, 2),
            "audio_t_us": np.asarray(a_t, np.int64), "video_codes": np.asarray(v_codes, np.int16).reshape(-1, 2),
            "video_t_us": np.asarray(v_t, np.int64), "video_row": np.zeros(len(v_t), np.int64),
            "video_col": np.arange(len(v_t), dtype=np.int64), "transcript": text,
            "codebook_version": vocab.codebook_version if version is None else version}


def _rows(vocab):
    """Two stored 2 s rows; token times straddle the window [1.0, 3.5) s used below."""
    r0 = _row(vocab, 0, 2_000_000,
              [[1, 1], [2, 2], [3, 3], [4, 4]], [0, 999_999, 1_000_000, 1_500_000],
              [[5, 5], [6, 6]], [400_000, 1_200_000], text="first")
    r1 = _row(vocab, 2_000_000, 4_000_000,
              [[7, 7], [8, 8], [9, 9], [10, 10]], [2_000_000, 3_000_000, 3_499_999, 3_500_000],
              [[11, 11], [12, 12], [13, 13]], [2_600_000, 3_200_000, 3_600_000], text="second")
    return [r0, r1]


class FakeStore:
    """``rows_between`` recording its calls; refuses times the real store's int64 columns cannot hold."""

    def __init__(self, rows):
        self.rows, self.calls = rows, []

    def __call__(self, stream_id, from_us, to_us):
        self.calls.append((stream_id, from_us, to_us))
        if not all(isinstance(t, int) and -2**63 <= t < 2**63 for t in (from_us, to_us)):
            raise ValueError(f"literal {from_us}/{to_us} cannot convert to Int64")  # what LanceDB raises
        return [r for r in self.rows if r["t_end_us"] > from_us and r["t_start_us"] < to_us]


def test_segment_ref_keeps_window_tokens_with_markers_relative_to_its_start(vocab):
    store = FakeStore(_rows(vocab))
    ctx = ChatContext(vocab, rows_between=store)
    part = {"type": "segment_ref", "stream_id": "cam1", "from_s": 1.0, "to_s": 3.5}
    text = render_content([part], ctx)
    assert store.calls == [("cam1", 1_000_000, 3_500_000)]
    assert all(type(x) is int for x in store.calls[0][1:])

    chunks = parse_prompt(text, vocab, origin_us=1_000_000)
    # Chunk 0 = [1.0, 3.0) s, chunk 1 = [3.0, 5.0) s; the window ends inside chunk 1.
    assert [c.index for c in chunks] == [0, 1]
    assert [c.t_start_us for c in chunks] == [1_000_000, 3_000_000]
    assert text.startswith(vocab.time_token(0))
    # Audio at 0 and 999_999 (before) and 3_500_000 (end, exclusive) are dropped.
    assert chunks[0].audio_codes.tolist() == [[3, 3], [4, 4], [7, 7]]
    assert chunks[1].audio_codes.tolist() == [[8, 8], [9, 9]]
    # Video at 0.4 s and 3.6 s are dropped.
    assert chunks[0].video_codes.tolist() == [[6, 6], [11, 11]]
    assert chunks[1].video_codes.tolist() == [[12, 12]]
    # Transcripts land in the chunk holding the clipped segment's last instant.
    assert (chunks[0].text, chunks[1].text) == ("first", "second")

    # The kept codes are exactly the stored codes inside the window, in time order.
    stored = [(t, c) for r in _rows(vocab) for t, c in zip(r["audio_t_us"].tolist(), r["audio_codes"].tolist())]
    assert _all(chunks, "audio").tolist() == [c for t, c in sorted(stored, key=lambda x: x[0])
                                             if 1_000_000 <= t < 3_500_000]
    # An integer second window and one inside a single row.
    store.calls.clear()
    text = render_content([{"type": "segment_ref", "stream_id": "cam1", "from_s": 2, "to_s": 3}], ctx)
    assert store.calls == [("cam1", 2_000_000, 3_000_000)]
    (only,) = parse_prompt(text, vocab, origin_us=2_000_000)
    assert only.index == 0 and only.audio_codes.tolist() == [[7, 7]] and only.video_codes.tolist() == [[11, 11]]


def test_segment_ref_inside_a_message_renders_between_text(vocab):
    ctx = ChatContext(vocab, rows_between=FakeStore(_rows(vocab)))
    messages = [{"role": "system", "content": "You watch cameras."},
                {"role": "user", "content": [{"type": "text", "text": "What happens here? "},
                                             {"type": "segment_ref", "stream_id": "cam1", "from_s": 0, "to_s": 2},
                                             {"type": "text", "text": " Be brief."}]}]
    out = render_messages(messages, ctx)
    assert out[0] == {"role": "system", "content": "You watch cameras."}
    assert out[1]["role"] == "user"
    content = out[1]["content"]
    assert content.startswith("What happens here? <|time_0|>") and content.endswith("<|text_end|> Be brief.")
    rendered = content[len("What happens here? "):-len(" Be brief.")]
    (chunk,) = parse_prompt(rendered, vocab)
    assert chunk.audio_codes.tolist() == [[1, 1], [2, 2], [3, 3], [4, 4]] and chunk.text == "first"


def test_segment_ref_with_other_codebooks_is_refused(vocab):
    rows = [_row(vocab, 0, 2_000_000, [[1, 1]], [0], [], [], version="other")]
    ctx = ChatContext(vocab, rows_between=FakeStore(rows))
    with pytest.raises(InvalidInputError, match="codebook_version 'other'"):
        render_content([{"type": "segment_ref", "stream_id": "s", "from_s": 0, "to_s": 1}], ctx)


def _ref_error(vocab, store=None, max_span_us=120_000_000, **fields):
    part = {"type": "segment_ref", "stream_id": "cam1", "from_s": 0, "to_s": 2, **fields}
    ctx = ChatContext(vocab, rows_between=store if store is not None else FakeStore(_rows(vocab)),
                      max_span_us=max_span_us)
    messages = [{"role": "user", "content": [{"type": "text", "text": "look: "}, part]}]
    with pytest.raises(InvalidInputError) as info:
        render_messages(messages, ctx)
    return info.value


def test_segment_ref_errors_name_the_field(vocab):
    w = "messages[0].content[1]"
    empty = FakeStore([])
    err = _ref_error(vocab, store=empty)
    assert isinstance(err, SegmentNotFoundError) and isinstance(err, InvalidInputError)
    assert err.input == w and "'cam1'" in str(err)
    assert empty.calls == [("cam1", 0, 2_000_000)]
    # A window after every stored row finds nothing either.
    assert isinstance(_ref_error(vocab, from_s=10, to_s=12), SegmentNotFoundError)

    cases = [
        ({"to_s": 0}, f"{w}.to_s", "after from_s"),
        ({"from_s": 2, "to_s": 1}, f"{w}.to_s", "after from_s"),
        ({"from_s": 1.0, "to_s": 1.0000001}, f"{w}.to_s", "after from_s"),  # rounds to the same microsecond
        ({"from_s": -1}, f"{w}.from_s", ">= 0"),
        ({"to_s": -0.5}, f"{w}.to_s", ">= 0"),
        ({"from_s": True}, f"{w}.from_s", "number"),
        ({"to_s": False}, f"{w}.to_s", "number"),
        ({"to_s": "2"}, f"{w}.to_s", "number"),
        ({"from_s": None}, f"{w}.from_s", "number"),
        ({"to_s": float("nan")}, f"{w}.to_s", "number"),
        ({"to_s": float("inf")}, f"{w}.to_s", "number"),
        ({"stream_id": ""}, f"{w}.stream_id", "non-empty"),
        ({"stream_id": 7}, f"{w}.stream_id", "non-empty"),
        ({"stream_id": None}, f"{w}.stream_id", "non-empty"),
    ]
    for fields, field, reason in cases:
        store = FakeStore(_rows(vocab))
        err = _ref_error(vocab, store=store, **fields)
        assert type(err) is InvalidInputError, fields
        assert err.input == field and reason in err.reason, (fields, str(err))
        assert field in str(err)
        assert store.calls == [], fields  # validated before the store is asked

    err = _ref_error(vocab, max_span_us=2_000_000, from_s=1, to_s=3.5)
    assert err.input == w and "spans 2.5 s" in str(err) and "at most 2 s" in str(err)
    # Exactly the longest span is fine.
    ctx = ChatContext(vocab, rows_between=FakeStore(_rows(vocab)), max_span_us=2_000_000)
    assert render_content([{"type": "segment_ref", "stream_id": "cam1", "from_s": 1, "to_s": 3}], ctx)

    no_store = ChatContext(vocab)
    with pytest.raises(InvalidInputError, match=r"content\[0\]: this server has no segment store"):
        render_content([{"type": "segment_ref", "stream_id": "cam1", "from_s": 0, "to_s": 1}], no_store)


@pytest.mark.parametrize("value", [10**20, 1e13])
def test_segment_ref_times_beyond_int64_microseconds_are_invalid_input(vocab, value):
    store = FakeStore(_rows(vocab))
    ctx = ChatContext(vocab, rows_between=store)
    part = {"type": "segment_ref", "stream_id": "cam1", "from_s": value, "to_s": value + 1}
    with pytest.raises(InvalidInputError, match=r"content\[0\]\.(from|to)_s"):
        render_content([part], ctx)
    assert store.calls == []


# -- input_audio -----------------------------------------------------------------------------------
def test_input_audio_is_tokenized_like_ingested_audio(tok, vocab):
    pcm = _tone_pcm(1.0)
    b64 = _wav_b64(pcm)
    samples = decode_audio({"data": b64, "format": "wav"}, "audio", 10**6)
    assert samples.dtype == np.float32 and samples.shape == (RATE,)
    np.testing.assert_array_equal(samples, pcm.astype(np.float32) / 32768)  # s16 → float is exact

    ctx = ChatContext(vocab, tokenizer=tok)
    text = render_content([{"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}}], ctx)
    assert VIDEO_START not in text and TEXT_START not in text
    chunks = parse_prompt(text, vocab)
    assert [c.index for c in chunks] == [0]

    seg = Segment("mine", 0, 0, 1_000_000, pcm.astype(np.float32) / 32768, RATE, None, np.zeros(0, np.int64))
    expected = tok.encode_segment(seg).audio
    assert len(expected.codes) > 0
    np.testing.assert_array_equal(_all(chunks, "audio"), expected.codes)
    assert _all(chunks, "video").shape == (0, vocab.video_quantizers)
    # "format" defaults to wav, and the same clip renders the same text.
    assert render_content([{"type": "input_audio", "input_audio": {"data": b64}}], ctx) == text


def test_input_audio_resamples_a_longer_stereo_clip_into_chunks(tok, vocab):
    rate = 8_000
    t = np.arange(3 * rate) / rate
    mono = (0.4 * np.sin(2 * np.pi * 300 * t) * 32767).astype(np.int16)
    stereo = np.stack([mono, mono], axis=1)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(stereo.tobytes())
    b64 = base64.b64encode(buf.getvalue()).decode()
    samples = decode_audio({"data": b64, "format": "wav"}, "audio", 10**6)
    assert abs(len(samples) - 3 * RATE) <= 32
    text = render_content([{"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}}],
                          ChatContext(vocab, tokenizer=tok))
    chunks = parse_prompt(text, vocab)
    assert [c.index for c in chunks] == [0, 1]  # 3 s of audio: two 2 s chunks
    assert text.count(AUDIO_START) == text.count(AUDIO_END) == 2


def test_input_audio_errors(tok, vocab):
    ctx = ChatContext(vocab, tokenizer=tok)
    w = "messages[0].content[0].input_audio"

    def err(spec, context=ctx):
        messages = [{"role": "user", "content": [{"type": "input_audio", "input_audio": spec}]}]
        with pytest.raises(InvalidInputError) as info:
            render_messages(messages, context)
        return info.value

    good = _wav_b64(_tone_pcm(0.5))
    e = err({"data": "not base64 !!", "format": "wav"})
    assert e.input == f"{w}.data" and "base64" in e.reason
    e = err({"data": good[:-1], "format": "wav"})  # bad padding
    assert e.input == f"{w}.data" and "base64" in e.reason
    e = err({"data": "", "format": "wav"})
    assert e.input == f"{w}.data"
    e = err({"format": "wav"})
    assert e.input == f"{w}.data"
    e = err({"data": good, "format": "aiff"})
    assert e.input == f"{w}.format" and "'aiff'" in e.reason
    e = err({"data": good, "format": ["wav"]})
    assert e.input == f"{w}.format"
    e = err("just a string")
    assert e.input == w and "object" in e.reason
    e = err(None)
    assert e.input == w
    e = err({"data": base64.b64encode(b"these bytes are not audio at all " * 20).decode(), "format": "wav"})
    assert e.input == w and "cannot decode" in e.reason
    e = err({"data": base64.b64encode(_png_bytes(_image())).decode(), "format": "wav"})
    assert e.input == w and "cannot decode" in e.reason
    e = err({"data": base64.b64encode(bytes(64)).decode(), "format": "mp3"})
    assert e.input == w and "cannot decode" in e.reason
    small = ChatContext(vocab, tokenizer=tok, max_inline_bytes=1_000)
    e = err({"data": good, "format": "wav"}, small)
    assert e.input == f"{w}.data" and "larger than 1000 bytes" in e.reason
    e = err({"data": good, "format": "wav"}, ChatContext(vocab))
    assert e.input == "messages[0].content[0]" and "no codebooks" in e.reason


# -- image_url -------------------------------------------------------------------------------------
def test_image_url_is_tokenized_like_one_ingested_frame(tok, vocab):
    pixels = _image()
    url = _data_url(_png_bytes(pixels))
    np.testing.assert_array_equal(decode_image(url, "img", 10**6), pixels)  # PNG is lossless

    ctx = ChatContext(vocab, tokenizer=tok)
    text = render_content([{"type": "image_url", "image_url": {"url": url}}], ctx)
    assert AUDIO_START not in text and TEXT_START not in text
    (chunk,) = parse_prompt(text, vocab)
    assert chunk.index == 0 and chunk.audio_codes.shape == (0, vocab.audio_quantizers)

    seg = Segment("mine", 0, 0, 200_000, None, RATE, [pixels], np.zeros(1, np.int64))  # 1 / video_token_fps
    expected = tok.encode_segment(seg).video
    assert len(expected.codes) > 0
    # One frame: tokens in (row, col) order, as render_prompt orders them.
    order = np.lexsort((expected.col, expected.row))
    np.testing.assert_array_equal(chunk.video_codes, np.asarray(expected.codes)[order])
    # The url may also be given as the plain string.
    assert render_content([{"type": "image_url", "image_url": url}], ctx) == text


def test_image_url_errors(tok, vocab):
    ctx = ChatContext(vocab, tokenizer=tok)
    w = "messages[0].content[0].image_url"

    def err(spec, context=ctx):
        messages = [{"role": "user", "content": [{"type": "image_url", "image_url": spec}]}]
        with pytest.raises(InvalidInputError) as info:
            render_messages(messages, context)
        return info.value

    for url in ("http://169.254.169.254/latest/meta-data.png", "https://example.com/cat.png",
                "file:///etc/passwd", "data:text/plain;base64,aGk=", "data:image/png,rawbytes", None, 7):
        e = err({"url": url})
        assert e.input == w and "only inline" in e.reason, url
    e = err({"url": "data:image/png;base64," + base64.b64encode(b"\x89PNG garbage" * 10).decode()})
    assert e.input == w and "not an image" in e.reason
    e = err({"url": "data:image/png;base64," + base64.b64encode(_png_bytes(_image())[:60]).decode()})
    assert e.input == w and "not an image" in e.reason  # truncated PNG
    e = err({"url": "data:image/png;base64,@@@@"})
    assert e.input == w and "base64" in e.reason
    small = ChatContext(vocab, tokenizer=tok, max_inline_bytes=500)
    e = err({"url": _data_url(_png_bytes(_image()))}, small)
    assert e.input == w and "larger than 500 bytes" in e.reason
    e = err({"url": _data_url(_png_bytes(_image()))}, ChatContext(vocab))
    assert e.input == "messages[0].content[0]" and "no codebooks" in e.reason


# -- text and structure ----------------------------------------------------------------------------
def test_text_parts_and_structure(vocab):
    ctx = ChatContext(vocab)
    assert render_content("plain <b>text</b> | < > |", ctx) == "plain <b>text</b> | < > |"
    assert render_content([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], ctx) == "ab"
    assert render_content([], ctx) == ""
    assert render_messages([{"role": "assistant"}], ctx) == [{"role": "assistant", "content": ""}]

    for bad in ("<|a0_1|>", "say <|time_3|> now", "<|im_end|>", AUDIO_START, "<|v1_2|>"):
        with pytest.raises(InvalidInputError, match="special-token string") as info:
            render_messages([{"role": "user", "content": [{"type": "text", "text": bad}]}], ctx)
        assert info.value.input == "messages[0].content[0].text"
        with pytest.raises(InvalidInputError, match="special-token string") as info:
            render_messages([{"role": "user", "content": bad}], ctx)
        assert info.value.input == "messages[0].content"

    def err(messages):
        with pytest.raises(InvalidInputError) as info:
            render_messages(messages, ctx)
        return info.value

    assert err([{"role": "user", "content": [{"type": "video_url", "video_url": {}}]}]).input == \
        "messages[0].content[0].type"
    assert err([{"role": "user", "content": [{"text": "no type"}]}]).input == "messages[0].content[0].type"
    assert err([{"role": "user", "content": ["bare string part"]}]).input == "messages[0].content[0]"
    assert err([{"role": "user", "content": [{"type": "text", "text": 5}]}]).input == "messages[0].content[0].text"
    assert err([{"role": "user", "content": [{"type": "text"}]}]).input == "messages[0].content[0].text"
    for content in ({"type": "text", "text": "x"}, 5, None, ("a",)):
        assert err([{"role": "user", "content": content}]).input == "messages[0].content", content
    for messages in ([], None, {"role": "user", "content": "x"}, "hello"):
        assert err(messages).input == "messages", messages
    for role in ("tool", "USER", None, 1):
        assert err([{"role": "user", "content": "ok"}, {"role": role, "content": "x"}]).input == "messages[1].role"
    assert err(["not a message"]).input == "messages[0].role"
    assert err([{"content": "no role"}]).input == "messages[0].role"


def test_adjacent_text_parts_cannot_join_into_a_special_token(vocab):
    ctx = ChatContext(vocab)
    parts = [{"type": "text", "text": "look <|a0_"}, {"type": "text", "text": "1|> here"}]
    try:
        out = render_content(parts, ctx)
    except InvalidInputError:
        return
    assert not SPECIAL_TOKEN_RE.search(out), f"smuggled a special token: {out!r}"


# -- modality counts -------------------------------------------------------------------------------
def test_modality_counts_exact(vocab):
    assert modality_counts([], vocab) == {"text": 0, "audio": 0, "video": 0}
    ids = ([0, 17, 999]  # plain text ids below first_id
           + [vocab.first_id + i for i in range(len(DELIMITERS))]  # every delimiter
           + [vocab.time_first_id, vocab.time_first_id + vocab.time_markers - 1]
           + [vocab.code_id("audio", 0, 0), vocab.code_id("audio", 1, 15), vocab.code_id("audio", 0, 7)]
           + [vocab.code_id("video", 0, 0), vocab.code_id("video", 1, 15)]
           + [42])
    assert modality_counts(ids, vocab) == {"text": 4, "audio": 3, "video": 2}
    # Boundaries: last structure id, first/last audio, first/last video.
    assert vocab.audio_first_id - 1 == vocab.time_first_id + vocab.time_markers - 1
    assert modality_counts([vocab.audio_first_id - 1], vocab) == {"text": 0, "audio": 0, "video": 0}
    assert modality_counts([vocab.video_first_id - 1, vocab.video_first_id, vocab.end_id - 1], vocab) == \
        {"text": 0, "audio": 1, "video": 2}
    assert modality_counts(np.array([1, 2, vocab.code_id("audio", 1, 3)]), vocab) == {"text": 2, "audio": 1, "video": 0}


def test_modality_counts_of_a_rendered_prompt(vocab):
    """Ids of a rendered segment_ref (added tokens by layout, text as one id per character)."""
    text = render_content([{"type": "text", "text": "hi "},
                           {"type": "segment_ref", "stream_id": "cam1", "from_s": 1.0, "to_s": 3.5}],
                          ChatContext(vocab, rows_between=FakeStore(_rows(vocab))))
    index = {t: vocab.first_id + i for i, t in enumerate(vocab.tokens())}
    ids = []
    pos = 0
    for m in SPECIAL_TOKEN_RE.finditer(text):
        ids += [ord(ch) for ch in text[pos:m.start()]]
        ids.append(index[m.group()])
        pos = m.end()
    ids += [ord(ch) for ch in text[pos:]]
    n_text = len("hi ") + len("first") + len("second")
    # 5 audio tokens x 2 stages, 3 video tokens x 2 stages (see the segment_ref test).
    assert modality_counts(ids, vocab) == {"text": n_text, "audio": 10, "video": 6}


# -- decode_* used directly --------------------------------------------------------------------------
def test_decode_functions_name_the_input(vocab):
    good = _wav_b64(_tone_pcm(0.25))
    with pytest.raises(InvalidInputError, match=r"^req\.voice: must be an object"):
        decode_audio([good], "req.voice", 10**6)
    with pytest.raises(InvalidInputError, match=r"^req\.voice\.format: 'opus' is not one of"):
        decode_audio({"data": good, "format": "opus"}, "req.voice", 10**6)
    with pytest.raises(InvalidInputError, match=r"^req\.voice\.data: is not valid base64"):
        decode_audio({"data": "%%%%", "format": "wav"}, "req.voice", 10**6)
    with pytest.raises(InvalidInputError, match=r"^req\.voice\.data: larger than 100 bytes"):
        decode_audio({"data": good}, "req.voice", 100)
    with pytest.raises(InvalidInputError, match=r"^req\.voice: cannot decode"):
        decode_audio({"data": base64.b64encode(b"RIFF....WAVEjunk").decode()}, "req.voice", 10**6)
    assert decode_audio({"data": good}, "req.voice", 10**6).shape == (RATE // 4,)

    with pytest.raises(InvalidInputError, match=r"^req\.pic: only inline"):
        decode_image("http://example.com/a.png", "req.pic", 10**6)
    with pytest.raises(InvalidInputError, match=r"^req\.pic: is not valid base64"):
        decode_image("data:image/png;base64,!!", "req.pic", 10**6)
    with pytest.raises(InvalidInputError, match=r"^req\.pic: larger than 10 bytes"):
        decode_image(_data_url(_png_bytes(_image())), "req.pic", 10)
    with pytest.raises(InvalidInputError, match=r"^req\.pic: not an image"):
        decode_image(_data_url(b"GIF89a" + bytes(40), "image/gif"), "req.pic", 10**6)

    # Other modes become RGB; a JPEG under a png mime type is still read by content.
    from PIL import Image

    gray = np.arange(12 * 20, dtype=np.uint8).reshape(12, 20)
    out = decode_image(_data_url(_png_bytes(gray)), "req.pic", 10**6)
    assert out.shape == (12, 20, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], gray)
    rgba = np.dstack([_image(), np.full((48, 64), 128, np.uint8)])
    assert decode_image(_data_url(_png_bytes(rgba)), "req.pic", 10**6).shape == (48, 64, 3)
    buf = io.BytesIO()
    Image.fromarray(_image()).save(buf, format="JPEG")
    assert decode_image(_data_url(buf.getvalue(), "image/png"), "req.pic", 10**6).shape == (48, 64, 3)


def test_huge_pictures_are_refused_from_the_header_and_big_ones_shrunk_while_decoding():
    """The adversarial probe: a 131 KB PNG of 6300 x 6300 cost the ingress ~1.3 GB."""
    from PIL import Image

    from engine.omni.chat import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE_PX

    buf = io.BytesIO()
    Image.new("P", (6300, 6300)).save(buf, format="PNG", optimize=True)
    assert len(buf.getvalue()) < 200_000
    with pytest.raises(InvalidInputError, match=f"more than {MAX_IMAGE_PIXELS:,}"):
        decode_image(_data_url(buf.getvalue()), "req.pic", 10**6)
    buf = io.BytesIO()
    Image.new("RGBA", (4000, 3000), (10, 20, 30, 255)).save(buf, format="PNG")
    out = decode_image(_data_url(buf.getvalue()), "req.pic", 10**7)
    assert out.shape == (MAX_IMAGE_SIDE_PX * 3 // 4, MAX_IMAGE_SIDE_PX, 3) and tuple(out[0, 0]) == (10, 20, 30)


def test_text_only_server_renders_text_and_refuses_media_parts():
    msgs = [{"role": "user", "content": [{"type": "text", "text": "hello"}]}, {"role": "assistant", "content": "hi"}]
    assert render_messages(msgs, None) == [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]
    with pytest.raises(InvalidInputError, match=r"messages\[0\]\.content\[0\]\.type"):
        render_messages([{"role": "user", "content": [{"type": "segment_ref", "stream_id": "s", "from_s": 0,
                                                       "to_s": 1}]}], None)
