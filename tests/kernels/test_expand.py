"""Expand and Tile: finite differences, ONNX Runtime parity, diffs summed over the copies."""
import numpy as np
import pytest

from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import forward_pair

# (op, x shape, shape or repeats): the class token (1, 1, D) → (N, 1, D), a smaller shape
# (bidirectional), a prepended axis; tiles along every axis
CASES = [("Expand", (1, 1, 5), (3, 1, 5)), ("Expand", (2, 3, 1, 4), (1, 1, 6, 1)), ("Expand", (3, 1), (2, 3, 4)),
         ("Tile", (2, 3, 5), (1, 2, 3)), ("Tile", (2, 1, 4), (3, 4, 1))]


@pytest.mark.parametrize("op_type,x_shape,second", CASES)
def test_finite_differences_and_onnxruntime(op_type, x_shape, second):
    """Forward exact: both only copy."""
    x = np.random.default_rng(1).standard_normal(x_shape)
    second = np.array(second, np.int64)
    assert check_op(op_type, [x, second], {}, propagate_down=[True, False], k=2).ok
    got, expected = forward_pair(op_type, [x.astype(np.float32), second])
    np.testing.assert_array_equal(got[0], expected[0])


def test_class_token_collects_every_image():
    """(1, 1, D) expanded to N images: its diff is the sum over the N."""
    x = np.zeros((1, 1, 3))
    g = np.arange(24, dtype=np.float64).reshape(2, 4, 1, 3)
    a = layer({}, [x, np.array([4, 1, 3])], [np.zeros((4, 1, 3))])
    d = backward(REGISTRY["Expand"], [g], [None, np.array([4, 1, 3])], [None], a)[0]
    np.testing.assert_array_equal(d, g.sum(axis=1, keepdims=True))
