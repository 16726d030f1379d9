"""Caffe's fillers (``models/caffe_fillers.py``) against filler.hpp's definitions: exact values
where the filler is deterministic (constant, bilinear, positive_unitball's row sums), and for the
random ones bounds that hold for every draw plus moments within 5 standard errors on 40 000
draws (seeded, so each check is one fixed outcome)."""
import math

import numpy as np
import pytest

from caffe_port.errors import ModelError
from caffe_port.models import caffe_io
from caffe_port.models.caffe_fillers import constant_filler, fill

SHAPE = (50, 20, 8, 5)          # a Convolution weight: fan_in 20·8·5 = 800, fan_out 50·8·5 = 2000
DRAWS = int(np.prod(SHAPE))


def filler(text):
    return caffe_io.parse_prototxt(text, "<filler>", "FillerParameter")


def moments_close(values, mean, std):
    standard_error = std / math.sqrt(values.size)
    assert abs(values.mean() - mean) < 5 * standard_error
    assert abs(values.std() - std) < 5 * std / math.sqrt(2 * values.size)


def test_constant():
    values = fill(constant_filler(0.25), (3, 2), np.random.default_rng(0))
    assert values.dtype == np.float32 and (values == 0.25).all()


def test_uniform_and_gaussian():
    rng = np.random.default_rng(1)
    uniform = fill(filler("type: 'uniform' min: -2 max: 3"), SHAPE, rng)
    assert uniform.min() >= -2 and uniform.max() <= 3
    moments_close(uniform, 0.5, 5 / math.sqrt(12))
    gaussian = fill(filler("type: 'gaussian' mean: 1 std: 0.5"), SHAPE, rng)
    moments_close(gaussian, 1.0, 0.5)


def test_sparse_gaussian_keeps_sparse_over_num_outputs():
    values = fill(filler("type: 'gaussian' std: 1 sparse: 10"), SHAPE, np.random.default_rng(2))
    kept = np.count_nonzero(values) / DRAWS           # probability 10 / 50 per value
    assert abs(kept - 0.2) < 5 * math.sqrt(0.2 * 0.8 / DRAWS)


def test_positive_unitball_rows_sum_to_one():
    values = fill(filler("type: 'positive_unitball'"), SHAPE, np.random.default_rng(3))
    assert (values >= 0).all()
    np.testing.assert_allclose(values.reshape(50, -1).sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("norm,n", [("FAN_IN", 800), ("FAN_OUT", 2000), ("AVERAGE", 1400)])
def test_xavier_and_msra_scale_by_caffes_fans(norm, n):
    rng = np.random.default_rng(4)
    xavier = fill(filler(f"type: 'xavier' variance_norm: {norm}"), SHAPE, rng)
    scale = math.sqrt(3 / n)
    assert np.abs(xavier).max() <= scale * (1 + 1e-6)
    moments_close(xavier, 0.0, scale / math.sqrt(3))
    msra = fill(filler(f"type: 'msra' variance_norm: {norm}"), SHAPE, rng)
    moments_close(msra, 0.0, math.sqrt(2 / n))


def test_inner_product_fans_are_caffes_too():
    # InnerProduct weights (num_output, K): fan_in K = 600, fan_out num_output = 70
    values = fill(filler("type: 'xavier'"), (70, 600), np.random.default_rng(5))
    assert np.abs(values).max() <= math.sqrt(3 / 600) * (1 + 1e-6)
    assert np.abs(values).max() > 0.99 * math.sqrt(3 / 600)


def test_bilinear_is_the_upsampling_kernel():
    values = fill(filler("type: 'bilinear'"), (3, 1, 4, 4), np.random.default_rng(6))
    ramp = np.array([0.25, 0.75, 0.75, 0.25])    # f = 2, c = 3/4: 1 − |x/2 − 3/4|
    for k in range(3):
        np.testing.assert_allclose(values[k, 0], np.outer(ramp, ramp), rtol=1e-7)
    odd = fill(filler("type: 'bilinear'"), (1, 1, 3, 3), np.random.default_rng(6))
    np.testing.assert_allclose(odd[0, 0, 1], [0.5, 1.0, 0.5], rtol=1e-7)   # f = 2, c = 1/2


def test_a_seed_repeats_the_draws():
    gaussian = filler("type: 'gaussian' std: 2")
    first = fill(gaussian, (4, 5), np.random.default_rng(7))
    np.testing.assert_array_equal(first, fill(gaussian, (4, 5), np.random.default_rng(7)))
    assert not np.array_equal(first, fill(gaussian, (4, 5), np.random.default_rng(8)))


@pytest.mark.parametrize("text,shape,message", [
    ("type: 'gauss'", (2, 2), r"layer 'x': unknown filler type 'gauss'"),
    ("type: 'xavier' sparse: 3", (2, 2), r"sparsity is supported by the gaussian filler only"),
    ("type: 'bilinear'", (2, 2), r"needs a 4-axis blob"),
    ("type: 'bilinear'", (1, 1, 3, 4), r"needs a square kernel, got 3×4"),
])
def test_caffes_checks(text, shape, message):
    with pytest.raises(ModelError, match=message):
        fill(filler(text), shape, np.random.default_rng(0), "layer 'x'")
