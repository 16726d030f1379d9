"""Reference networks as ONNX graphs with seeded random weights, laid out as their Caffe deploys.

Every builder returns an ``onnx.ModelProto`` (opset 13) whose input is ``data`` of shape
``("N", C, input_size, input_size)`` with a symbolic batch, whose logits blob feeds a Softmax whose
output is ``prob`` of shape ``("N", num_classes)``, and whose node and tensor names are the Caffe
layer names ("conv1", "relu1", "pool1", "norm1", …; a node's output tensor has the node's name,
since ONNX tensors cannot be updated in place as Caffe's ReLU blobs are). ``logits_blob(model)``
gives the logits' name: "fc8" everywhere except GoogLeNet, which keeps BVLC's "loss3/classifier".

Weights are He-scaled, w ~ N(0, 2 / fan_in), drawn from ``numpy.random.default_rng(seed)``; biases
are small, w ~ N(0, 0.05²), so that no layer is trivially zero. Knobs for tests and benchmarks:
``width`` multiplies every channel count (and the fully connected widths), ``input_size`` is the
square input side, ``num_classes`` the logits' width.

Caffe's pooling rounds the output size up and clips the last window so that it starts inside the
padded image:

    out = ceil((size + 2·pad − kernel) / stride) + 1,   minus 1 if pad > 0 and (out−1)·stride ≥ size + pad

which ONNX expresses exactly with an asymmetric end pad (ceil_mode 0):

    pads = (pad, pad_end),   pad_end = (out − 1)·stride + kernel − size − pad

For max pooling the padded positions never win (ONNX pads MaxPool with −∞). Average pools in these
networks always fit their input exactly (GoogLeNet's pool5 and the global pools), where Caffe's
divisor and ONNX's agree.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from caffe_port.onnx_util import make_model

OPSET = 13


def caffe_pool_geometry(size, kernel, stride, pad=0):
    """Caffe's pooled size of one spatial axis and the ONNX pads that reproduce it.

    Returns (out, pad_begin, pad_end): ``floor((size + pad_begin + pad_end − kernel) / stride) + 1``
    equals Caffe's ceil-rounded, clipped ``out``.
    """
    out = -(-(size + 2 * pad - kernel) // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    pad_end = max((out - 1) * stride + kernel - size - pad, 0)
    assert (size + pad + pad_end - kernel) // stride + 1 == out
    return out, pad, pad_end


def conv_output_size(size, kernel, stride=1, pad=0):
    """Caffe's (and ONNX's) convolution output size: floor((size + 2·pad − kernel) / stride) + 1."""
    return (size + 2 * pad - kernel) // stride + 1


def logits_blob(model: onnx.ModelProto) -> str:
    """The name of the blob that the final Softmax reads (the network's logits)."""
    softmaxes = [n for n in model.graph.node if n.op_type == "Softmax"]
    if not softmaxes:
        raise ValueError(f"model {model.graph.name!r} has no Softmax node")
    return softmaxes[-1].input[0]


class _NetBuilder:
    """Appends Caffe-named layers to an ONNX graph, tracking each blob's (C, H, W)."""

    def __init__(self, name, seed, width, channels, input_size):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.width = width
        self.nodes = []
        self.initializers = []
        self.shapes = {"data": (channels, input_size, input_size)}

    def scaled(self, channels, multiple=1):
        """``channels`` times the width knob, at least ``multiple`` and divisible by it (groups)."""
        return max(multiple, int(round(channels * self.width / multiple)) * multiple)

    def _gaussian(self, shape, std):
        # drawn in float32: VGG16's 138 M weights take a second instead of ten
        return self.rng.standard_normal(shape, dtype=np.float32) * np.float32(std)

    def _param(self, name, array):
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def _node(self, op_type, name, inputs, shape, **attrs):
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], name=name, **attrs))
        self.shapes[name] = shape
        return name

    def conv(self, name, bottom, num_output, kernel, stride=1, pad=0, group=1):
        c, h, w = self.shapes[bottom]
        if c % group or num_output % group:
            raise ValueError(f"{self.name}/{name}: channels {c}→{num_output} not divisible by group {group}")
        fan_in = c // group * kernel * kernel
        weight = self._gaussian((num_output, c // group, kernel, kernel), math.sqrt(2.0 / fan_in))
        bias = self._gaussian(num_output, 0.05)
        shape = (num_output, conv_output_size(h, kernel, stride, pad), conv_output_size(w, kernel, stride, pad))
        return self._node("Conv", name, [bottom, self._param(f"{name}_W", weight), self._param(f"{name}_b", bias)],
                          shape, kernel_shape=[kernel, kernel], strides=[stride, stride],
                          pads=[pad, pad, pad, pad], group=group)

    def relu(self, name, bottom):
        return self._node("Relu", name, [bottom], self.shapes[bottom])

    def max_pool(self, name, bottom, kernel, stride, pad=0):
        c, h, w = self.shapes[bottom]
        oh, top, bottom_pad = caffe_pool_geometry(h, kernel, stride, pad)
        ow, left, right = caffe_pool_geometry(w, kernel, stride, pad)
        return self._node("MaxPool", name, [bottom], (c, oh, ow), kernel_shape=[kernel, kernel],
                          strides=[stride, stride], pads=[top, left, bottom_pad, right])

    def ave_pool_whole(self, name, bottom):
        """Caffe's ``pool: AVE`` with kernel = the whole map, stride 1 (GoogLeNet's pool5/7x7_s1)."""
        c, h, w = self.shapes[bottom]
        return self._node("AveragePool", name, [bottom], (c, 1, 1), kernel_shape=[h, w], strides=[1, 1])

    def global_ave_pool(self, name, bottom):
        c, _, _ = self.shapes[bottom]
        return self._node("GlobalAveragePool", name, [bottom], (c, 1, 1))

    def lrn(self, name, bottom, local_size=5, alpha=1e-4, beta=0.75, k=1.0):
        # Caffe ACROSS_CHANNELS: x / (k + α/n · Σ_window x²)^β over channels c−(n−1)/2 … c+(n−1)/2,
        # ONNX's LRN with the same size/alpha/beta/bias.
        return self._node("LRN", name, [bottom], self.shapes[bottom], size=local_size, alpha=alpha,
                          beta=beta, bias=k)

    def batch_norm(self, name, bottom, epsilon=1e-5):
        c = self.shapes[bottom][0]
        rng = self.rng
        scale = rng.uniform(0.5, 1.5, c)
        shift = rng.standard_normal(c) * 0.1
        mean = rng.standard_normal(c) * 0.1
        var = rng.uniform(0.5, 2.0, c)
        params = [self._param(f"{name}_{p}", v) for p, v in
                  (("scale", scale), ("bias", shift), ("mean", mean), ("var", var))]
        return self._node("BatchNormalization", name, [bottom] + params, self.shapes[bottom], epsilon=epsilon)

    def dropout(self, name, bottom):
        # inference: the identity (Caffe's deploy Dropout likewise passes data through)
        return self._node("Dropout", name, [bottom], self.shapes[bottom])

    def inner_product(self, name, bottom, num_output):
        """Caffe's InnerProduct: flatten (N, C, H, W) to (N, C·H·W), then y = x·Wᵀ + b, W (out, in)."""
        shape = self.shapes[bottom]
        if len(shape) > 1:
            bottom = self._node("Flatten", f"{bottom}_flat", [bottom], (int(np.prod(shape)),), axis=1)
        fan_in = self.shapes[bottom][0]
        weight = self._gaussian((num_output, fan_in), math.sqrt(2.0 / fan_in))
        bias = self._gaussian(num_output, 0.05)
        return self._node("Gemm", name, [bottom, self._param(f"{name}_W", weight), self._param(f"{name}_b", bias)],
                          (num_output,), transB=1)

    def concat(self, name, bottoms):
        shapes = [self.shapes[b] for b in bottoms]
        shape = (sum(s[0] for s in shapes),) + shapes[0][1:]
        return self._node("Concat", name, bottoms, shape, axis=1)

    def add(self, name, a, b):
        return self._node("Add", name, [a, b], self.shapes[a])

    def softmax(self, logits, name="prob"):
        return self._node("Softmax", name, [logits], self.shapes[logits], axis=1)

    def model(self, output="prob") -> onnx.ModelProto:
        c, h, w = self.shapes["data"]
        inputs = [helper.make_tensor_value_info("data", onnx.TensorProto.FLOAT, ["N", c, h, w])]
        outputs = [helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, ["N", *self.shapes[output]])]
        graph = helper.make_graph(self.nodes, self.name, inputs, outputs, initializer=self.initializers)
        return make_model(graph, OPSET)


def _classifier_head(b, bottom, fc_width, num_classes, dropout=True):
    """fc6 → relu6 → drop6 → fc7 → relu7 → drop7 → fc8 → prob (CaffeNet/AlexNet/ZF/VGG)."""
    x = b.relu("relu6", b.inner_product("fc6", bottom, fc_width))
    if dropout:
        x = b.dropout("drop6", x)
    x = b.relu("relu7", b.inner_product("fc7", x, fc_width))
    if dropout:
        x = b.dropout("drop7", x)
    return b.softmax(b.inner_product("fc8", x, num_classes))


def caffenet(width=1.0, input_size=227, num_classes=1000, seed=0) -> onnx.ModelProto:
    """BVLC's bvlc_reference_caffenet deploy: pooling before LRN (AlexNet puts LRN first)."""
    b = _NetBuilder("caffenet", seed, width, 3, input_size)
    x = b.relu("relu1", b.conv("conv1", "data", b.scaled(96, 2), 11, stride=4))
    x = b.lrn("norm1", b.max_pool("pool1", x, 3, 2))
    x = b.relu("relu2", b.conv("conv2", x, b.scaled(256, 2), 5, pad=2, group=2))
    x = b.lrn("norm2", b.max_pool("pool2", x, 3, 2))
    x = b.relu("relu3", b.conv("conv3", x, b.scaled(384, 2), 3, pad=1))
    x = b.relu("relu4", b.conv("conv4", x, b.scaled(384, 2), 3, pad=1, group=2))
    x = b.relu("relu5", b.conv("conv5", x, b.scaled(256, 2), 3, pad=1, group=2))
    x = b.max_pool("pool5", x, 3, 2)
    _classifier_head(b, x, b.scaled(4096), num_classes)
    return b.model()


def alexnet(width=1.0, input_size=227, num_classes=1000, seed=0) -> onnx.ModelProto:
    """BVLC AlexNet deploy: as CaffeNet but each LRN comes before its pooling."""
    b = _NetBuilder("alexnet", seed, width, 3, input_size)
    x = b.relu("relu1", b.conv("conv1", "data", b.scaled(96, 2), 11, stride=4))
    x = b.max_pool("pool1", b.lrn("norm1", x), 3, 2)
    x = b.relu("relu2", b.conv("conv2", x, b.scaled(256, 2), 5, pad=2, group=2))
    x = b.max_pool("pool2", b.lrn("norm2", x), 3, 2)
    x = b.relu("relu3", b.conv("conv3", x, b.scaled(384, 2), 3, pad=1))
    x = b.relu("relu4", b.conv("conv4", x, b.scaled(384, 2), 3, pad=1, group=2))
    x = b.relu("relu5", b.conv("conv5", x, b.scaled(256, 2), 3, pad=1, group=2))
    x = b.max_pool("pool5", x, 3, 2)
    _classifier_head(b, x, b.scaled(4096), num_classes)
    return b.model()


def zfnet(width=1.0, input_size=224, num_classes=1000, seed=0) -> onnx.ModelProto:
    """Zeiler & Fergus (2013) Fig. 3: conv1 96 7×7 s2, pools 3×3 s2, conv2 256 5×5 s2, then as AlexNet
    (ungrouped). conv1 pads by 1 so that 224 → 110 → 55 → 26 → 13 → 6 as in the paper; the paper's
    contrast normalisation is written as Caffe's LRN."""
    b = _NetBuilder("zfnet", seed, width, 3, input_size)
    x = b.relu("relu1", b.conv("conv1", "data", b.scaled(96), 7, stride=2, pad=1))
    x = b.lrn("norm1", b.max_pool("pool1", x, 3, 2))
    x = b.relu("relu2", b.conv("conv2", x, b.scaled(256), 5, stride=2))
    x = b.lrn("norm2", b.max_pool("pool2", x, 3, 2))
    x = b.relu("relu3", b.conv("conv3", x, b.scaled(384), 3, pad=1))
    x = b.relu("relu4", b.conv("conv4", x, b.scaled(384), 3, pad=1))
    x = b.relu("relu5", b.conv("conv5", x, b.scaled(256), 3, pad=1))
    x = b.max_pool("pool5", x, 3, 2)
    _classifier_head(b, x, b.scaled(4096), num_classes)
    return b.model()


def vgg16(width=1.0, input_size=224, num_classes=1000, seed=0) -> onnx.ModelProto:
    """VGG ILSVRC-16 (configuration D) deploy: 13 conv 3×3 pad 1 + ReLU, 5 max pools 2×2 s2, fc6/fc7/fc8."""
    b = _NetBuilder("vgg16", seed, width, 3, input_size)
    x = "data"
    for stage, (channels, convs) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], start=1):
        for i in range(1, convs + 1):
            x = b.relu(f"relu{stage}_{i}", b.conv(f"conv{stage}_{i}", x, b.scaled(channels), 3, pad=1))
        x = b.max_pool(f"pool{stage}", x, 2, 2)
    _classifier_head(b, x, b.scaled(4096), num_classes)
    return b.model()


def inception_module(b, name, bottom, n1x1, n3x3_reduce, n3x3, n5x5_reduce, n5x5, pool_proj):
    """GoogLeNet's inception module, BVLC names: four branches concatenated along channels.
    ``b`` is any builder with ``conv``, ``relu``, ``max_pool``, ``concat`` and ``scaled`` as
    here (the tests' zoo encodings build the module through it too)."""
    def conv_relu(suffix, x, num_output, kernel, pad=0):
        return b.relu(f"{name}/relu_{suffix}", b.conv(f"{name}/{suffix}", x, b.scaled(num_output), kernel, pad=pad))

    branch1 = conv_relu("1x1", bottom, n1x1, 1)
    branch2 = conv_relu("3x3", conv_relu("3x3_reduce", bottom, n3x3_reduce, 1), n3x3, 3, pad=1)
    branch3 = conv_relu("5x5", conv_relu("5x5_reduce", bottom, n5x5_reduce, 1), n5x5, 5, pad=2)
    branch4 = conv_relu("pool_proj", b.max_pool(f"{name}/pool", bottom, 3, 1, pad=1), pool_proj, 1)
    return b.concat(f"{name}/output", [branch1, branch2, branch3, branch4])


def inception_block(width=1.0, input_size=32, num_classes=1000, seed=0) -> onnx.ModelProto:
    """GoogLeNet's inception_3a (64 | 96→128 | 16→32 | pool→32) on a small stem:
    conv1 3×3 (192 channels, as inception_3a's input) → relu1 → pool1 3×3 s2 → inception_3a
    → GAP (pool5) → fc8 → prob."""
    b = _NetBuilder("inception_block", seed, width, 3, input_size)
    x = b.relu("relu1", b.conv("conv1", "data", b.scaled(192), 3, pad=1))
    x = b.max_pool("pool1", x, 3, 2)
    x = inception_module(b, "inception_3a", x, 64, 96, 128, 16, 32, 32)
    x = b.global_ave_pool("pool5", x)
    b.softmax(b.inner_product("fc8", x, num_classes))
    return b.model()


GOOGLENET_INCEPTIONS = [  # name, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj (BVLC deploy)
    ("inception_3a", 64, 96, 128, 16, 32, 32),
    ("inception_3b", 128, 128, 192, 32, 96, 64),
    ("pool3/3x3_s2",),
    ("inception_4a", 192, 96, 208, 16, 48, 64),
    ("inception_4b", 160, 112, 224, 24, 64, 64),
    ("inception_4c", 128, 128, 256, 24, 64, 64),
    ("inception_4d", 112, 144, 288, 32, 64, 64),
    ("inception_4e", 256, 160, 320, 32, 128, 128),
    ("pool4/3x3_s2",),
    ("inception_5a", 256, 160, 320, 32, 128, 128),
    ("inception_5b", 384, 192, 384, 48, 128, 128),
]


def googlenet(width=1.0, input_size=224, num_classes=1000, seed=0) -> onnx.ModelProto:
    """BVLC GoogLeNet deploy without the auxiliary heads: stem with two LRNs, nine inception modules
    with max pools between stages, pool5/7x7_s1 (average over the whole 7×7 map at 224; over the
    whole map at any size), dropout, loss3/classifier, prob."""
    b = _NetBuilder("googlenet", seed, width, 3, input_size)
    x = b.relu("conv1/relu_7x7", b.conv("conv1/7x7_s2", "data", b.scaled(64), 7, stride=2, pad=3))
    x = b.lrn("pool1/norm1", b.max_pool("pool1/3x3_s2", x, 3, 2))
    x = b.relu("conv2/relu_3x3_reduce", b.conv("conv2/3x3_reduce", x, b.scaled(64), 1))
    x = b.relu("conv2/relu_3x3", b.conv("conv2/3x3", x, b.scaled(192), 3, pad=1))
    x = b.max_pool("pool2/3x3_s2", b.lrn("conv2/norm2", x), 3, 2)
    for spec in GOOGLENET_INCEPTIONS:
        x = b.max_pool(spec[0], x, 3, 2) if len(spec) == 1 else inception_module(b, spec[0], x, *spec[1:])
    x = b.dropout("pool5/drop_7x7_s1", b.ave_pool_whole("pool5/7x7_s1", x))
    b.softmax(b.inner_product("loss3/classifier", x, num_classes))
    return b.model()


def residual_block(width=1.0, input_size=16, num_classes=1000, seed=0) -> onnx.ModelProto:
    """One ResNet basic block with Caffe ResNet names: conv1 3×3 (64) → bn_conv1 → conv1_relu →
    res2a_branch2a → bn2a_branch2a → res2a_branch2a_relu → res2a_branch2b → bn2a_branch2b →
    res2a = Add(identity, branch) → res2a_relu → GAP (pool5) → fc8 → prob. Each BatchNormalization
    has non-trivial scale, bias, mean and variance."""
    b = _NetBuilder("residual_block", seed, width, 3, input_size)
    channels = b.scaled(64)
    stem = b.relu("conv1_relu", b.batch_norm("bn_conv1", b.conv("conv1", "data", channels, 3, pad=1)))
    x = b.relu("res2a_branch2a_relu", b.batch_norm("bn2a_branch2a", b.conv("res2a_branch2a", stem, channels, 3, pad=1)))
    x = b.batch_norm("bn2a_branch2b", b.conv("res2a_branch2b", x, channels, 3, pad=1))
    x = b.relu("res2a_relu", b.add("res2a", stem, x))
    x = b.global_ave_pool("pool5", x)
    b.softmax(b.inner_product("fc8", x, num_classes))
    return b.model()


def lenet(width=1.0, input_size=28, num_classes=10, seed=0, channels=1, relu=True) -> onnx.ModelProto:
    """A LeNet-like net for quick tests: conv1 20 5×5 → pool1 2×2 s2 → conv2 50 5×5 → pool2 → fc7 500
    → fc8 → prob, with ReLUs (relu1, relu2, relu7) after conv1, conv2 and fc7 when ``relu``; without
    them it is linear apart from the max pools."""
    b = _NetBuilder("lenet", seed, width, channels, input_size)
    x = b.conv("conv1", "data", b.scaled(20), 5)
    x = b.max_pool("pool1", b.relu("relu1", x) if relu else x, 2, 2)
    x = b.conv("conv2", x, b.scaled(50), 5)
    x = b.max_pool("pool2", b.relu("relu2", x) if relu else x, 2, 2)
    x = b.inner_product("fc7", x, b.scaled(500))
    x = b.relu("relu7", x) if relu else x
    b.softmax(b.inner_product("fc8", x, num_classes))
    return b.model()


BUILDERS = {
    "caffenet": caffenet,
    "alexnet": alexnet,
    "zfnet": zfnet,
    "vgg16": vgg16,
    "inception_block": inception_block,
    "googlenet": googlenet,
    "residual_block": residual_block,
    "lenet": lenet,
}
