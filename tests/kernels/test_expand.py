"""Expand and Tile: finite differences, ONNX Runtime parity, diffs summed over the copies."""
import numpy as np
import pytest

from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import forward_pair

# (x shape, shape input): the class token (1, 1, D) → (N, 1, D), a smaller shape (bidirectional),
# a prepended axis
EXPAND = [((1, 1, 5), (3, 1, 5)), ((2, 3, 1, 4), (1, 1, 6, 1)), ((3, 1), (2, 3, 4))]
TILE = [((2, 3, 5), (1, 2, 3)), ((2, 1, 4), (3, 4, 1))]


@pytest.mark.parametrize("x_shape,shape", EXPAND)
def test_expand(x_shape, shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape)
    shape = np.array(shape, np.int64)
    assert check_op("Expand", [x, shape], {}, propagate_down=[True, False], k=2).ok
    got, expected = forward_pair("Expand", [x.astype(np.float32), shape])
    np.testing.assert_array_equal(got[0], expected[0])


@pytest.mark.parametrize("x_shape,repeats", TILE)
def test_tile(x_shape, repeats):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(x_shape)
    repeats = np.array(repeats, np.int64)
    assert check_op("Tile", [x, repeats], {}, propagate_down=[True, False], k=2).ok
    got, expected = forward_pair("Tile", [x.astype(np.float32), repeats])
    np.testing.assert_array_equal(got[0], expected[0])


def test_class_token_collects_every_image():
    """(1, 1, D) expanded to N images: its diff is the sum over the N."""
    x = np.zeros((1, 1, 3))
    g = np.arange(24, dtype=np.float64).reshape(2, 4, 1, 3)
    a = layer({}, [x, np.array([4, 1, 3])], [np.zeros((4, 1, 3))])
    d = backward(REGISTRY["Expand"], [g], [None, np.array([4, 1, 3])], [None], a)[0]
    np.testing.assert_array_equal(d, g.sum(axis=1, keepdims=True))
