"""Real English speech with reference transcripts, for the ASR tests and benchmark (issue #13).

Source: Debian ``pocketsphinx-testdata`` (1.8 MB): five LibriVox sentences read from *Sense and
Sensibility* and five spoken card names, 16 kHz WAV, with their transcriptions. Fetched with
``apt-get download`` into the dev-set cache (never into the repo) and unpacked, not installed.

:func:`compose_program` lays utterances end to end at known times with pauses (and optional
stretches of real non-speech sound) between, as a long recording with ground-truth windows.

Usage (``make test`` runs it; ``make demo`` with ``--export``)::

    python -m benchmarks.data.speech [--cache DIR] [--export FILE]
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.data.fetch import SPEECH_SOURCES, fetch_debian
from benchmarks.data.media_io import decode_audio

_DATA = "usr/share/pocketsphinx/test/data"
#: (folder, transcription file) pairs in the package.
_SETS = (("librivox", "transcription"), ("cards", "cards.transcription"))
RATE_HZ = 16_000


@dataclass(frozen=True)
class Utterance:
    """One recording and what is said in it."""

    path: Path
    text: str


def default_cache() -> Path:
    from benchmarks.data.devsets import default_cache as devsets_cache

    return devsets_cache()


def speech_set(cache: Path | None = None, log=print) -> list[Utterance]:
    """The ten utterances (fetched on first use), in a fixed order.

    Raises:
        RuntimeError: The package could not be fetched.
    """
    root = fetch_debian(cache or default_cache(), list(SPEECH_SOURCES), log) / _DATA
    out = []
    for folder, listing in _SETS:
        for line in (root / folder / listing).read_text().splitlines():
            m = re.match(r"\s*<s>(.*)</s>\s*\((\S+)\)", line)
            if m:
                out.append(Utterance(root / folder / f"{m.group(2)}.wav", " ".join(m.group(1).split())))
    return out


@dataclass(frozen=True)
class Placed:
    """An utterance placed in a composed program: its text and window on the program's clock."""

    text: str
    t_start_us: int
    t_end_us: int


def compose_program(utterances: list[Utterance], gaps_s: list[float], lead_s: float = 1.0,
                    filler: np.ndarray | None = None) -> tuple[np.ndarray, list[Placed]]:
    """The utterances laid end to end: ``lead_s`` of silence, then each utterance followed by
    its gap. With ``filler`` (non-speech sound), each gap is filled with it at a quarter of its
    level instead of silence. Returns 16 kHz mono float32 audio and each utterance's window.
    """
    pieces, placed, t = [np.zeros(int(lead_s * RATE_HZ), np.float32)], [], int(lead_s * RATE_HZ)
    for utt, gap in zip(utterances, gaps_s, strict=True):
        x = decode_audio(utt.path, RATE_HZ)
        placed.append(Placed(utt.text, t * 1_000_000 // RATE_HZ, (t + len(x)) * 1_000_000 // RATE_HZ))
        n = int(gap * RATE_HZ)
        if filler is not None and len(filler):
            g = 0.25 * np.resize(filler, n).astype(np.float32)
        else:
            g = np.zeros(n, np.float32)
        pieces += [x, g]
        t += len(x) + n
    return np.concatenate(pieces), placed


def write_audio(dst: str | Path, audio: np.ndarray, rate_hz: int = RATE_HZ) -> Path:
    """Encodes mono float audio as an audio-only file (codec from the extension: .wav PCM,
    .m4a AAC, .ogg Opus) with PyAV."""
    import av

    dst = Path(dst)
    codec = {".wav": "pcm_s16le", ".m4a": "aac", ".ogg": "libopus", ".mka": "flac"}[dst.suffix]
    rate = 48_000 if codec == "libopus" else rate_hz
    x = audio if rate == rate_hz else np.interp(np.arange(int(len(audio) * rate / rate_hz)) * rate_hz / rate,
                                                np.arange(len(audio)), audio).astype(np.float32)
    with av.open(str(dst), "w") as c:
        s = c.add_stream(codec, rate=rate, layout="mono")
        fmt = "s16" if codec == "pcm_s16le" else s.codec_context.format.name
        chunk = 1024
        for i in range(0, len(x), chunk):
            block = x[i:i + chunk]
            if fmt.startswith("s16"):
                arr = (np.clip(block, -1, 1) * 32767).astype(np.int16)[None]
            else:
                arr = block.astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(arr, format=fmt.rstrip("p") if not fmt.endswith("p") else fmt, layout="mono")
            frame.sample_rate = rate
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--export", type=Path, help="also write the five LibriVox sentences as one recording here (.wav/.m4a)")
    args = ap.parse_args(argv)
    utts = speech_set(args.cache)
    print(f"speech set: {len(utts)} utterances in {utts[0].path.parent.parent}")
    if args.export:
        args.export.parent.mkdir(parents=True, exist_ok=True)
        audio, placed = compose_program(utts[:5], [1.5, 1.0, 2.0, 1.2, 1.0])
        write_audio(args.export, audio)
        print(f"wrote {args.export} ({len(audio) / RATE_HZ:.1f} s, {len(placed)} sentences)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
