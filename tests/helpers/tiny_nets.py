"""Tiny networks for the method and command-line tests, built from literal weights so that maps can
be derived by hand. Each builder returns a caffe_port.Net."""
import numpy as np
from onnx import helper

from caffe_port import Net
from caffe_port.onnx_util import initializer, make_model, tensor_value_info


def model(nodes, inits, input_shape, outputs, opset=13):
    """The ONNX model of ``nodes`` on one input "data" of ``input_shape``, ``inits`` its weights."""
    graph = helper.make_graph(nodes, "tiny", [tensor_value_info("data", input_shape)],
                              [helper.make_empty_tensor_value_info(o) for o in outputs],
                              initializer=[initializer(k, np.asarray(v, np.float32)) for k, v in inits.items()])
    return make_model(graph, opset)


def net(nodes, inits, input_shape, outputs, opset=13):
    """A Net of ``nodes`` on one input "data" of ``input_shape``, ``inits`` its weights."""
    return Net(model(nodes, inits, input_shape, outputs, opset), device="cpu")


def relu_linear(weights, bias, shape, softmax=True, relu=True):
    """data (N, *shape) → [Relu] → Flatten → Gemm(weights (classes, C·H·W), bias) = "score" →
    [Softmax "prob"]."""
    nodes = []
    bottom = "data"
    if relu:
        nodes.append(helper.make_node("Relu", ["data"], ["relu"], name="relu"))
        bottom = "relu"
    nodes += [helper.make_node("Flatten", [bottom], ["flat"], name="flat"),
              helper.make_node("Gemm", ["flat", "w", "b"], ["score"], name="score", transB=1)]
    outputs = ["score"]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["score"], ["prob"], name="prob", axis=1))
        outputs = ["prob"]
    return net(nodes, {"w": weights, "b": bias}, ("N",) + tuple(shape), outputs)


def gap_fc(conv_w, conv_b, fc_w, fc_b, shape, pool="GlobalAveragePool"):
    """data (N, *shape) → Conv 1×1 (conv_w) → Relu "features" → global average pool → Flatten →
    Gemm (fc_w) = "score" → Softmax "prob": the network CAM is made for."""
    nodes = [helper.make_node("Conv", ["data", "cw", "cb"], ["conv"], name="conv"),
             helper.make_node("Relu", ["conv"], ["features"], name="features")]
    if pool == "GlobalAveragePool":
        nodes.append(helper.make_node("GlobalAveragePool", ["features"], ["gap"], name="gap"))
    else:   # an AveragePool whose window is the whole map (GoogLeNet's pool5)
        nodes.append(helper.make_node("AveragePool", ["features"], ["gap"], name="gap",
                                      kernel_shape=list(shape[1:])))
    nodes += [helper.make_node("Flatten", ["gap"], ["flat"], name="flat"),
              helper.make_node("Dropout", ["flat"], ["drop"], name="drop"),
              helper.make_node("Gemm", ["drop", "fw", "fb"], ["score"], name="score", transB=1),
              helper.make_node("Softmax", ["score"], ["prob"], name="prob", axis=1)]
    return net(nodes, {"cw": conv_w, "cb": conv_b, "fw": fc_w, "fb": fc_b}, ("N",) + tuple(shape), ["prob"])


def conv_pool_fc(classes=5, seed=0, fc_w=None, channels=4, conv_bias=0.1):
    """data (N, 3, 8, 7) → Conv 3×3 pad 1 (channels) → Relu → MaxPool 2×2/2 → (channels, 4, 3) →
    Flatten → Gemm → "fc8" → Softmax "prob"; random weights from ``seed``."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((channels, 3, 3, 3)) * 0.4
    b = np.full(channels, conv_bias)
    if fc_w is None:
        fc_w = rng.standard_normal((classes, channels * 4 * 3)) * 0.3
    fc_b = rng.standard_normal(len(fc_w)) * 0.1
    nodes = [helper.make_node("Conv", ["data", "w", "b"], ["conv1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
             helper.make_node("MaxPool", ["relu1"], ["pool1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["pool1"], ["flat"], name="flat"),
             helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["fc8"], name="fc8", transB=1),
             helper.make_node("Softmax", ["fc8"], ["prob"], name="prob", axis=1)]
    return net(nodes, {"w": w, "b": b, "fc_w": fc_w, "fc_b": fc_b}, ("N", 3, 8, 7), ["prob"])


def conv_gap_fc(classes=4, seed=0, channels=5, shape=(3, 9, 8)):
    """data → Conv 3×3 pad 1 → Relu → Conv 3×3 stride 2 "conv2" → Relu "features" →
    GlobalAveragePool → Flatten → Gemm "score" → Softmax; random weights (CAM-ready, spatial)."""
    return Net(conv_gap_fc_model(classes, seed, channels, shape), device="cpu")


def conv_gap_fc_model(classes=4, seed=0, channels=5, shape=(3, 9, 8)):
    """The ONNX model of ``conv_gap_fc``."""
    rng = np.random.default_rng(seed)
    c0 = shape[0]
    inits = {"w1": rng.standard_normal((6, c0, 3, 3)) * 0.4, "b1": rng.standard_normal(6) * 0.1 + 0.1,
             "w2": rng.standard_normal((channels, 6, 3, 3)) * 0.3, "b2": rng.standard_normal(channels) * 0.1 + 0.2,
             "fw": rng.standard_normal((classes, channels)), "fb": rng.standard_normal(classes) * 0.1}
    nodes = [helper.make_node("Conv", ["data", "w1", "b1"], ["conv1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
             helper.make_node("Conv", ["relu1", "w2", "b2"], ["conv2"], name="conv2", strides=[2, 2]),
             helper.make_node("Relu", ["conv2"], ["features"], name="features"),
             helper.make_node("GlobalAveragePool", ["features"], ["gap"], name="gap"),
             helper.make_node("Flatten", ["gap"], ["flat"], name="flat"),
             helper.make_node("Gemm", ["flat", "fw", "fb"], ["score"], name="score", transB=1),
             helper.make_node("Softmax", ["score"], ["prob"], name="prob", axis=1)]
    return model(nodes, inits, ("N",) + tuple(shape), ["prob"])
