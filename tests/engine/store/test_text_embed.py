import numpy as np
import pytest

from engine.errors import InvalidInputError
from engine.store.text_embed import TEXT_EMB_DIM, default_model_dir, get_text_embedder

SENTENCES = [
    "The chef is chopping onions in the kitchen.",
    "A goalkeeper dives to save a penalty kick.",
    "",
    "Stock markets fell sharply after the interest rate announcement, dragging technology "
    "shares down for the third consecutive day while bond yields climbed.",
    "short",
    # Past the model's 256-token limit: truncated the same way as the reference.
    " ".join(f"token{i} and more words" for i in range(120)),
]


@pytest.fixture(scope="module")
def embedder():
    return get_text_embedder()


def test_matches_sentence_transformers_reference(embedder):
    from sentence_transformers import SentenceTransformer

    ref = SentenceTransformer(str(default_model_dir()), device="cpu", local_files_only=True)
    expected = ref.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    got = embedder.embed(SENTENCES)
    assert got.dtype == np.float32 and got.shape == (len(SENTENCES), TEXT_EMB_DIM)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_batching_and_order_do_not_change_embeddings(embedder):
    whole = embedder.embed(SENTENCES)
    small = type(embedder)(embedder.model_dir, batch_size=2)
    np.testing.assert_allclose(small.embed(SENTENCES[::-1])[::-1], whole, atol=1e-5)
    assert embedder.embed([]).shape == (0, TEXT_EMB_DIM)


def test_paraphrase_is_closer_than_unrelated(embedder):
    a, para, other = embedder.embed([
        "A man is playing the guitar on stage.",
        "Someone performs a song with a guitar at a concert.",
        "The recipe needs two cups of flour and an egg.",
    ])
    assert a @ para > a @ other + 0.2


def test_shared_instance_and_bad_input(embedder):
    assert get_text_embedder() is embedder
    with pytest.raises(InvalidInputError, match="one string"):
        embedder.embed("not a list")
    with pytest.raises(InvalidInputError, match=r"texts\[1\]"):
        embedder.embed(["ok", None])


def test_model_folder_without_weights_or_tokenizer_is_a_typed_error(tmp_path):
    import shutil

    from engine.store.bert import BertEncoder
    from engine.store.text_embed import TextEmbedder

    shutil.copy(default_model_dir() / "config.json", tmp_path / "config.json")
    with pytest.raises(InvalidInputError, match="tokenizer.json"):
        TextEmbedder(tmp_path).embed(["x"])
    with pytest.raises(InvalidInputError, match="model.safetensors"):
        BertEncoder(tmp_path)
