"""Dev sets for the sync benchmark: fetched from Debian / PyPI packages, built into a cache outside
the repo (never committed), described by a manifest. See :mod:`benchmarks.data.devsets`."""
