"""Shared fixtures: synthetic clips made once per test session (real PyAV encodes)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def clip_factory(tmp_path_factory):
    """Returns ``make(spec, name) -> GroundTruth``, caching clips by name for the session."""
    from engine.media.synth import synthesize

    root = tmp_path_factory.mktemp("clips")
    cache = {}

    def make(spec, name):
        if name not in cache:
            cache[name] = synthesize(spec, root / name)
        return cache[name]

    return make


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray for the whole test session (starting Ray costs 5-15 s here)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random-init Qwen2 model folder (hidden 64, 4 heads of 16, 2 kv heads), text only."""
    from engine.omni.model import TinyModelConfig, init_model

    out = tmp_path_factory.mktemp("tiny_model") / "tiny"
    init_model(out, TinyModelConfig(hidden_size=64, num_layers=2, num_attention_heads=4, num_kv_heads=2,
                                    intermediate_size=128))
    return out


@pytest.fixture(scope="session")
def picture_folder():
    """Returns ``make(root, names, video_size=None) -> root``: real scikit-image photographs copied into
    ``root/pics`` and tiny codebooks fitted on them in ``root/codebooks`` (what an ingest of them needs)."""
    import shutil

    from benchmarks.data.pictures import skimage_pictures
    from engine.media.decode import MediaConfig, iter_segments
    from engine.tokenize.tokenizer import Tokenizer, TokenizerConfig

    def make(root, names, video_size=None):
        pics = skimage_pictures(log=lambda *_: None)
        (root / "pics").mkdir()
        for n in names:
            shutil.copy(pics[n], root / "pics" / pics[n].name)
        media = MediaConfig() if video_size is None else MediaConfig(video_width=video_size[0], video_height=video_size[1])
        cfg = TokenizerConfig(audio_quantizers=2, audio_codebook_size=16, video_quantizers=2, video_codebook_size=16)
        segs = [s for p in sorted((root / "pics").iterdir()) for s in iter_segments(str(p), media)]
        Tokenizer.fit(segs, cfg).save(root / "codebooks")
        return root

    return make
