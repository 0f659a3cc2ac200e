"""ResidualVQ: fit/encode/decode quality, determinism, persistence and typed errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.errors import InvalidInputError
from engine.tokenize.rvq import FORMAT_VERSION, ResidualVQ, nearest_codewords


def _mixture(n: int, k: int, dim: int, seed: int, spread: float = 10.0, noise: float = 0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, spread, size=(k, dim))
    labels = rng.integers(0, k, size=n)
    x = centres[labels] + noise * rng.normal(size=(n, dim))
    return x.astype(np.float32), labels


@pytest.fixture(scope="module")
def fitted():
    x, _ = _mixture(4000, 16, 8, seed=0, spread=1.0, noise=1.0)
    rvq = ResidualVQ(num_quantizers=4, codebook_size=32, dim=8, seed=3)
    rvq.fit(x)
    return rvq, x


def test_error_falls_strictly_with_each_stage(fitted):
    rvq, x = fitted
    errs = rvq.stage_errors(x)
    assert len(errs) == 4
    assert all(b < a for a, b in zip([1.0] + errs, errs)), errs
    # decode of a stage prefix agrees with stage_errors
    codes = rvq.encode(x)
    for q in range(1, 5):
        x_hat = rvq.decode(codes[:, :q])
        rel = float(((x.astype(np.float64) - x_hat) ** 2).sum() / (x.astype(np.float64) ** 2).sum())
        assert rel == pytest.approx(errs[q - 1], rel=1e-4)
    assert rvq.fit_report.stage_rel_sq_error == pytest.approx(errs)


def test_stage_one_recovers_mixture_labels():
    x, labels = _mixture(3000, 8, 16, seed=1)
    rvq = ResidualVQ(num_quantizers=2, codebook_size=8, dim=16, seed=0)
    rvq.fit(x)
    codes = rvq.encode(x)[:, 0]
    # purity: each code's majority true label, averaged over all points (permutation-free)
    hits = sum(np.bincount(labels[codes == c]).max() for c in np.unique(codes))
    assert hits / len(labels) >= 0.99
    assert len(np.unique(codes)) == 8


def test_matches_brute_force_nearest_codeword():
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.normal(size=(5000, 12)).astype(np.float32))
    cb = torch.from_numpy(rng.normal(size=(70, 12)).astype(np.float32))
    brute = ((x[:, None, :].double() - cb[None].double()) ** 2).sum(-1).argmin(1)
    got = nearest_codewords(x, cb)
    # the GEMM form may flip exact/near ties only; random data has none at this size
    assert torch.equal(got, brute)


def test_save_load_roundtrip_identical_codes(fitted, tmp_path):
    rvq, x = fitted
    rvq.save(tmp_path / "rvq")
    meta = json.loads((tmp_path / "rvq" / "rvq_config.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION
    loaded = ResidualVQ.load(tmp_path / "rvq")
    assert torch.equal(loaded.codebooks, rvq.codebooks)
    np.testing.assert_array_equal(loaded.encode(x), rvq.encode(x))
    assert loaded.config == rvq.config


def test_load_rejects_unknown_format(fitted, tmp_path):
    rvq, _ = fitted
    rvq.save(tmp_path)
    cfg = tmp_path / "rvq_config.json"
    meta = json.loads(cfg.read_text())
    meta["format_version"] = 999
    cfg.write_text(json.dumps(meta))
    with pytest.raises(InvalidInputError, match="format_version"):
        ResidualVQ.load(tmp_path)


def test_deterministic_with_seed():
    x, _ = _mixture(2000, 8, 8, seed=2, spread=1.0, noise=1.0)
    a = ResidualVQ(3, 16, 8, seed=7)
    b = ResidualVQ(3, 16, 8, seed=7)
    a.fit(x)
    b.fit(x)
    assert torch.equal(a.codebooks, b.codebooks)
    np.testing.assert_array_equal(a.encode(x), b.encode(x))
    np.testing.assert_array_equal(a.encode(x), a.encode(x))  # stateless
    c = ResidualVQ(3, 16, 8, seed=8)
    c.fit(x)
    assert not torch.equal(a.codebooks, c.codebooks)


def test_numpy_and_torch_inputs_agree(fitted):
    rvq, x = fitted
    codes_np = rvq.encode(x)
    codes_t = rvq.encode(torch.from_numpy(x))
    assert isinstance(codes_np, np.ndarray) and codes_np.dtype == np.int64
    assert isinstance(codes_t, torch.Tensor)
    np.testing.assert_array_equal(codes_np, codes_t.numpy())


def test_chunking_does_not_change_codes(fitted, monkeypatch):
    # the residual-form greedy encoder (fit, and the fallback for models too big for the LUT)
    import engine.tokenize.rvq as rvq_mod

    rvq, x = fitted
    t = torch.from_numpy(x)
    whole = rvq._encode_cpu(t, rvq.codebooks)
    monkeypatch.setattr(rvq_mod, "_CPU_CHUNK_ROWS", 7)
    assert torch.equal(rvq._encode_cpu(t, rvq.codebooks), whole)
    assert torch.equal(rvq.encode(t), whole)  # this small model's greedy encode() uses it too


def test_beam_search_not_worse_than_greedy(fitted):
    rvq, x = fitted
    greedy = rvq.decode(rvq.encode(x))
    beam = rvq.decode(rvq.encode(x, beam_size=4))
    assert ((x - beam) ** 2).sum() <= ((x - greedy) ** 2).sum() * (1 + 1e-6)


def test_dead_codes_are_reseeded():
    # 5 distinct points, 8 codewords: some codewords must be re-seeded, and all 5 recovered
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(5, 4)).astype(np.float32) * 10
    x = np.repeat(pts, 40, axis=0)
    rvq = ResidualVQ(1, 8, 4, seed=0, refine_iters=0)
    rvq.fit(x)
    assert rvq.stage_errors(x)[0] < 1e-10


@pytest.mark.parametrize("bad, match", [
    (np.zeros((0, 8), np.float32), "empty"),
    (np.full((3, 8), np.nan, np.float32), "NaN"),
    (np.array([[np.inf] * 8], np.float32), "NaN or inf"),
    (np.zeros((3, 5), np.float32), "dim 5"),
    (np.zeros(8, np.float32), "2-D"),
])
def test_encode_typed_errors(fitted, bad, match):
    rvq, _ = fitted
    with pytest.raises(InvalidInputError, match=match) as info:
        rvq.encode(bad)
    assert info.value.input == "x"


def test_fit_rejects_nan():
    x = np.ones((10, 4), np.float32)
    x[3, 1] = np.nan
    with pytest.raises(InvalidInputError, match="NaN") as info:
        ResidualVQ(1, 2, 4).fit(x)
    assert info.value.input == "x"


def test_decode_rejects_out_of_range_codes(fitted):
    rvq, _ = fitted
    with pytest.raises(InvalidInputError, match=r"\[0, 31\]") as info:
        rvq.decode(np.array([[0, 1, 2, 32]]))
    assert info.value.input == "codes"
    with pytest.raises(InvalidInputError, match="codes"):
        rvq.decode(np.array([[-1, 0, 0, 0]]))
    with pytest.raises(InvalidInputError, match="shape"):
        rvq.decode(np.zeros((2, 5), np.int64))
    with pytest.raises(InvalidInputError, match="integer"):
        rvq.decode(np.zeros((2, 4), np.float32))


def test_not_fitted_is_a_clear_error():
    rvq = ResidualVQ(2, 4, 3)
    with pytest.raises(InvalidInputError, match="not fitted"):
        rvq.encode(np.zeros((2, 3), np.float32))
    with pytest.raises(InvalidInputError, match="not fitted"):
        rvq.decode(np.zeros((2, 2), np.int64))


def test_codebook_dim_mismatch_on_load(fitted, tmp_path):
    from safetensors.torch import save_file

    rvq, _ = fitted
    rvq.save(tmp_path)
    save_file({"codebooks": torch.zeros(4, 32, 9)}, str(tmp_path / "rvq_codebooks.safetensors"))
    with pytest.raises(InvalidInputError, match="shape"):
        ResidualVQ.load(tmp_path)


def test_bad_config_is_typed():
    with pytest.raises(InvalidInputError) as info:
        ResidualVQ(0, 4, 3)
    assert info.value.input == "num_quantizers"


# --------------------------------------------------------------------------------------------
# CPU "beam LUT" encoder (engine/tokenize/kernels/rvq_beam_cpu.py): greedy and beam encodes on CPU


def _random_model(q: int, k: int, dim: int, seed: int, n: int = 1500):
    """Random (unfitted) codebooks and random inputs: no exact score ties."""
    g = torch.Generator().manual_seed(seed)
    scale = 0.6 ** torch.arange(q, dtype=torch.float32)  # residual-like: later stages smaller
    cb = torch.randn(q, k, dim, generator=g) * scale[:, None, None]
    x = torch.randn(n, dim, generator=g)
    return ResidualVQ.from_codebooks(cb), x


# (Q, K, D): K a multiple of 16 (vector selection) or not (plain scan); Q up to 6 covers the
# kernel's one-pass sums of 1-3 table rows and the extra passes beyond; K=2 < beam.
@pytest.mark.parametrize("q, k, dim", [(4, 32, 16), (3, 20, 12), (6, 16, 8), (3, 2, 5), (1, 48, 6)])
@pytest.mark.parametrize("beam", [1, 2, 3, 4])
def test_lut_encode_matches_residual_form(q, k, dim, beam):
    from engine.tokenize.kernels.rvq_beam_cpu import encode_beam_lut
    from engine.tokenize.rvq import encode_beam_torch

    rvq, x = _random_model(q, k, dim, seed=q * 100 + k)
    cb = rvq.codebooks
    got = encode_beam_lut(x, rvq._beam_tables(), beam)
    ref = rvq._encode_cpu(x, cb) if beam == 1 else encode_beam_torch(x, cb, beam)
    assert torch.equal(got, ref)
    assert torch.equal(rvq.encode(x, beam_size=beam), ref)  # whichever path encode() takes


def test_lut_beam_not_worse_than_greedy_held_out(fitted):
    rvq, _ = fitted
    held_out, _ = _mixture(3000, 16, 8, seed=11, spread=1.0, noise=1.0)
    errs = {}
    for beam in (1, 2, 3, 4):
        x_hat = rvq.decode(rvq.encode(held_out, beam_size=beam))
        errs[beam] = float(((held_out.astype(np.float64) - x_hat) ** 2).sum())
    assert errs[2] <= errs[1] * (1 + 1e-6) and errs[4] <= errs[2] * (1 + 1e-6), errs
    assert errs[2] < errs[1], errs  # and it actually helps on this data


def test_lut_encode_deterministic_and_batch_independent(monkeypatch):
    rvq, x = _random_model(2, 128, 16, seed=3, n=1100)  # a shape whose greedy path is the LUT

    def must_not_run(*args, **kwargs):
        raise AssertionError("greedy encode took the residual form")

    monkeypatch.setattr(ResidualVQ, "_encode_cpu", must_not_run)
    for beam in (1, 2):
        first = rvq.encode(x, beam_size=beam)
        assert torch.equal(first, rvq.encode(x, beam_size=beam))
        # a row's code does not depend on the batch around it (tail chunks are padded)
        assert torch.equal(rvq.encode(x[5:6], beam_size=beam), first[5:6])
        assert torch.equal(rvq.encode(x[-3:], beam_size=beam), first[-3:])


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_lut_chunk_boundaries(chunk):
    from engine.tokenize.kernels.rvq_beam_cpu import encode_beam_lut

    rvq, x = _random_model(3, 32, 12, seed=5, n=1001)  # N is not a multiple of any chunk
    tables = rvq._beam_tables()
    for beam in (1, 3):
        whole = encode_beam_lut(x, tables, beam)
        assert torch.equal(encode_beam_lut(x, tables, beam, chunk_rows=chunk), whole)


def test_lut_gemm_fallback_gives_same_codes(monkeypatch):
    import engine.tokenize.kernels.rvq_beam_cpu as lut

    rvq, x = _random_model(4, 32, 16, seed=8)
    want = rvq.encode(x, beam_size=2)
    monkeypatch.setattr(lut, "_ONEDNN", False)  # torch without oneDNN: torch.addmm
    assert torch.equal(rvq.encode(x, beam_size=2), want)


def test_lut_falls_back_above_table_limit(monkeypatch):
    import engine.tokenize.kernels.rvq_beam_cpu as lut
    from engine.tokenize.rvq import encode_beam_torch

    rvq, x = _random_model(3, 32, 12, seed=9)
    monkeypatch.setattr(lut, "MAX_TABLE_BYTES", lut.table_bytes(3, 32) - 1)

    def must_not_run(*args, **kwargs):
        raise AssertionError("LUT encoder used above the table limit")

    monkeypatch.setattr(lut, "encode_beam_lut", must_not_run)
    assert rvq._beam_tables() is None
    cb = rvq.codebooks
    assert torch.equal(rvq.encode(x, beam_size=2), encode_beam_torch(x, cb, 2))
    assert torch.equal(rvq.encode(x), rvq._encode_cpu(x, cb))


def test_lut_tables_follow_the_codebooks():
    rvq, x = _random_model(3, 32, 12, seed=10)
    before = rvq.encode(x, beam_size=2)
    rvq.fit(x.numpy())  # new codebooks: the cached tables must be rebuilt
    fresh = ResidualVQ.from_codebooks(rvq.codebooks)
    assert torch.equal(rvq.encode(x, beam_size=2), fresh.encode(x, beam_size=2))
    assert not torch.equal(rvq.encode(x, beam_size=2), before)


def test_lut_exact_on_data_far_from_the_origin():
    # Inputs offset 100x their spread: a LUT encoder working on x itself rounds at the scale of
    # ||x||, the shifted one at the scale of the residual. Judge against a float64 search.
    from engine.tokenize.kernels.rvq_beam_cpu import encode_beam_lut
    from engine.tokenize.rvq import encode_beam_torch

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(32, 32)) * 2
    x = (100.0 + centres[rng.integers(0, 32, 4000)] + rng.normal(size=(4000, 32))).astype(np.float32)
    rvq = ResidualVQ(4, 64, 32, seed=0, refine_iters=1)
    rvq.fit(x)
    t = torch.from_numpy(x)
    cb64 = rvq.codebooks.double()
    for beam in (1, 2):
        got = encode_beam_lut(t, rvq._beam_tables(), beam)
        assert torch.equal(got, encode_beam_torch(t.double(), cb64, beam))


@pytest.mark.parametrize("beam", [0, -1, 1.5, "2", None])
def test_bad_beam_size_is_typed(fitted, beam):
    rvq, x = fitted
    with pytest.raises(InvalidInputError, match="beam_size") as info:
        rvq.encode(x, beam_size=beam)
    assert info.value.input == "beam_size"


@pytest.mark.parametrize("bad, match", [
    (np.zeros((0, 8), np.float32), "empty"),
    (np.full((3, 8), np.nan, np.float32), "NaN"),
    (np.array([[np.inf] * 8], np.float32), "NaN or inf"),
    (np.array([[3e38] * 8, [1.0] * 8], np.float32), None),  # huge but finite: accepted
    (np.zeros((3, 5), np.float32), "dim 5"),
])
def test_beam_encode_typed_errors(fitted, bad, match):
    rvq, _ = fitted
    if match is None:
        codes = rvq.encode(bad, beam_size=2)
        assert codes.shape == (2, 4)
        rvq.decode(codes)  # valid codes even where float32 scores overflow
        return
    with pytest.raises(InvalidInputError, match=match) as info:
        rvq.encode(bad, beam_size=2)
    assert info.value.input == "x"
