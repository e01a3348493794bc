"""Quantization what-ifs against their definitions: the round-to-nearest error bound, exact round trips of
matrices already on a grid, byte counts by hand, and the low-rank combinations at full rank."""

import numpy as np
import pytest
import torch

from explorer.spectra.quantization import (
    INT4_SCHEMES,
    INT8,
    QuantScheme,
    energy_rank_of,
    fake_quantize,
    quantize,
    quantize_factors,
    spectral_split,
)

EPS64 = np.finfo(np.float64).eps
SCHEMES = (INT8, QuantScheme(8, 32), *INT4_SCHEMES, QuantScheme(3, 16, False), QuantScheme(2, 8, False))


def _matrix(seed: int, shape=(12, 100), outliers: bool = True) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape) * 0.05
    if outliers:  # a few large weights, as real layers have: they set their groups' scales
        idx = rng.integers(0, w.size, size=5)
        w.flat[idx] = rng.choice([-1.0, 1.0], size=5) * 2.0
    return torch.from_numpy(w).to(torch.float32)


def _per_entry(q, values: torch.Tensor) -> np.ndarray:
    """A per-group tensor (out, groups, 1) spread to every entry of the (out, in) matrix."""
    m, n = q.shape
    return values.expand_as(q.codes.to(torch.float64)).reshape(m, -1)[:, :n].numpy()


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
@pytest.mark.parametrize("seed", [0, 1])
def test_error_is_at_most_half_a_step(scheme, seed):
    w = _matrix(seed)
    q = quantize(w, scheme)
    error = np.abs(w.double().numpy() - q.dequantize(torch.float64).numpy())
    half_step = _per_entry(q, q.scale) / 2
    # Round-to-nearest on a grid that covers the group: |error| <= scale/2. The grid arithmetic is float64
    # (a few roundings of values of size max|w|): allow 8 eps64 max|w| on top, far below any scale here.
    slack = 8 * EPS64 * float(w.abs().max())
    assert np.all(error <= half_step + slack), float((error - half_step).max())
    # The codes are in range, and the bound is attained within a factor 2 somewhere (the grid is not idle).
    codes = q.codes.numpy()
    if scheme.symmetric:
        assert np.abs(codes).max() <= 2 ** (scheme.bits - 1) - 1
    else:
        assert codes.min() >= 0 and codes.max() <= 2**scheme.bits - 1
    assert error.max() > 0.25 * half_step.max() or scheme.bits == 8


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_stored_scales_and_offsets_are_fp16_values(scheme):
    q = quantize(_matrix(3), scheme)
    for stored in (q.scale, q.offset):
        np.testing.assert_array_equal(stored.to(torch.float16).to(torch.float64).numpy(), stored.numpy())


@pytest.mark.parametrize("group", [32, 64, 128])
@pytest.mark.parametrize("symmetric", [True, False])
def test_a_matrix_on_a_4_bit_grid_round_trips_exactly(group, symmetric):
    """Codes, fp16 scales and fp16 offsets (dyadic numbers, so W = code * scale + offset is exact in float32),
    every group using both ends of its range: quantizing with that grid gives back W and the codes exactly."""
    rng = np.random.default_rng(group)
    m, n = 6, 2 * group
    groups = n // group
    if symmetric:
        codes = rng.integers(-7, 8, size=(m, groups, group))
        codes[..., 0], codes[..., 1] = 7, -7  # absmax = 7 * scale
        offset = np.zeros((m, groups, 1))
    else:
        codes = rng.integers(0, 16, size=(m, groups, group))
        codes[..., 0], codes[..., 1] = 0, 15  # min and max of the group on the grid's ends
        offset = rng.integers(-64, 64, size=(m, groups, 1)) / 256
    scale = rng.integers(1, 32, size=(m, groups, 1)) / 1024
    w = torch.from_numpy((codes * scale + offset).reshape(m, n)).to(torch.float32)
    assert np.array_equal(w.double().numpy(), (codes * scale + offset).reshape(m, n))  # exact in float32

    q = quantize(w, QuantScheme(4, group, symmetric))
    np.testing.assert_array_equal(q.dequantize(torch.float32).numpy(), w.numpy())
    np.testing.assert_array_equal(q.codes.numpy(), codes)
    np.testing.assert_array_equal(q.scale.numpy(), scale)


def test_byte_counts_by_hand():
    # 4 x 64, int4 in groups of 32: 4*64 codes of half a byte = 128 B; 4 rows x 2 groups of one fp16 scale = 16 B.
    assert QuantScheme(4, 32).nbytes((4, 64)) == 128 + 16
    # ... with an offset per group: another 16 B.
    assert QuantScheme(4, 32, symmetric=False).nbytes((4, 64)) == 128 + 16 + 16
    # int8 per output row: 256 one-byte codes + 4 scales of 2 B.
    assert INT8.nbytes((4, 64)) == 256 + 8
    # 3 x 40 in groups of 32 (the second group is short but still stores its scale and offset): 60 B of codes,
    # 3 rows x 2 groups x 4 B.
    assert QuantScheme(4, 32, symmetric=False).nbytes((3, 40)) == 60 + 24
    # An odd number of 4-bit codes rounds up to whole bytes: 3 x 3 = 9 codes -> 5 B; one group per row.
    assert QuantScheme(4).nbytes((3, 3)) == 5 + 6
    q = quantize(_matrix(0, (3, 40)), QuantScheme(4, 32, symmetric=False))
    assert q.nbytes == 84


def test_scheme_names_and_validation():
    assert INT8.name == "int8"
    assert [s.name for s in INT4_SCHEMES] == [
        "int4-g32",
        "int4-g32-asym",
        "int4-g64",
        "int4-g64-asym",
        "int4-g128",
        "int4-g128-asym",
    ]
    for bad in (dict(bits=5), dict(bits=4, group_size=0), dict(bits=2, symmetric=True)):
        with pytest.raises(ValueError):
            QuantScheme(**bad)


def test_zero_matrix_and_zero_groups_quantize_to_zero():
    w = torch.zeros(3, 64)
    w[0, :32] = torch.linspace(-1, 1, 32)
    for scheme in SCHEMES:
        out = fake_quantize(w, scheme)
        assert torch.isfinite(out).all()
        assert torch.equal(out[1:], torch.zeros(2, 64))  # all-zero rows stay exactly zero


def test_factor_quantization_is_exact_for_factors_on_the_grid():
    """U and B already on int8 grids (per row): quantize_factors changes nothing, the product is U B."""
    rng = np.random.default_rng(5)
    U = rng.integers(-127, 128, size=(10, 4)) / 512
    U[:, 0] = 127 / 512  # every row's absmax on the grid's end
    B = rng.integers(-127, 128, size=(4, 30)) / 1024
    B[:, 0] = -127 / 1024
    fq = quantize_factors(torch.from_numpy(U), torch.from_numpy(B), INT8)
    np.testing.assert_array_equal(fq.dequantize(torch.float64).numpy(), U @ B)  # exact: dyadic, no rounding
    assert fq.nbytes == INT8.nbytes((10, 4)) + INT8.nbytes((4, 30))


@pytest.mark.parametrize("scheme", [INT4_SCHEMES[0], INT4_SCHEMES[1], INT8], ids=lambda s: s.name)
def test_spectral_split_at_full_rank_reconstructs_w(scheme):
    w = _matrix(7, (20, 48))
    split = spectral_split(w, 20, scheme)
    # Full rank: W_r = W up to the SVD's backward error (c n eps ||W||_2), and the residual, that small, comes
    # back within half its own step: far below float32's resolution of W.
    norm = float(torch.linalg.matrix_norm(w.double(), ord=2))
    tolerance = 10 * 48 * EPS64 * norm
    np.testing.assert_allclose(
        split.dequantize(torch.float64).numpy(), w.double().numpy(), rtol=0, atol=tolerance
    )
    assert split.nbytes == 2 * 20 * (20 + 48) + scheme.nbytes((20, 48))


def test_spectral_split_at_rank_zero_is_plain_quantization():
    w = _matrix(8, (16, 64))
    split = spectral_split(w, 0, INT4_SCHEMES[0])
    np.testing.assert_array_equal(
        split.dequantize(torch.float64).numpy(),
        quantize(w, INT4_SCHEMES[0]).dequantize(torch.float64).numpy(),
    )


def test_spectral_split_error_bound_and_gain():
    """The error is the residual's quantization error (≤ half its step); keeping the top directions, which carry
    the outliers' energy, makes the residual's steps (and the error) smaller than quantizing W itself."""
    w = _matrix(9, (32, 128))
    scheme = INT4_SCHEMES[0]
    split = spectral_split(w, 4, scheme)
    error = np.abs(split.dequantize(torch.float64).numpy() - w.double().numpy())
    half_step = _per_entry(split.residual, split.residual.scale) / 2
    norm = float(torch.linalg.matrix_norm(w.double(), ord=2))
    assert np.all(error <= half_step + 10 * 128 * EPS64 * norm)
    plain = np.abs(fake_quantize(w.double(), scheme).numpy() - w.double().numpy())
    assert np.linalg.norm(error) < np.linalg.norm(plain)


def test_energy_rank_matches_a_cumulative_sum():
    sigma = torch.tensor([4.0, 2.0, 1.0, 1.0, 0.5], dtype=torch.float64)
    power = sigma.numpy() ** 2
    shares = np.cumsum(power) / power.sum()  # 16/22.25, 20/22.25, ...
    for energy in (0.5, 0.72, 0.9, 0.95, 0.99, 1.0):
        expected = int(np.argmax(shares >= energy - 1e-15)) + 1  # shares are exact quotients of small sums
        assert energy_rank_of(sigma, energy) == expected, energy
    assert energy_rank_of(torch.zeros(3), 0.9) == 0
    assert shares[0] == 16 / 22.25  # power.sum() adds small integers and a quarter: exact, so is the quotient


@pytest.mark.parametrize("scheme", [s for s in SCHEMES if not s.symmetric], ids=lambda s: s.name)
def test_bound_holds_for_narrow_groups_far_from_zero(scheme):
    """Values in [1, 1.001]: the fp16 offset can sit an fp16 step (~1e-3) away from the group's minimum, ten
    times the grid's step. Rounding the offset down (and the scale up) keeps every value inside the grid."""
    rng = np.random.default_rng(11)
    w = torch.from_numpy(1.0 + 1e-3 * rng.random((4, 64)) + 3e-4).to(torch.float32)
    q = quantize(w, scheme)
    error = np.abs(w.double().numpy() - q.dequantize(torch.float64).numpy())
    assert np.all(error <= _per_entry(q, q.scale) / 2 + 8 * EPS64 * 2.0)


def _numpy_round_to_nearest(w: np.ndarray, scheme: QuantScheme) -> tuple[np.ndarray, np.ndarray]:
    """The module docstring's definition, group by group in numpy float64: (codes, dequantized), both (out, in)."""
    m, n = w.shape
    g = n if scheme.group_size is None else scheme.group_size
    codes, deq = np.zeros((m, n)), np.zeros((m, n))
    for start in range(0, n, g):
        block = w[:, start : start + g]  # the last group may be shorter: only its real entries count
        if scheme.symmetric:
            qmax = 2 ** (scheme.bits - 1) - 1
            scale = (np.abs(block).max(1, keepdims=True) / qmax).astype(np.float16).astype(np.float64)
            low, lo_code, hi_code = np.zeros_like(scale), -qmax, qmax
        else:
            low = block.min(1, keepdims=True).astype(np.float16).astype(np.float64)
            too_high = low > block.min(1, keepdims=True)  # the stored offset is rounded down
            below = np.nextafter(low[too_high].astype(np.float16), np.float16(-np.inf))
            low[too_high] = below.astype(np.float64)
            scale = ((block.max(1, keepdims=True) - low) / (2**scheme.bits - 1)).astype(np.float16)
            scale = scale.astype(np.float64)
            lo_code, hi_code = 0, 2**scheme.bits - 1
        safe = np.where(scale > 0, scale, 1.0)
        c = np.clip(np.rint((block - low) / safe), lo_code, hi_code)
        codes[:, start : start + g], deq[:, start : start + g] = c, c * scale + low
    return codes, deq


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
@pytest.mark.parametrize("shape", [(12, 100), (8, 64)], ids=["padded", "whole-groups"])
def test_codes_and_values_equal_a_numpy_reference(scheme, shape):
    """Bit for bit (compared as integers, so even the sign of a zero counts): the same float64 operations in
    the same order, so there is no rounding to allow for; 100 columns leave a short last group for every group
    size here, 64 none for 8, 16, 32 and 64."""
    w = _matrix(7, shape)
    codes, deq = _numpy_round_to_nearest(w.double().numpy(), scheme)
    q = quantize(w, scheme)
    m, n = shape
    np.testing.assert_array_equal(q.codes.to(torch.float64).reshape(m, -1)[:, :n].numpy(), codes)
    np.testing.assert_array_equal(q.dequantize(torch.float64).numpy().view(np.int64), deq.view(np.int64))
    expected32 = deq.astype(np.float32).view(np.int32)
    np.testing.assert_array_equal(fake_quantize(w, scheme).numpy().view(np.int32), expected32)
    # A non-contiguous float64 input (a transposed view) gives the same grid and is not written to either.
    wt = w.double().t().contiguous().t()
    np.testing.assert_array_equal(quantize(wt, scheme).dequantize(torch.float64).numpy().view(np.int64),
                                  deq.view(np.int64))  # fmt: skip
    np.testing.assert_array_equal(wt.numpy(), w.double().numpy())
    # The padding past ``in`` is stored as code 0, and the input is never written to (float64 input included:
    # the grid is computed in place on a copy).
    assert not q.codes.reshape(m, -1)[:, n:].any()
    w64 = w.double()
    np.testing.assert_array_equal(quantize(w64, scheme).dequantize(torch.float64).numpy(), deq)
    np.testing.assert_array_equal(w64.numpy(), _matrix(7, shape).double().numpy())
