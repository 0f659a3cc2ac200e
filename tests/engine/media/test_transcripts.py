import pickle

import pytest

from engine.media.transcripts import (
    Cue,
    TranscriptError,
    find_sidecar,
    load_transcript,
    parse_cues,
    parse_timestamp,
    text_for_span,
)

SRT = (
    "\ufeff1\r\n"
    "00:00:01,000 --> 00:00:02,500\r\n"
    "Hello <i>there</i>,\r\n"
    "general Kenobi.\r\n"
    "\r\n"
    "\r\n"
    "2\r\n"
    "00:00:03,250 --> 00:00:04,000 X1:10 X2:20 Y1:5 Y2:9\r\n"
    "{\\an8}Tom &amp; Jerry\r\n"
    "3\r\n"  # no blank line before cue 3: "3" is its index, not speech
    "01:02:03,004 --> 01:02:05,000\r\n"
    "Last   line"  # no trailing newline
)

VTT = """WEBVTT - a header with text
Kind: captions

NOTE this is a comment
that spans lines

STYLE
::cue { color: yellow }

intro
00:01.000 --> 00:02.000 align:start position:10%
<v Alice>Welcome to the show</v>

00:00:02.000 --> 00:00:04.500
multi
line <00:00:03.000>cue

   \t
100:00:00.000 --> 100:00:01.000
far later
"""


def test_timestamps_both_separators_and_optional_hours():
    assert parse_timestamp("00:00:01,000") == 1_000_000
    assert parse_timestamp("01:02:03.004") == 3_723_004_000
    assert parse_timestamp("02:03.500") == 123_500_000
    assert parse_timestamp("123:00:00,001") == 123 * 3600 * 10**6 + 1000
    for bad in ["00:00:01", "00:61:00,000", "1:2:3,4", "00:00:01,0000", "aa:bb:cc,ddd"]:
        with pytest.raises(ValueError):
            parse_timestamp(bad)


def test_srt_with_bom_crlf_tags_settings_and_missing_blank_line():
    cues = parse_cues(SRT)
    assert cues == [
        Cue(1_000_000, 2_500_000, "Hello there, general Kenobi."),
        Cue(3_250_000, 4_000_000, "Tom & Jerry"),
        Cue(3_723_004_000, 3_725_000_000, "Last line"),
    ]


def test_vtt_header_notes_style_identifiers_settings_and_hours():
    cues = parse_cues(VTT, offset_us=10)
    assert cues == [
        Cue(1_000_010, 2_000_010, "Welcome to the show"),
        Cue(2_000_010, 4_500_010, "multi line cue"),
        Cue(360_000_000_010, 360_001_000_010, "far later"),
    ]


def test_malformed_timestamp_names_file_and_line(tmp_path):
    p = tmp_path / "bad.srt"
    p.write_text("1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:03.5 --> 00:00:04,000\nbad\n")
    with pytest.raises(TranscriptError) as ei:
        load_transcript(p)
    assert ei.value.path == str(p) and ei.value.line == 6
    assert "bad.srt:6" in str(ei.value)
    again = pickle.loads(pickle.dumps(ei.value))
    assert (again.path, again.line, again.reason) == (ei.value.path, 6, ei.value.reason)


@pytest.mark.parametrize("line,reason", [
    ("00:00:01,000 -> 00:00:02,000", "without '-->'"),
    ("00:00:05,000 --> 00:00:02,000", "ends before"),
    ("00:00:05,000 -->", "no end time"),
])
def test_broken_timing_lines_are_reported(line, reason):
    with pytest.raises(TranscriptError, match=reason) as ei:
        parse_cues(f"1\n{line}\ntext\n", source="x.srt")
    assert ei.value.line == 2


def test_load_vtt_file_and_unknown_suffix(tmp_path):
    p = tmp_path / "a.vtt"
    p.write_bytes(VTT.encode("utf-8-sig"))
    assert [c.text for c in load_transcript(p)][0] == "Welcome to the show"
    with pytest.raises(TranscriptError, match="not a transcript"):
        load_transcript(tmp_path / "a.txt")


def test_find_sidecar_prefers_srt_and_matches_stem(tmp_path):
    media = tmp_path / "talk.mp4"
    media.write_bytes(b"")
    assert find_sidecar(media) is None
    (tmp_path / "talk.VTT").write_text("WEBVTT\n")
    (tmp_path / "talky.srt").write_text("")
    assert find_sidecar(media) == tmp_path / "talk.VTT"
    (tmp_path / "talk.srt").write_text("")
    assert find_sidecar(media) == tmp_path / "talk.srt"
    assert find_sidecar("udp://239.0.0.1:5000") is None


def test_text_for_span_joins_overlapping_cues_half_open():
    cues = [Cue(0, 1_000_000, "a"), Cue(1_500_000, 2_500_000, "b"), Cue(2_500_000, 3_000_000, "c")]
    assert text_for_span(cues, 0, 2_000_000) == "a b"  # b straddles the boundary
    assert text_for_span(cues, 2_000_000, 4_000_000) == "b c"
    assert text_for_span(cues, 1_000_000, 1_500_000) is None  # touches both, overlaps neither
    assert text_for_span(cues, 3_000_000, 5_000_000) is None
