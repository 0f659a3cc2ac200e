"""omnialign's pure core: media, timeline, features, RVQ, DTW, sync, compression, store.

Importable and testable without Ray. Submodules are imported explicitly by callers so that
``import engine`` stays cheap (no torch / PyAV import at package import time).
"""

__all__: list[str] = []
