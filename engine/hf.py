"""Loading local Hugging Face models without their console progress bars.

transformers 5 draws a "Loading weights" bar on stderr for every ``from_pretrained`` (and
"Writing model shards" for ``save_pretrained``); omnialign shows its own progress, so model
loads and saves run inside :func:`no_progress_bars`. Only bars created inside the block are
hidden: nothing process-wide changes (no environment variable, no global verbosity), and
transformers' warnings still show.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_progress_bars() -> Iterator[None]:
    """Hides the progress bars transformers creates inside the ``with`` block."""
    from transformers.utils import logging as hf_logging

    def hook(factory, args, kwargs):
        kwargs = {**kwargs, "disable": True}
        return previous(factory, args, kwargs) if previous is not None else factory(*args, **kwargs)

    previous = hf_logging.set_tqdm_hook(hook)
    try:
        yield
    finally:
        hf_logging.set_tqdm_hook(previous)
