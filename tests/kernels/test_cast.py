"""Cast and CastLike: the diff passes through float-to-float casts; integer casts take none."""
import numpy as np
import onnx
import pytest

from caffe_port.gradcheck import check_op
from caffe_port.graph import Graph
from caffe_port.kernels import REGISTRY
from caffe_port.onnx_util import make_model, tensor_value_info
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import forward_pair

SHAPE = (2, 3, 5, 4)  # N != C != H != W
FLOAT, DOUBLE, HALF, INT64 = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE,
                              onnx.TensorProto.FLOAT16, onnx.TensorProto.INT64)


def test_finite_differences():
    x = np.random.default_rng(1).standard_normal(SHAPE)
    assert check_op("Cast", [x], {"to": DOUBLE}, k=2).ok
    assert check_op("CastLike", [x, np.zeros(1)], {}, propagate_down=[True, False], k=2).ok


@pytest.mark.parametrize("to", [FLOAT, HALF, DOUBLE, INT64], ids=["float", "half", "double", "int64"])
def test_forward_matches_onnxruntime(to):
    """Exact: a conversion is one rounding, the same in both."""
    x = (3 * np.random.default_rng(2).standard_normal(SHAPE)).astype(np.float32)
    got, expected = forward_pair("Cast", [x], {"to": to})
    assert got[0].dtype == expected[0].dtype
    np.testing.assert_array_equal(got[0], expected[0])
    like = np.zeros(1, expected[0].dtype)
    got, expected = forward_pair("CastLike", [x, like], opset=19)
    np.testing.assert_array_equal(got[0], expected[0])


def test_diff_keeps_the_walk_dtype():
    """A float32 diff crossing a cast to float16 is not rounded to float16."""
    g = np.full((1, 1, 3), 1 + 2 ** -20, np.float32)
    x = np.zeros((1, 3), np.float32)
    d = backward(REGISTRY["Cast"], [g], [x], [None], layer({"to": HALF}, [x], [x]))[0]
    assert d.dtype == np.float32 and np.array_equal(d, g) and not np.shares_memory(d, g)


def test_integer_cast_takes_no_diff():
    """x → Cast(int64) → Cast(float) → y: y does not depend differentiably on x."""
    nodes = [onnx.helper.make_node("Cast", ["x"], ["i"], to=INT64),
             onnx.helper.make_node("Cast", ["i"], ["y"], to=FLOAT)]
    graph = onnx.helper.make_graph(nodes, "g", [tensor_value_info("x", (1, 3))],
                                   [tensor_value_info("y", (1, 3))])
    g = Graph(make_model(graph, 17))
    assert "y" not in g.differentiable and not any(g.needs_backward(n) for n in g.nodes)
