"""One convention per formula: the numpy adapters in analysis follow the definitions in spectra exactly."""

import numpy as np
import torch

from explorer.analysis import teaching
from explorer.spectra import attention_spectra as spec
from explorer.spectra import projections


def test_eigenvalue_order_is_modulus_then_real_then_imaginary():
    # Exactly representable moduli, so the ties are exact and the tie-breaking is what is tested.
    values = np.array([0.5, -1.0, 1j, -1j, 1.0, -0.5j, 0.5j, -0.5, 0.25])
    expected = [1.0, 1j, -1j, -1.0, 0.5, 0.5j, -0.5j, -0.5, 0.25]
    np.testing.assert_array_equal(teaching.sort_by_modulus(values), expected)
    np.testing.assert_array_equal(
        spec.sort_by_modulus(torch.from_numpy(values.astype(complex))).numpy(), expected
    )


def test_signs_largest_entry_positive_zero_vectors_untouched():
    rows = np.array([[0.1, -0.9, 0.3], [0.5, -0.5, 0.0], [0.0, 0.0, 0.0]])
    fixed = projections.fix_signs(rows)
    np.testing.assert_array_equal(
        fixed, [[-0.1, 0.9, -0.3], [0.5, -0.5, 0.0], [0.0, 0.0, 0.0]]
    )  # ties: first
    v = teaching._unit_sign(np.array([3.0, -4.0]))
    np.testing.assert_array_equal(v, [-0.6, 0.8])


def test_temperature_and_entropy_have_one_definition():
    rng = np.random.default_rng(0)
    A = np.tril(rng.random((6, 6)))
    A /= A.sum(1, keepdims=True)
    np.testing.assert_array_equal(
        teaching.temperature_softmax(A, 0.5), spec.temperature(torch.from_numpy(A), 0.5).numpy()
    )
    sweep = teaching.temperature_sweep(A, causal=True, taus=[1.0])
    assert sweep.entropy[0] == float(spec.row_entropy(torch.from_numpy(A), True)[1])
