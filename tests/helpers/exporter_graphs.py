"""Small graphs written the way other exporters write them, with random weights.

    keras_like(...)     what tf2onnx makes of a Keras CNN: an (N, H, W, 3) input (batch named
                        "unk__…"), the Rescaling layer as Mul/Add, one Transpose to channels first,
                        Conv/Relu blocks, a Transpose back to channels last, Keras'
                        GlobalAveragePooling2D as ReduceMean over axes 1, 2, Dense as MatMul + Add,
                        then Softmax. Returns it with its NCHW twin (the same layers and weights
                        without the Transposes, ReduceMean over 2, 3), so a test can ask that
                        every map is the same.
    pp_lcnet_like(...)  what paddle2onnx makes of PP-LCNet (opset 15): Conv + BatchNormalization +
                        HardSwish, a depthwise block, a squeeze-and-excitation gate with
                        HardSigmoid, a 1×1 Conv head after the pool, MatMul + Add, Softmax.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from caffe_port.onnx_util import initializer, make_model


def _image_input(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def keras_like(size=(36, 44), classes=5, seed=0, width=6, opset=13):
    """(NHWC model, NCHW twin); the NHWC input is "input_1" of shape (unk__618, H, W, 3)."""
    rng = np.random.default_rng(seed)
    h, w = size
    weights = {
        "scale": np.array(1 / 127.5, np.float32), "offset": np.array(-1.0, np.float32),
        "conv1/kernel": (rng.standard_normal((width, 3, 3, 3)) * 0.5).astype(np.float32),
        "conv1/bias": (rng.standard_normal(width) * 0.1).astype(np.float32),
        "conv2/kernel": (rng.standard_normal((2 * width, width, 3, 3)) * 0.3).astype(np.float32),
        "conv2/bias": (rng.standard_normal(2 * width) * 0.1 + 0.05).astype(np.float32),
        "dense/kernel": (rng.standard_normal((2 * width, classes)) * 0.5).astype(np.float32),
        "dense/bias": (rng.standard_normal(classes) * 0.1).astype(np.float32),
    }

    def body(first):
        return [
            helper.make_node("Conv", [first, "conv1/kernel", "conv1/bias"], ["conv1"], name="conv1",
                             pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["conv1"], ["conv1_relu"], name="conv1_relu"),
            helper.make_node("Conv", ["conv1_relu", "conv2/kernel", "conv2/bias"], ["conv2"], name="conv2",
                             strides=[2, 2], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["conv2"], ["conv2_relu"], name="conv2_relu"),
        ]

    def head(features, axes):
        return [
            helper.make_node("ReduceMean", [features], ["pooled"], name="global_average_pooling2d",
                             axes=axes, keepdims=0),
            helper.make_node("MatMul", ["pooled", "dense/kernel"], ["dense_matmul"], name="dense/MatMul"),
            helper.make_node("Add", ["dense_matmul", "dense/bias"], ["logits"], name="dense/BiasAdd"),
            helper.make_node("Softmax", ["logits"], ["dense"], name="dense/Softmax", axis=-1),
        ]

    rescale = [helper.make_node("Mul", ["input_1", "scale"], ["scaled"], name="rescaling/mul"),
               helper.make_node("Add", ["scaled", "offset"], ["rescaled"], name="rescaling/add")]
    nodes = body("rescaled_nchw")
    nhwc_nodes = (rescale
                  + [helper.make_node("Transpose", ["rescaled"], ["rescaled_nchw"], name="conv1__6", perm=[0, 3, 1, 2])]
                  + nodes
                  + [helper.make_node("Transpose", ["conv2_relu"], ["conv2_relu_nhwc"], name="conv2_relu__12",
                                      perm=[0, 2, 3, 1])]
                  + head("conv2_relu_nhwc", [1, 2]))
    nhwc = helper.make_graph(nhwc_nodes, "keras_like", [_image_input("input_1", ("unk__618", h, w, 3))],
                             [helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["unk__619", classes])],
                             initializer=[initializer(k, v) for k, v in weights.items()])
    twin_nodes = ([helper.make_node("Mul", ["input_1", "scale"], ["scaled"]),
                   helper.make_node("Add", ["scaled", "offset"], ["rescaled_nchw"])]
                  + body("rescaled_nchw") + head("conv2_relu", [2, 3]))
    twin = helper.make_graph(twin_nodes, "keras_like_nchw", [_image_input("input_1", ("N", 3, h, w))],
                             [helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["N", classes])],
                             initializer=[initializer(k, v) for k, v in weights.items()])
    model = make_model(nhwc, opset, producer="tf2onnx")
    model.producer_version = "1.16.1 15c810"
    return model, make_model(twin, opset)


def _conv_bn_act(nodes, weights, rng, name, bottom, c_in, c_out, kernel, stride=1, group=1, act="HardSwish"):
    weights[f"{name}_weights"] = (rng.standard_normal((c_out, c_in // group, kernel, kernel))
                                  * (1.5 / np.sqrt(c_in // group * kernel * kernel))).astype(np.float32)
    for stat, value in (("scale", 1 + 0.1 * rng.standard_normal(c_out)), ("offset", 0.1 * rng.standard_normal(c_out)),
                        ("mean", 0.1 * rng.standard_normal(c_out)), ("variance", rng.uniform(0.5, 1.5, c_out))):
        weights[f"{name}_bn_{stat}"] = value.astype(np.float32)
    pad = kernel // 2
    nodes += [helper.make_node("Conv", [bottom, f"{name}_weights"], [f"{name}.conv"], name=f"{name}.conv",
                               kernel_shape=[kernel, kernel], strides=[stride, stride], group=group,
                               pads=[pad] * 4),
              helper.make_node("BatchNormalization", [f"{name}.conv"] + [f"{name}_bn_{s}" for s in
                                                                          ("scale", "offset", "mean", "variance")],
                               [f"{name}.bn"], name=f"{name}.bn", epsilon=1e-5),
              helper.make_node(act, [f"{name}.bn"], [f"{name}.act"], name=f"{name}.act")]
    return f"{name}.act"


def pp_lcnet_like(size=32, classes=6, seed=0, opset=15):
    """A PP-LCNet-shaped classifier: input "x" (N, 3, size, size), output "softmax_0.tmp_0"."""
    rng = np.random.default_rng(seed)
    nodes, weights = [], {}
    top = _conv_bn_act(nodes, weights, rng, "conv1", "x", 3, 8, 3, stride=2)
    top = _conv_bn_act(nodes, weights, rng, "blocks2.dw", top, 8, 8, 3, group=8)
    top = _conv_bn_act(nodes, weights, rng, "blocks2.pw", top, 8, 16, 1)
    top = _conv_bn_act(nodes, weights, rng, "blocks3.dw", top, 16, 16, 5, stride=2, group=16)
    # squeeze-and-excitation, as PP-LCNet's last blocks have it
    weights.update({"se.conv1.w": (rng.standard_normal((4, 16, 1, 1)) * 0.5).astype(np.float32),
                    "se.conv1.b": np.zeros(4, np.float32),
                    "se.conv2.w": (rng.standard_normal((16, 4, 1, 1)) * 0.5).astype(np.float32),
                    "se.conv2.b": np.zeros(16, np.float32)})
    nodes += [helper.make_node("GlobalAveragePool", [top], ["se.pool"], name="se.pool"),
              helper.make_node("Conv", ["se.pool", "se.conv1.w", "se.conv1.b"], ["se.conv1"], name="se.conv1"),
              helper.make_node("Relu", ["se.conv1"], ["se.relu"], name="se.relu"),
              helper.make_node("Conv", ["se.relu", "se.conv2.w", "se.conv2.b"], ["se.conv2"], name="se.conv2"),
              helper.make_node("HardSigmoid", ["se.conv2"], ["se.gate"], name="se.hardsigmoid",
                               alpha=1 / 6, beta=0.5),
              helper.make_node("Mul", [top, "se.gate"], ["se.out"], name="se.mul")]
    top = _conv_bn_act(nodes, weights, rng, "blocks3.pw", "se.out", 16, 24, 1)
    weights.update({"last_conv.w": (rng.standard_normal((32, 24, 1, 1)) * 0.3).astype(np.float32),
                    "fc.w": (rng.standard_normal((32, classes)) * 0.3).astype(np.float32),
                    "fc.b": (rng.standard_normal(classes) * 0.1).astype(np.float32),
                    "flatten.shape": np.array([-1, 32], np.int64)})
    nodes += [helper.make_node("GlobalAveragePool", [top], ["avg_pool"], name="avg_pool"),
              helper.make_node("Conv", ["avg_pool", "last_conv.w"], ["last_conv"], name="last_conv"),
              helper.make_node("HardSwish", ["last_conv"], ["last_act"], name="last_act"),
              helper.make_node("Reshape", ["last_act", "flatten.shape"], ["flatten"], name="flatten"),
              helper.make_node("MatMul", ["flatten", "fc.w"], ["fc.matmul"], name="fc.matmul"),
              helper.make_node("Add", ["fc.matmul", "fc.b"], ["fc.add"], name="fc.add"),
              helper.make_node("Softmax", ["fc.add"], ["softmax_0.tmp_0"], name="softmax", axis=-1)]
    graph = helper.make_graph(nodes, "pp_lcnet_like", [_image_input("x", ("p2o.DynamicDimension.0", 3, size, size))],
                              [helper.make_tensor_value_info("softmax_0.tmp_0", TensorProto.FLOAT,
                                                             ["p2o.DynamicDimension.1", classes])],
                              initializer=[initializer(k, v) for k, v in weights.items()])
    return make_model(graph, opset, producer="PaddlePaddle")
