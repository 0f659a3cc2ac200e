"""Training the masked audio-code model on aligned sources, and its loss as a function of an
artificial A/V shift: the shift curve, and the offset it implies (a learned sync score).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from engine.errors import InvalidInputError, check_fields
from engine.train.code_streams import CodeStreams
from engine.train.masked import MaskedCodeModel
from engine.train.windows import WindowConfig, collate, cut_window, span_mask, start_range_us


@dataclass(frozen=True)
class MaskedTrainConfig:
    """Optimisation of :class:`~engine.train.masked.MaskedCodeModel`.

    Args:
        steps: Optimiser steps.
        batch_size: Windows per step.
        lr: Peak AdamW learning rate (linear warm-up over the first 5 %, cosine decay after).
        weight_decay: AdamW weight decay.
        seed: Seeds window sampling, masks and initialisation.
    """

    steps: int = 1200
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, positive=("steps", "batch_size", "lr"), non_negative=("weight_decay",))


def token_us(streams: CodeStreams, windows: WindowConfig) -> int:
    """Duration of one (strided) audio token."""
    return int(np.median(np.diff(streams.audio_t_us[:1000]))) * windows.audio_stride


def _n_tokens(streams: CodeStreams, windows: WindowConfig) -> int:
    return windows.window_us // token_us(streams, windows) + 2


def train_masked(model: MaskedCodeModel, sources: list[CodeStreams], windows: WindowConfig,
                 config: MaskedTrainConfig, log: Callable[[str], None] | None = None) -> list[float]:
    """Trains on aligned ``sources`` (audio times on the video's timeline); returns the mean loss
    of each tenth of the run.

    Raises:
        InvalidInputError: No source is long enough for one window.
    """
    usable = [(s, *start_range_us(s, windows)) for s in sources]
    usable = [u for u in usable if u[2] > u[1]]
    if not usable:
        raise InvalidInputError("sources", f"none is longer than one window ({windows.window_us} us plus jitter)")
    weights = np.array([hi - lo for _, lo, hi in usable], np.float64)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warm = max(1, config.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, i / config.steps))))
    model.train()
    history, chunk = [], []
    for step in range(config.steps):
        batch = []
        for k in rng.choice(len(usable), size=config.batch_size, p=weights / weights.sum()):
            s, lo, hi = usable[k]
            v0 = int(rng.integers(lo, hi))
            a0 = v0 + int(rng.integers(-windows.jitter_us, windows.jitter_us + 1))
            batch.append(cut_window(s, v0, a0, windows, span_mask(_n_tokens(s, windows), windows,
                                                                  token_us(s, windows), rng)))
        loss = model.loss_per_window(collate(batch)).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        chunk.append(loss.item())
        if len(chunk) * 10 >= config.steps or step == config.steps - 1:
            history.append(float(np.mean(chunk)))
            chunk = []
            if log:
                log(f"  step {step + 1}/{config.steps}: loss {history[-1]:.3f}")
    model.eval()
    return history


@torch.no_grad()
def shift_curve(model: MaskedCodeModel, streams: CodeStreams, windows: WindowConfig, shifts_us: np.ndarray,
                n_windows: int = 8, seed: int = 0) -> np.ndarray:
    """Mean masked loss at each artificial shift (``[len(shifts_us)]``): the same windows and
    masks at every shift, so the curve differs only in how the content lines up.

    Raises:
        InvalidInputError: The source is too short for a window at the largest shift.
    """
    shifts = np.asarray(shifts_us, np.int64)
    lo, hi = start_range_us(streams, windows, int(np.abs(shifts).max()))
    if hi < lo:
        raise InvalidInputError(streams.name, "too short for one window at the largest shift")
    model.eval()
    rng = np.random.default_rng(seed)
    curves = []
    for v0 in np.linspace(lo, hi, n_windows).astype(np.int64):
        a0 = int(v0) + int(rng.integers(-windows.jitter_us, windows.jitter_us + 1))
        mask = span_mask(_n_tokens(streams, windows), windows, token_us(streams, windows), rng)
        batch = collate([cut_window(streams, int(v0), a0, windows, mask, int(s)) for s in shifts])
        curves.append(model.loss_per_window(batch).numpy())
    return np.mean(curves, axis=0)


def curve_offset_us(curve: np.ndarray, shifts_us: np.ndarray) -> tuple[float, float]:
    """The A/V offset a shift curve implies, and its contrast.

    The curve is lowest at the shift that undoes the offset (``offset = -shift``), refined by a
    parabola through the minimum and its neighbours. Contrast is how far the minimum lies below
    the curve's median, relative to the median (0: a flat curve says nothing).
    """
    curve = np.asarray(curve, np.float64)
    i = int(np.argmin(curve))
    s = float(shifts_us[i])
    if 0 < i < len(curve) - 1:
        a, b, c = curve[i - 1], curve[i], curve[i + 1]
        den = a - 2 * b + c
        if den > 0:
            s += 0.5 * (a - c) / den * float(shifts_us[i + 1] - shifts_us[i])
    med = float(np.median(curve))
    return -s, (med - float(curve[i])) / med if med > 0 else 0.0
