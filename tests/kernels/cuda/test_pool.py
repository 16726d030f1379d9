"""CUDA MaxPool / GlobalMaxPool / AveragePool / GlobalAveragePool against the CPU kernels: 1-D to
3-D, pads, ceil mode, dilations, SAME pads (negative ones too), ties, K = 3 stacked diffs.

Tolerance: exact. Both sides recompute the same switches and add the same float32 terms in the same
order (increasing output index), so the gather equals the CPU scatter bit for bit.
"""
import numpy as np
import pytest

from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import layer

SHAPE = (2, 3, 7, 6)   # N != C != H != W
K = 3

POOL_CASES = [
    ({"kernel_shape": [3, 3], "strides": [2, 2]}, SHAPE),
    ({"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 2, 1], "ceil_mode": 1}, SHAPE),
    ({"kernel_shape": [2, 3], "strides": [1, 2], "dilations": [2, 1], "pads": [1, 1, 0, 1]}, SHAPE),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, SHAPE),
    ({"kernel_shape": [2, 2], "strides": [3, 3], "auto_pad": "SAME_LOWER"}, (2, 3, 5, 4)),   # negative pad
    ({"kernel_shape": [3], "strides": [2], "pads": [1, 2], "ceil_mode": 1}, (2, 3, 9)),
    ({"kernel_shape": [2, 3, 2], "strides": [1, 2, 2], "pads": [0, 1, 1, 1, 0, 0]}, (2, 3, 4, 5, 6)),
]
IDS = ["3x3s2", "asym-pads-ceil", "dilated", "same-upper", "same-lower-negative", "1d", "3d"]


def run(op_type, attrs, shape, both, seed, ties=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    if ties:
        x = np.round(x)            # many equal values: the first maximum must win on both sides
    y = REGISTRY[op_type].forward([x], layer(attrs, [x], [], opset=12).attrs)[0]
    a = layer(attrs, [x], [y], opset=12)
    g = rng.standard_normal((K,) + y.shape).astype(np.float32)
    cpu, gpu = both(op_type, [g], [x], [y], a)
    np.testing.assert_array_equal(gpu[0], cpu[0])
    assert gpu[0].dtype == cpu[0].dtype


@pytest.mark.parametrize("attrs,shape", POOL_CASES, ids=IDS)
def test_maxpool(attrs, shape, both):
    run("MaxPool", attrs, shape, both, seed=1)


@pytest.mark.parametrize("attrs,shape", POOL_CASES[:2], ids=IDS[:2])
def test_maxpool_ties(attrs, shape, both):
    run("MaxPool", attrs, shape, both, seed=2, ties=True)


@pytest.mark.parametrize("shape", [SHAPE, (2, 3, 4, 5, 2)])
def test_global_maxpool(shape, both):
    run("GlobalMaxPool", {}, shape, both, seed=3, ties=True)


@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("attrs,shape", POOL_CASES, ids=IDS)
def test_avgpool(attrs, shape, include_pad, both):
    run("AveragePool", dict(attrs, count_include_pad=include_pad), shape, both, seed=4)


@pytest.mark.parametrize("shape", [SHAPE, (2, 3, 4)])
def test_global_avgpool(shape, both):
    run("GlobalAveragePool", {}, shape, both, seed=5)


def test_maxpool_indices_only_gives_zeros():
    """Only the Indices top reached: no diff flows back (as on the CPU)."""
    from caffe_port.kernels.cuda import device, maxpool
    x = device.upload(np.ones((2, 3, 4, 5), np.float32))
    got = maxpool.maxpool_backward([None, device.upload(np.ones((2, 2, 3, 3, 4), np.float32))], [x], [None, None],
                                   {"kernel_shape": [2, 2]}, top_shapes=((2, 3, 3, 4), (2, 3, 3, 4)))
    np.testing.assert_array_equal(device.to_host(got[0]), np.zeros((2, 2, 3, 4, 5), np.float32))
