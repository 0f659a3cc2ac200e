"""The adapters the package ships (``omnialign/adapters``): intact, and trained on the encoders a
default ingest records, so the demo's ingest accepts them; the demo's sounds are all eval-split."""

from __future__ import annotations

import pytest

from benchmarks.data.anchor_demo import SOUNDS_DIR, SOUNDS
from benchmarks.data.captions import eval_by_hash
from engine.asr.config import AsrConfig
from engine.asr.model import check_speech_model, weights_hash
from engine.encode.audio import DEFAULT_AUDIO_ENCODER
from engine.encode.registry import image_encoder_info
from engine.store.anchors import SOURCE_COLUMN, check_adapter
from engine.train.adapter import load_adapter
from omnialign.demo import SHIPPED_ADAPTERS


def _default_encoders() -> dict[str, str]:
    info = image_encoder_info("efficientnet-lite0")
    return {info.column: f"{info.name}@{info.weights_hash}",
            "audio_enc_emb": f"{DEFAULT_AUDIO_ENCODER}@{weights_hash(check_speech_model(AsrConfig()))}"}


@pytest.mark.parametrize("modality", ["image", "audio"])
def test_a_shipped_adapter_loads_and_fits_the_default_columns(modality):
    adapter = load_adapter(SHIPPED_ADAPTERS / modality)  # checks the weights against the recorded hash
    assert adapter.config.modality == modality and adapter.config.out_dim == 384
    assert check_adapter(adapter, _default_encoders()) == SOURCE_COLUMN[modality]
    size_mb = sum(f.stat().st_size for f in (SHIPPED_ADAPTERS / modality).iterdir()) / 1e6
    assert size_mb < 5.0


def test_the_demo_sounds_are_all_outside_the_training_split():
    assert all(eval_by_hash(f"{SOUNDS_DIR}/{rel}") for rel in SOUNDS)
