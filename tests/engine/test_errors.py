"""The typed errors and the config range checks every ``__post_init__`` uses."""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import pytest

from engine.align.dtw import DTWConfig
from engine.errors import InvalidInputError, StoreError, check_fields
from engine.media.synth import SynthSpec
from engine.tokenize.compress import CompressionConfig
from engine.tokenize.features import LogMelConfig
from engine.tokenize.tokenizer import TokenizerConfig


@dataclass(frozen=True)
class _Cfg:
    rate_hz: float = 1.0
    lag_frames: int | None = 0
    share: float = 0.5

    def __post_init__(self) -> None:
        check_fields(self, positive=("rate_hz",), non_negative=("lag_frames",), unit_interval=("share",))


def test_check_fields_names_the_field_and_skips_none():
    _Cfg(lag_frames=None)
    for kw, name in (({"rate_hz": 0}, "rate_hz"), ({"lag_frames": -1}, "lag_frames"), ({"share": 1.5}, "share")):
        with pytest.raises(InvalidInputError) as err:
            _Cfg(**kw)
        assert err.value.input == name


def test_errors_survive_pickling_with_their_fields():
    for exc in (InvalidInputError("x", "bad"), StoreError("/db/t", "gone")):
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is type(exc) and (back.input, back.reason) == (exc.input, exc.reason)


@pytest.mark.parametrize("cls, kw", [
    (DTWConfig, {"metric": "manhattan"}),
    (LogMelConfig, {"max_frequency_hz": 9_000.0}),
    (TokenizerConfig, {"audio_quantizers": 0}),
    (SynthSpec, {"fps": 0}),
    (CompressionConfig, {"keyframe_threshold": -0.1}),
])
def test_configs_refuse_bad_values_at_construction(cls, kw):
    with pytest.raises(InvalidInputError) as err:
        cls(**kw)
    assert err.value.input == next(iter(kw))
