"""Opening media sources: classify a path or URL, open it with PyAV, map failures to typed errors.

Kept apart from segmenting (``engine.media.decode``) because the rules for *what* may be opened (schemes,
files, magic bytes, timeouts) are policy that ingest and serving check before any decoding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import av

from engine.errors import (
    EmptyMediaError,
    MediaError,
    MediaNotFoundError,
    NotMediaError,
    SourceConnectionError,
    TruncatedMediaError,
    UnsupportedSourceError,
)

#: URL schemes read as live/network sources through FFmpeg's protocols.
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "srt", "tcp")

# Leading bytes of containers we write or commonly meet. A file that starts like a container but
# fails to open is truncated/corrupt, not "not media": the two need different fixes.
_MAGIC = (
    (4, b"ftyp"),  # mp4 / mov / m4a
    (4, b"moov"),
    (4, b"mdat"),
    (0, b"\x1a\x45\xdf\xa3"),  # matroska / webm
    (0, b"RIFF"),  # wav / avi
    (0, b"OggS"),
    (0, b"fLaC"),
    (0, b"ID3"),  # mp3 with tag
    (0, b"\x00\x00\x01\xba"),  # mpeg-ps
    (0, b"G"),  # mpeg-ts sync byte (weak, checked last)
)


@dataclass(frozen=True)
class SourceRef:
    """A classified source.

    Attributes:
        uri: What the user gave (path or URL), used in every error and row.
        kind: ``"file"`` or ``"live"``.
        target: What PyAV opens (an absolute path or the URL).
    """

    uri: str
    kind: str
    target: str

    @property
    def is_live(self) -> bool:
        return self.kind == "live"


def classify(source: str | Path) -> SourceRef:
    """Decides whether ``source`` is a local file or a supported live URL.

    Raises:
        UnsupportedSourceError: For a URL scheme outside ``file`` and :data:`LIVE_SCHEMES`.
        MediaNotFoundError: For a missing local path.
        EmptyMediaError: For a zero-byte file.
        NotMediaError: For a directory (expand folders before opening).
    """
    uri = str(source)
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme in LIVE_SCHEMES:
        return SourceRef(uri, "live", uri)
    if scheme not in ("", "file") and len(scheme) > 1:  # len 1: a Windows drive letter
        raise UnsupportedSourceError(uri, f"unsupported URL scheme {scheme!r}; use a file or one of {', '.join(LIVE_SCHEMES)}")
    path = Path(parsed.path if scheme == "file" else uri).expanduser()
    if not path.exists():
        raise MediaNotFoundError(uri, "no such file")
    if path.is_dir():
        raise NotMediaError(uri, "is a directory (give the files in it, or use ingest on the folder)")
    if path.stat().st_size == 0:
        raise EmptyMediaError(uri, "file is empty (0 bytes)")
    return SourceRef(uri, "file", str(path.resolve()))


def default_stream_id(source: str | Path) -> str:
    """A stable, readable id for a source: file stem (or host) plus a short hash of the URI.

    Local paths are resolved first, so ``clip.mp4`` and ``/data/clip.mp4`` (the same file) get
    the same id and a re-run resumes it whichever way it was named.
    """
    uri = str(source)
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        uri = str(Path(parsed.path if parsed.scheme == "file" else uri).expanduser().resolve())
        parsed = urlparse(uri)
    stem = Path(parsed.path).stem or parsed.hostname or "stream"
    digest = hashlib.sha1(uri.encode()).hexdigest()[:8]
    return f"{stem[:40]}-{digest}"


def _looks_like_container(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return any(head[off : off + len(magic)] == magic for off, magic in _MAGIC)


def open_container(ref: SourceRef, open_timeout_s: float, read_timeout_s: float) -> av.container.InputContainer:
    """Opens a classified source with PyAV, translating failures into :class:`MediaError` types."""
    options: dict[str, str] = {}
    kwargs = {}
    if ref.is_live:
        kwargs["timeout"] = (open_timeout_s, read_timeout_s)
        if ref.target.startswith("rtsp"):
            options["rtsp_transport"] = "tcp"  # UDP RTP loses packets silently behind NAT
    try:
        return av.open(ref.target, mode="r", options=options, **kwargs)
    except MediaError:
        raise
    except (av.error.InvalidDataError, av.error.EOFError) as exc:
        if ref.is_live:
            raise SourceConnectionError(ref.uri, f"stream data could not be read: {exc}") from None
        if _looks_like_container(ref.target):
            raise TruncatedMediaError(ref.uri, f"looks like a media container but cannot be opened (truncated or corrupt): {exc}") from None
        raise NotMediaError(ref.uri, "not a media file PyAV/FFmpeg can read") from None
    except (av.error.FFmpegError, OSError) as exc:
        if ref.is_live:
            raise SourceConnectionError(ref.uri, f"cannot connect: {exc}") from None
        raise NotMediaError(ref.uri, f"cannot open: {exc}") from None
