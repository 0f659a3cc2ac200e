"""omnialign: command line and application glue over the engine (see ``engine/``)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("omnialign")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+src"
