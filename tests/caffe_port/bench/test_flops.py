"""FLOPs counted on hand-checkable layers, and the per-layer profile walking what Net.backward walks.

Tolerance: the profiled walk's input diff equals Net.backward's to rtol 1e-6 (the same kernels in
the same order).
"""
import numpy as np
import pytest
from onnx import TensorProto, helper

from caffe_port import Net
from caffe_port.bench.flops import backward_flops, profile_backward
from caffe_port.errors import ShapeError
from caffe_port.graph import Graph
from caffe_port.models import builders
from caffe_port.onnx_import import load_model
from caffe_port.onnx_util import initializer, make_model


# --- FLOP counting on hand-checkable layers --------------------------------------------------------

def _param(rng, name, shape):
    return initializer(name, rng.standard_normal(shape).astype(np.float32))


def _graph(nodes, inputs, outputs, initializers):
    model = make_model(helper.make_graph(nodes, "t", inputs, outputs, initializer=initializers), 13)
    return Graph(load_model(model))


def test_flops_conv_gemm_by_hand():
    """data (2,3,5,7) → conv 4×3×3×3 pad 1 → relu → flatten (2,140) → fc 6 (transB) = "fc"."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["data", "w", "b"], ["conv"], name="conv", kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
             helper.make_node("Flatten", ["relu"], ["flat"], name="flat", axis=1),
             helper.make_node("Gemm", ["flat", "fw", "fb"], ["fc"], name="fc", transB=1)]
    graph = _graph(nodes, [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 5, 7])],
                   [helper.make_tensor_value_info("fc", TensorProto.FLOAT, ["N", 6])],
                   [_param(rng, "w", (4, 3, 3, 3)), _param(rng, "b", (4,)),
                    _param(rng, "fw", (6, 140)), _param(rng, "fb", (6,))])
    shapes = graph.shapes({"data": (2, 3, 5, 7)})
    rows = backward_flops(graph, shapes, "fc")
    # conv: top 2·4·5·7 = 280 elements, each scattering into 3·3·3 bottoms, 2 FLOPs a MAC
    # fc: dA (2, 140) = dY (2, 6) · W (6, 140): 2·2·6·140
    assert rows == [("fc", "Gemm", 2 * 2 * 6 * 140), ("conv", "Conv", 2 * 280 * 27)]
    assert backward_flops(graph, shapes, "fc", k=5) == [("fc", "Gemm", 5 * 3360), ("conv", "Conv", 5 * 15120)]
    # injected at the conv's top, the fc is not walked
    assert backward_flops(graph, shapes, "relu") == [("conv", "Conv", 15120)]


def test_flops_grouped_strided_conv_and_unreached_branch():
    """data (3,4,9,7) → conv 6 out, group 2, 3×3 stride 2 → "a" (3,6,4,3); a second conv on data
    feeds only "b", which the diff injected at "a" never reaches."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["data", "w"], ["a"], name="grouped", kernel_shape=[3, 3],
                              strides=[2, 2], group=2),
             helper.make_node("Conv", ["data", "w2"], ["b"], name="other", kernel_shape=[1, 1])]
    graph = _graph(nodes, [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 4, 9, 7])],
                   [helper.make_tensor_value_info("a", TensorProto.FLOAT, None),
                    helper.make_tensor_value_info("b", TensorProto.FLOAT, None)],
                   [_param(rng, "w", (6, 2, 3, 3)), _param(rng, "w2", (5, 4, 1, 1))])
    shapes = graph.shapes({"data": (3, 4, 9, 7)})
    assert shapes["a"] == (3, 6, 4, 3)
    # each of the 3·6·4·3 top elements scatters into C/G · 3·3 = 2·9 bottoms
    assert backward_flops(graph, shapes, "a") == [("grouped", "Conv", 2 * 216 * 18)]


def test_flops_matmul_one_and_two_differentiable_operands():
    """x (2,3,4): y = x·W (W 4×5 constant), z = x·xᵀ (both operands carry a diff)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="y"),
             helper.make_node("Transpose", ["x"], ["xt"], name="xt", perm=[0, 2, 1]),
             helper.make_node("MatMul", ["x", "xt"], ["z"], name="z")]
    graph = _graph(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                    helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
                   [_param(rng, "w", (4, 5))])
    shapes = graph.shapes({"x": (2, 3, 4)})
    assert backward_flops(graph, shapes, "y") == [("y", "MatMul", 2 * (2 * 3 * 5) * 4)]
    # z (2,3,3): dA = dZ · B ᵀ and dB = Aᵀ · dZ, 2·18·4 FLOPs each
    assert backward_flops(graph, shapes, "z") == [("z", "MatMul", 2 * 2 * 18 * 4)]


# --- the per-layer profile walks what Net.backward walks ---------------------------------------

def test_profile_walks_the_same_layers_as_net_backward():
    model = builders.lenet(width=0.5, input_size=20, num_classes=7)
    net = Net(model, device="cpu")
    x = np.random.default_rng(0).standard_normal((3, 1, 20, 20)).astype(np.float32)
    net.forward(data=x)
    onehot = np.zeros((2, 3, 7), np.float32)
    onehot[0, :, 2] = onehot[1, :, 5] = 1
    rows, diff = profile_backward(net, "fc8", onehot, "data")
    expected = net.backward(fc8=onehot)["data"]
    np.testing.assert_allclose(diff, expected, rtol=1e-6, atol=0)
    walked = [name for name, _, _ in rows]
    assert walked == ["fc8", "relu7", "fc7", "pool2_flat", "pool2", "relu2", "conv2", "pool1", "relu1",
                      "conv1"]
    assert all(seconds >= 0 for _, _, seconds in rows)


def test_flops_refuse_an_unknown_shape():
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="y")]
    graph = _graph(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [_param(rng, "w", (4, 5))])
    with pytest.raises(ShapeError, match="layer 'y'.*blob 'x' is unknown"):
        backward_flops(graph, {"y": (2, 3, 5)}, "y")          # x, the input, left out
