"""Input layouts found from the graph, axis roles of feature maps, and every method giving the same
maps on an NHWC net (built the way tf2onnx builds Keras CNNs) as on its NCHW twin."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from caffe_port import Net
from caffe_port.errors import InputError
from caffe_port.gradcheck import gradcheck
from caffe_port.layout import axis_roles, input_layout
from caffe_port.methods import (CAM, ClassModel, Deconvnet, GradCAM, GuidedBackprop, GuidedGradCAM,
                                IntegratedGradients, Saliency, SmoothGrad)
from caffe_port.onnx_util import initializer, make_model
from helpers.exporter_graphs import keras_like, pp_lcnet_like

IMAGES = np.random.default_rng(0).uniform(0, 255, (2, 3, 36, 44)).astype(np.float32)


@pytest.fixture(scope="module")
def nets():
    nhwc, nchw = keras_like()
    return Net(nhwc, device="cpu"), Net(nchw, device="cpu")


def graph_of(nodes, shape, inits=(), outputs=("y",), opset=17):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                          initializer=list(inits))
    return Net(make_model(g, opset), device="cpu").graph


def test_tf2onnx_input_is_nhwc_from_the_graph(nets):
    nhwc, nchw = nets
    found = input_layout(nhwc.graph, "input_1")
    assert found.layout == "NHWC" and "Conv 'conv1'" in found.reason and "transposed" in found.reason
    assert input_layout(nchw.graph, "input_1").layout == "NCHW"
    assert nhwc.input_layout == "NHWC" and nchw.input_layout == "NCHW"


def test_a_permute_after_casts_and_arithmetic_is_followed():
    """The dynamo exporter's NHWC input: Cast, Div, Sub, then the permute, then the Conv."""
    w = initializer("w", np.ones((2, 3, 3, 3), np.float32))
    nodes = [helper.make_node("Cast", ["x"], ["c"], to=TensorProto.FLOAT),
             helper.make_node("Div", ["c", "k"], ["d"]),
             helper.make_node("Transpose", ["d"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "w"], ["y"])]
    g = graph_of(nodes, ("s0", 9, 9, 3), [w, initializer("k", np.array(255.0, np.float32))])
    assert input_layout(g, "x").layout == "NHWC"


@pytest.mark.parametrize("shape,expected", [((1, 8, 8, 3), "NHWC"), ((1, 3, 8, 8), "NCHW"),
                                            (("N", None, None, 1), "NHWC"), ((1, 2, 2, 3), "NCHW")])
def test_without_a_conv_the_shape_decides(shape, expected):
    g = graph_of([helper.make_node("Relu", ["x"], ["y"])], shape)
    assert input_layout(g, "x").layout == expected


def test_undecidable_layout_asks_for_the_option():
    g = graph_of([helper.make_node("Relu", ["x"], ["y"])], ("N", "H", "W", "C"))
    with pytest.raises(InputError, match="pass --layout NCHW or --layout NHWC"):
        input_layout(g, "x")
    assert input_layout(g, "x", "nhwc").layout == "NHWC"
    with pytest.raises(InputError, match="layout must be one of NCHW, NHWC"):
        input_layout(g, "x", "CHWN")


def test_axis_roles_through_a_convnext_block():
    """Conv → permute to NHWC → LayerNorm → Linear (MatMul) → Gelu → permute back → pool."""
    inits = [initializer("w", np.ones((4, 3, 1, 1), np.float32)), initializer("s", np.ones(4, np.float32)),
             initializer("m", np.ones((4, 4), np.float32))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("Transpose", ["c"], ["nhwc"], perm=[0, 2, 3, 1]),
             helper.make_node("LayerNormalization", ["nhwc", "s"], ["ln"]),
             helper.make_node("MatMul", ["ln", "m"], ["fc"]),
             helper.make_node("Gelu", ["fc"], ["act"]),
             helper.make_node("Transpose", ["act"], ["back"], perm=[0, 3, 1, 2]),
             helper.make_node("GlobalAveragePool", ["back"], ["y"])]
    g = graph_of(nodes, (1, 3, 6, 5), inits, opset=20)
    roles = axis_roles(g, {"x": "NCHW"})
    assert roles["c"] == "NCHW" and roles["nhwc"] == roles["ln"] == roles["fc"] == roles["act"] == "NHWC"
    assert roles["back"] == "NCHW"


@pytest.mark.parametrize("method", [Saliency, Deconvnet, GuidedBackprop, GradCAM, GuidedGradCAM, CAM],
                         ids=lambda m: m.__name__)
def test_every_method_maps_nhwc_as_its_nchw_twin(nets, method):
    """Tolerance: 1e-6 of the maps' scale (the same float32 sums, except for the transposes)."""
    nhwc, nchw = nets
    got, expected = method(nhwc).attribute(IMAGES, top_k=2), method(nchw).attribute(IMAGES, top_k=2)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


def test_wrappers_and_class_models_on_nhwc(nets):
    nhwc, nchw = nets
    for make in (lambda n: SmoothGrad(Saliency(n), samples=3), lambda n: IntegratedGradients(n, steps=4)):
        np.testing.assert_allclose(make(nhwc).attribute(IMAGES, target=1), make(nchw).attribute(IMAGES, target=1),
                                   rtol=0, atol=1e-9)
    a = ClassModel(nhwc).generate(2, iterations=3, progress=False)
    b = ClassModel(nchw).generate(2, iterations=3, progress=False)
    assert a.data.shape == (1, 3, 36, 44)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-7)


def test_grad_cam_default_blob_is_the_last_spatial_one(nets):
    nhwc, nchw = nets
    assert GradCAM(nhwc).layer == "conv2_relu_nhwc" and CAM(nhwc).layer == "conv2_relu_nhwc"
    assert GradCAM(nchw).layer == "conv2_relu"


def test_pp_lcnet_like_graph_loads_and_checks():
    """paddle2onnx's PP-LCNet ops (HardSwish, HardSigmoid, MatMul + Add) at opset 15: every layer
    matches float64 finite differences (gradcheck's own tolerance, 1e-6)."""
    model = pp_lcnet_like()
    net = Net(model, device="cpu")
    assert net.score_blob == "fc.add" and net.input_layout == "NCHW"
    report = gradcheck(model)
    assert report.ok and {"HardSwish", "HardSigmoid"} <= {layer.op_type for layer in report.layers}
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    assert Saliency(net).attribute(x).shape == (1, 32, 32)
