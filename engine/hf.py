"""Loading local Hugging Face models without their console progress bars.

transformers 5 draws a "Loading weights" bar on stderr for every ``from_pretrained`` (and
"Writing model shards" for ``save_pretrained``); omnialign shows its own progress, so model
loads and saves run inside :func:`no_progress_bars`. Only bars created while a block is open
are hidden (no environment variable, no global verbosity changes), and transformers' warnings
still show.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

# transformers' tqdm hook is process-wide: blocks in several threads share one installed hook,
# counted, so overlapping blocks never restore each other's hook out of order.
_lock = threading.Lock()
_depth = 0
_previous = None


def _hook(factory, args, kwargs):
    kwargs = {**kwargs, "disable": True}
    return _previous(factory, args, kwargs) if _previous is not None else factory(*args, **kwargs)


@contextmanager
def no_progress_bars() -> Iterator[None]:
    """Hides the progress bars transformers creates while any ``with`` block of this is open."""
    from transformers.utils import logging as hf_logging

    global _depth, _previous
    with _lock:
        if _depth == 0:
            _previous = hf_logging.set_tqdm_hook(_hook)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                hf_logging.set_tqdm_hook(_previous)
                _previous = None
