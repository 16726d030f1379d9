"""CUDA Conv backward against the CPU kernel: transposed convolution (batched matmul + col2im),
depthwise gather, row and image chunks, weight and bias diffs; float32, stacked K = 2.

Tolerance: the two sides sum the same products in different orders (BLAS vs the tiled kernel,
then the same tap order in col2im), so rtol 1e-5 with atol 1e-5 of the largest |entry|.
"""
import numpy as np
import pytest

from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import layer

# (id, x shape, W shape, attrs); every x has N != C != H != W
CASES = [
    ("plain", (2, 3, 6, 5), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
    ("group2", (2, 4, 7, 6), (6, 2, 3, 2), {"group": 2, "pads": [1, 0, 1, 1]}),
    ("depthwise", (2, 3, 7, 6), (3, 1, 3, 3), {"group": 3, "pads": [1, 1, 1, 1]}),
    ("depthwise_x2_stride2", (2, 3, 8, 7), (6, 1, 3, 3), {"group": 3, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("stride3", (2, 3, 10, 8), (4, 3, 3, 2), {"strides": [3, 2], "pads": [1, 1, 0, 1]}),
    ("dilation2", (2, 3, 9, 7), (4, 3, 3, 2), {"dilations": [2, 2], "pads": [2, 1, 2, 1]}),
    ("same_lower", (2, 3, 7, 6), (4, 3, 4, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    ("conv1d", (2, 3, 9), (4, 3, 3), {"strides": [2], "pads": [1, 2]}),
    ("conv3d", (2, 3, 5, 4, 6), (4, 3, 2, 3, 2), {"pads": [1, 0, 1, 0, 1, 1], "strides": [1, 2, 1]}),
]
K = 2


def setup(x_shape, w_shape, attrs, propagate_down, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    y = REGISTRY["Conv"].forward([x, w, b], layer(attrs, [x, w, b], [None]).attrs)[0]
    a = layer(attrs, [x, w, b], [y], propagate_down=propagate_down)
    g = rng.standard_normal((K,) + y.shape).astype(np.float32)
    return [g], [x, w, b], [y], a


def check(cpu, gpu):
    for c, d in zip(cpu, gpu):
        assert (c is None) == (d is None)
        if c is not None:
            assert d.shape == c.shape and d.dtype == c.dtype
            np.testing.assert_allclose(d, c, rtol=1e-5, atol=1e-5 * np.abs(c).max())


@pytest.mark.parametrize("name,x_shape,w_shape,attrs", CASES, ids=[c[0] for c in CASES])
def test_input_diff(name, x_shape, w_shape, attrs, both):
    top_diff, bottoms, tops, a = setup(x_shape, w_shape, attrs, [True, False, False])
    cpu, gpu = both("Conv", top_diff, bottoms, tops, a, device_bottoms=())
    assert gpu[1] is None and gpu[2] is None
    check(cpu, gpu)


@pytest.mark.parametrize("name,x_shape,w_shape,attrs",
                         [c for c in CASES if c[0] in ("plain", "group2", "depthwise_x2_stride2")])
def test_weight_and_bias_diffs(name, x_shape, w_shape, attrs, both):
    top_diff, bottoms, tops, a = setup(x_shape, w_shape, attrs, [True, True, True], seed=1)
    cpu, gpu = both("Conv", top_diff, bottoms, tops, a, device_bottoms=(0,))
    check(cpu, gpu)


@pytest.mark.parametrize("budget", [1, 300])   # one output row at a time; two images at a time
def test_chunks(budget, both, monkeypatch):
    from caffe_port.kernels.cuda import conv
    monkeypatch.setattr(conv, "COLUMN_BUDGET", budget * 4)
    top_diff, bottoms, tops, a = setup((3, 2, 6, 5), (4, 2, 3, 3), {"pads": [1, 1, 1, 1], "strides": [1, 2]},
                                       [True, False, False], seed=2)
    chunks = list(conv._chunks(K * 3, 6, 2 * 9 * 3 * 4))
    assert len(chunks) > 1
    cpu, gpu = both("Conv", top_diff, bottoms, tops, a, device_bottoms=())
    check(cpu, gpu)


def test_weight_as_device_tensor(both):
    """A weight computed in the graph reaches the kernel as a device array, not a constant."""
    top_diff, bottoms, tops, a = setup((2, 3, 6, 5), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}, [True, False, False])
    cpu, gpu = both("Conv", top_diff, bottoms, tops, a, device_bottoms=(0, 1))
    check(cpu, gpu)
