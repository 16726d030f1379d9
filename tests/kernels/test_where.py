"""Where: finite differences, ONNX Runtime parity, the condition takes no diff."""
import numpy as np

from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import forward_pair


def test_finite_differences_with_broadcasting():
    rng = np.random.default_rng(1)
    condition = rng.random((3, 1, 4)) < 0.5
    x, z = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((5, 1))
    result = check_op("Where", [condition, x, z], {}, propagate_down=[False, True, True], k=2)
    assert result.ok, result


def test_forward_matches_onnxruntime():
    rng = np.random.default_rng(2)
    condition = rng.random((2, 3, 5, 4)) < 0.3
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    z = np.float32(-1e4) * np.ones((1, 1, 1, 4), np.float32)          # a masked_fill
    got, expected = forward_pair("Where", [condition, x, z], constant={0, 2})
    np.testing.assert_array_equal(got[0], expected[0])


def test_diffs_follow_the_condition():
    condition = np.array([[True, False, True]])
    g = np.array([[[1.0, 2.0, 3.0]]])
    a = layer({}, [condition, np.zeros((1, 3)), np.zeros((1, 3))], [np.zeros((1, 3))],
              propagate_down=[False, True, True])
    d = backward(REGISTRY["Where"], [g], [condition, None, None], [None], a)
    assert d[0] is None
    np.testing.assert_array_equal(d[1], [[[1.0, 0.0, 3.0]]])
    np.testing.assert_array_equal(d[2], [[[0.0, 2.0, 0.0]]])
