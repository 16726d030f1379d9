"""The Caffe-lineage classifiers of the ONNX Model Zoo, as small graphs in the zoo files' encodings.

Each builder returns an ``onnx.ModelProto`` with the network's real layer pattern at a reduced width
and input size, seeded random weights, and the encoding of the zoo's files for the requested opset
(the real files are not needed: what matters here is how they say things). Three lineages:

**Caffe → Caffe2 → ONNX** ("caffe2"; opsets 3, 6, 7, 8, 9): bvlc_alexnet, bvlc_reference_caffenet,
bvlc_reference_rcnn_ilsvrc13, bvlc_googlenet, inception_v1, inception_v2, densenet121,
resnet50_caffe2, squeezenet1_0, shufflenet (v1), vgg19_caffe2, zfnet512.

* IR 3; every initializer is also listed among the graph inputs; the input is ``data_0`` (or
  ``gpu_0/data_0``) of fixed shape (1, 3, S, S).
* Blobs are named as Caffe2's SSA pass names in-place layers: the Caffe top with a version, so a
  Conv writes ``conv1_1`` and its in-place ReLU ``conv1_2``; weights are ``<layer>_w_0`` /
  ``<layer>_b_0``, BN parameters ``_s_0``, ``_b_0``, ``_rm_0``, ``_riv_0``; nodes are unnamed.
* Caffe's ceil pooling is explicit asymmetric padding, as the Caffe2 exporter computed it for
  ``legacy_pad = CAFFE_LEGACY_POOLING``: pad_end = out·stride − pad − 1 + kernel − size (nets
  written for Caffe2 carry their own pads: BN-Inception's pad_b = pad_r = 1; ResNet-50's and
  DenseNet's pools round down).
* Caffe's InnerProduct is Gemm(transB=1) (with ``broadcast=1`` before opset 7); from opset 6 a
  Reshape(x, (1, C·H·W)) by an int64 initializer (``OC2_DUMMY_k``) flattens a map first, while the
  opset-3 files give Gemm the (1, C, H, W) map itself (onnx-mlir issue 128 lists no Reshape in
  rcnn-ilsvrc13-3 and "Gemm with A should be a 2D tensor"). Reshape's shape is an attribute
  before opset 5 (ShuffleNet's channel shuffle), an initializer after.
* SpatialBN is BatchNormalization with is_test=1 (and the required consumed_inputs before opset
  6), spatial=1 at opsets 7–8, neither at 9.
* Dropout has is_test=1 and ratio before opset 7, ratio after, and its mask as a second output.
* Caffe's Scale layer (DenseNet, Inception v2) is Mul and Add by per-channel vectors with
  broadcast=1, axis=1 before opset 7; from 7 the vectors go through Unsqueeze(axes=[1, 2]) (a
  constant subgraph).
* Residual additions are Sum; concatenations Concat(axis=1); ShuffleNet's channel shuffle is
  Reshape (1, g, C/g, H, W) → Transpose(0, 2, 1, 3, 4) → Reshape (1, C, H, W).

**MXNet → ONNX** ("mxnet"; opset 7): resnet50_v1, resnet50_v2, squeezenet1_1. Input ``data``,
names ``<net>_<layer>_fwd``; Gemm(alpha, beta, transA=0, transB=1) after Flatten; BatchNormalization
with ``spatial=0`` but (C,) parameters, as MXNet 1.3–1.6 exported it (MXNet PR 17711 later wrote
spatial=1; whether the zoo's resnet files carry spatial=0 was not confirmed); residual Add.

**PyTorch → ONNX** ("torch"; opsets 9–10): vgg16/vgg19 as torchvision exports them, shufflenet_v2.
Parameters named by their state_dict keys, intermediate tensors numbered, IR 4/5 with the
initializers listed as inputs (torch < 1.5); Gemm(alpha=1, beta=1, transB=1); Dropout(ratio);
flattening as Flatten(axis=1) (torchvision ≥ 0.4's ``torch.flatten``) or as the traced
``x.view(x.size(0), -1)``: Shape → Gather → Unsqueeze, Concat with a Constant −1, Reshape.

Every builder takes ``opset`` (one the model was published in), ``width`` (channel multiplier),
``input_size``, ``num_classes``, ``seed`` and ``batch`` (1 as in the zoo; None declares a symbolic
batch while reshapes keep their hard-coded 1, as a user's edited file would). Weights are drawn in
the same order at every opset, so the encodings of one seed compute the same function.
``logits_blob(model)`` names the blob before the final Softmax (or the output).
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from caffe_port.models.builders import (GOOGLENET_INCEPTIONS, caffe_pool_geometry, conv_output_size,
                                        inception_module)
from caffe_port.onnx_util import ir_for_opset

STYLE_OPSETS = {"caffe2": (3, 6, 7, 8, 9), "mxnet": (7,), "torch": (9, 10)}


def caffe2_pool_pads(size, kernel, stride, pad):
    """Caffe's ceil-rounded pooled size and the Caffe2 exporter's explicit end pad for it.

    out = ceil((size + 2·pad − kernel) / stride) + 1, less 1 if the last window would start in the
    end padding (pad > 0); pad_end = out·stride − pad − 1 + kernel − size, so that ONNX's
    floor((size + pad + pad_end − kernel) / stride) + 1 is out again (stride − 1 more end padding
    than strictly needed: no window reaches it).
    """
    out = -(-(size + 2 * pad - kernel) // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    pad_end = out * stride - pad - 1 + kernel - size
    assert (size + pad + pad_end - kernel) // stride + 1 == out
    if pad_end >= kernel:   # ONNX Runtime refuses such a file; the zoo's 224-pixel files never have one
        raise ValueError(f"a {size}-pixel map pooled by {kernel}/{stride} gets end pad {pad_end} ≥ kernel; "
                         "choose another input_size")
    return out, pad, max(pad_end, 0)


class _Zoo:
    """Appends layers to an ONNX graph in one lineage's encoding at one opset, tracking (C, H, W)."""

    def __init__(self, name, style, opset, seed, width, input_size, *, batch=1, prefix="",
                 input_name=None, net_prefix=""):
        if opset not in STYLE_OPSETS[style]:
            raise ValueError(f"{name}: the zoo has no {style} file at opset {opset} "
                             f"(opsets: {', '.join(map(str, STYLE_OPSETS[style]))})")
        self.name, self.style, self.opset = name, style, opset
        self.rng = np.random.default_rng(seed)
        self.width = width
        self.batch = batch
        self.prefix = prefix              # caffe2: "gpu_0/" for nets trained with data_parallel_model
        self.net_prefix = net_prefix      # mxnet: "resnetv17_" …
        self.nodes, self.initializers = [], []
        self.versions = {}                # caffe2 SSA: Caffe blob → last version written
        self.counter = 0                  # torch: numbered intermediate tensors
        self.dummies = 0                  # caffe2: OC2_DUMMY_k shape tensors
        self.shapes = {}
        default_input = {"caffe2": f"{prefix}data_0", "mxnet": "data", "torch": "data"}[style]
        self.input = input_name or default_input
        self.shapes[self.input] = (3, input_size, input_size)
        self.names = {}                   # Caffe top → ONNX tensor (the last one written)

    # --- names ----------------------------------------------------------------------------------

    def scaled(self, channels, multiple=1):
        return max(multiple, int(round(channels * self.width / multiple)) * multiple)

    def _top(self, caffe_top):
        """The ONNX tensor a layer writing Caffe blob ``caffe_top`` produces."""
        if self.style == "caffe2":
            v = self.versions.get(caffe_top, 0) + 1
            self.versions[caffe_top] = v
            name = f"{self.prefix}{caffe_top}_{v}"
        elif self.style == "mxnet":
            name = f"{self.net_prefix}{caffe_top}_fwd"
        else:
            self.counter += 1
            name = str(self.counter)
        self.names[caffe_top] = name
        return name

    def _param_name(self, layer, role):
        if self.style == "caffe2":
            return f"{self.prefix}{layer}_{role}_0"
        if self.style == "mxnet":
            return f"{self.net_prefix}{layer}_{role}"
        return f"{layer}.{role}"

    def _param(self, layer, role, array, dtype=np.float32):
        name = self._param_name(layer, role)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype=dtype), name))
        return name

    def _shape_tensor(self, dims):
        """A shape operand: the Caffe2 exporter's OC2_DUMMY_k initializer, torch's Constant node."""
        dims = np.asarray(dims, dtype=np.int64)
        if self.style == "torch":
            self.counter += 1
            name = str(self.counter)
            self.nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(dims)))
            return name
        name = self._dummy()
        self.initializers.append(numpy_helper.from_array(dims, name))
        return name

    def _node(self, op_type, inputs, outputs, top_shape, node_name="", **attrs):
        """Append a node (unnamed in Caffe2's files); ``top_shape``: its first output's (C, H, W)."""
        name = node_name if self.style != "caffe2" else ""
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name=name, **attrs))
        if top_shape is not None:
            self.shapes[outputs[0]] = top_shape
        return outputs[0]

    def _gaussian(self, shape, std):
        return self.rng.standard_normal(shape, dtype=np.float32) * np.float32(std)

    # --- layers ----------------------------------------------------------------------------------

    def conv(self, layer, bottom, num_output, kernel, stride=1, pad=0, group=1, bias=True, top=None):
        c, h, w = self.shapes[bottom]
        if c % group or num_output % group:
            raise ValueError(f"{self.name}/{layer}: channels {c}→{num_output} not divisible by group {group}")
        fan_in = c // group * kernel * kernel
        roles = {"caffe2": ("w", "b"), "mxnet": ("weight", "bias"), "torch": ("weight", "bias")}[self.style]
        inputs = [bottom, self._param(layer, roles[0], self._gaussian((num_output, c // group, kernel, kernel),
                                                                    math.sqrt(2.0 / fan_in)))]
        if bias:
            inputs.append(self._param(layer, roles[1], self._gaussian(num_output, 0.05)))
        attrs = dict(kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4)
        if group > 1 or self.style != "caffe2":
            attrs["group"] = group
        if self.style != "caffe2":
            attrs["dilations"] = [1, 1]
        shape = (num_output, conv_output_size(h, kernel, stride, pad), conv_output_size(w, kernel, stride, pad))
        return self._node("Conv", inputs, [self._top(top or layer)], shape, node_name=layer, **attrs)

    def relu(self, layer, bottom, top=None):
        """In place in Caffe (top = the bottom's blob): a new version of the same blob in Caffe2."""
        return self._node("Relu", [bottom], [self._top(self._inplace(bottom, layer, top))],
                          self.shapes[bottom], node_name=layer)

    def _caffe_name(self, tensor, default):
        for caffe_top, name in self.names.items():
            if name == tensor:
                return caffe_top
        return default

    def _inplace(self, bottom, layer, top=None):
        """The Caffe top of an in-place layer: its bottom's blob (Caffe2 versions it), else its own."""
        if top:
            return top
        return self._caffe_name(bottom, layer) if self.style == "caffe2" else layer

    def _dummy(self):
        """The Caffe2 exporter's name for a tensor it adds: OC2_DUMMY_k, k counting up."""
        name = f"OC2_DUMMY_{self.dummies}"
        self.dummies += 1
        return name

    def _pool(self, op_type, layer, bottom, kernel, stride, pad, ceil, legacy=True):
        """``ceil``: Caffe's rounding, as explicit end pads — the Caffe2 exporter's (``legacy``, for
        pools translated from Caffe with legacy_pad) or the smallest that do (pad_b/pad_r written
        into the Caffe2 net itself, as BN-Inception's are)."""
        c, h, w = self.shapes[bottom]
        if ceil:
            geometry = caffe2_pool_pads if legacy else caffe_pool_geometry
            (oh, top, bottom_pad), (ow, left, right) = (geometry(h, kernel, stride, pad),
                                                        geometry(w, kernel, stride, pad))
        else:
            oh, ow = conv_output_size(h, kernel, stride, pad), conv_output_size(w, kernel, stride, pad)
            top = left = bottom_pad = right = pad
        attrs = dict(kernel_shape=[kernel, kernel], strides=[stride, stride],
                     pads=[top, left, bottom_pad, right])
        if self.style == "torch" and self.opset >= 10:
            attrs["ceil_mode"] = 0
        return self._node(op_type, [bottom], [self._top(layer)], (c, oh, ow), node_name=layer, **attrs)

    def max_pool(self, layer, bottom, kernel, stride, pad=0, ceil=True, legacy=True):
        return self._pool("MaxPool", layer, bottom, kernel, stride, pad, ceil, legacy)

    def ave_pool(self, layer, bottom, kernel, stride, pad=0, ceil=True, legacy=True):
        return self._pool("AveragePool", layer, bottom, kernel, stride, pad, ceil, legacy)

    def ave_pool_whole(self, layer, bottom):
        """Caffe's AVE pooling over the whole map (kernel = the map, stride 1), not a global pool."""
        c, h, w = self.shapes[bottom]
        return self._node("AveragePool", [bottom], [self._top(layer)], (c, 1, 1), node_name=layer,
                          kernel_shape=[h, w], strides=[1, 1], pads=[0, 0, 0, 0])

    def global_ave_pool(self, layer, bottom):
        c = self.shapes[bottom][0]
        return self._node("GlobalAveragePool", [bottom], [self._top(layer)], (c, 1, 1), node_name=layer)

    def lrn(self, layer, bottom, size=5, alpha=1e-4, beta=0.75, bias=1.0):
        return self._node("LRN", [bottom], [self._top(layer)], self.shapes[bottom], node_name=layer,
                          size=size, alpha=alpha, beta=beta, bias=bias)

    def batch_norm(self, layer, bottom, top=None, trivial_affine=False, epsilon=1e-5):
        """SpatialBN / MXNet / torch BatchNorm in inference mode. ``trivial_affine``: scale 1 and
        bias 0, as Caffe → Caffe2 translated Caffe's BatchNorm layer (its Scale layer follows)."""
        c = self.shapes[bottom][0]
        scale = np.ones(c) if trivial_affine else self.rng.uniform(0.5, 1.5, c)
        shift = np.zeros(c) if trivial_affine else self.rng.standard_normal(c) * 0.1
        mean = self.rng.standard_normal(c) * 0.1
        var = self.rng.uniform(0.5, 2.0, c)
        roles = {"caffe2": ("s", "b", "rm", "riv"), "mxnet": ("gamma", "beta", "running_mean", "running_var"),
                 "torch": ("weight", "bias", "running_mean", "running_var")}[self.style]
        params = [self._param(layer, role, v) for role, v in zip(roles, (scale, shift, mean, var))]
        attrs = dict(epsilon=epsilon)
        if self.style == "caffe2":
            if self.opset < 6:
                attrs["consumed_inputs"] = [0, 0, 0, 1, 1]
            if self.opset < 7:
                attrs.update(is_test=1, momentum=0.9)
            elif self.opset < 9:
                attrs["spatial"] = 1
        elif self.style == "mxnet":
            attrs.update(momentum=0.9, spatial=0)
        else:
            attrs["momentum"] = 0.9
        return self._node("BatchNormalization", [bottom] + params, [self._top(top or layer)],
                          self.shapes[bottom], node_name=layer, **attrs)

    def scale(self, layer, bottom, top=None):
        """Caffe's Scale layer with bias, y = x · γ_c + β_c, as Caffe2 runs it: Mul into
        ``<top>_internal``, then Add into ``top`` (default: in place, the bottom's blob)."""
        c = self.shapes[bottom][0]
        gamma = self._param(layer, "w", self.rng.uniform(0.5, 1.5, c))
        beta = self._param(layer, "b", self.rng.standard_normal(c) * 0.1)
        blob = self._inplace(bottom, layer, top)
        x = bottom
        for op_type, operand, out in (("Mul", gamma, f"{blob}_internal"), ("Add", beta, blob)):
            if self.opset < 7:
                x = self._node(op_type, [x, operand], [self._top(out)], self.shapes[bottom], broadcast=1, axis=1)
            else:
                aligned = self._node("Unsqueeze", [operand], [f"{operand}_unsqueezed"], None, axes=[1, 2])
                x = self._node(op_type, [x, aligned], [self._top(out)], self.shapes[bottom])
        return x

    def dropout(self, layer, bottom, ratio=0.5, mask=True):
        top = self._top(self._inplace(bottom, layer))
        outputs = [top, f"_{top}_mask"] if mask else [top]
        attrs = dict(ratio=ratio)
        if self.opset < 7:
            attrs["is_test"] = 1
        return self._node("Dropout", [bottom], outputs, self.shapes[bottom], node_name=layer, **attrs)

    def reshape(self, bottom, dims, top):
        """Reshape to fixed ``dims`` (batch included, one −1 allowed): an attribute before opset 5,
        an input after."""
        known = int(np.prod([d for d in dims[1:] if d != -1]))
        shape = tuple(int(np.prod(self.shapes[bottom])) // known if d == -1 else d for d in dims[1:])
        if self.opset < 5:
            return self._node("Reshape", [bottom], [top], shape, shape=list(dims))
        return self._node("Reshape", [bottom, self._shape_tensor(dims)], [top], shape)

    def flatten_view(self, bottom):
        """torch's trace of ``x.view(x.size(0), -1)``: the batch size read from the tensor's shape."""
        def tensor():
            self.counter += 1
            return str(self.counter)
        zero, shape, n, minus_one, n1, m1, target = (tensor() for _ in range(7))
        self.nodes += [helper.make_node("Constant", [], [zero], value=numpy_helper.from_array(np.array(0, np.int64))),
                       helper.make_node("Shape", [bottom], [shape]),
                       helper.make_node("Gather", [shape, zero], [n], axis=0),
                       helper.make_node("Constant", [], [minus_one],
                                        value=numpy_helper.from_array(np.array(-1, np.int64))),
                       helper.make_node("Unsqueeze", [n], [n1], axes=[0]),
                       helper.make_node("Unsqueeze", [minus_one], [m1], axes=[0]),
                       helper.make_node("Concat", [n1, m1], [target], axis=0)]
        return self._node("Reshape", [bottom, target], [self._top("flatten")], (int(np.prod(self.shapes[bottom])),))

    def flatten(self, layer, bottom):
        return self._node("Flatten", [bottom], [self._top(layer)], (int(np.prod(self.shapes[bottom])),),
                          node_name=layer, axis=1)

    def fc(self, layer, bottom, num_output, top=None):
        """Caffe2's FC: Gemm(transB=1) of the bottom reshaped to (1, C·H·W) when it is a map; the
        opset-3 exports hand Gemm the map itself (Caffe2's FC flattened it implicitly)."""
        if len(self.shapes[bottom]) > 1 and self.style == "caffe2" and self.opset >= 5:
            flat = int(np.prod(self.shapes[bottom]))
            bottom = self.reshape(bottom, (1, flat), self._dummy())
        fan_in = int(np.prod(self.shapes[bottom]))
        roles = ("w", "b") if self.style == "caffe2" else ("weight", "bias")
        weight = self._param(layer, roles[0], self._gaussian((num_output, fan_in), math.sqrt(2.0 / fan_in)))
        bias = self._param(layer, roles[1], self._gaussian(num_output, 0.05))
        attrs = dict(transB=1)
        if self.style == "caffe2" and self.opset < 7:
            attrs["broadcast"] = 1
        if self.style != "caffe2":
            attrs.update(alpha=1.0, beta=1.0)
            if self.style == "mxnet":
                attrs["transA"] = 0
        return self._node("Gemm", [bottom, weight, bias], [self._top(top or layer)], (num_output,),
                          node_name=layer, **attrs)

    def concat(self, layer, bottoms):
        shapes = [self.shapes[b] for b in bottoms]
        if any(s[1:] != shapes[0][1:] for s in shapes):
            raise ValueError(f"{self.name}/{layer}: maps of sizes {[s[1:] for s in shapes]} cannot be "
                             "concatenated; choose another input_size")
        shape = (sum(s[0] for s in shapes),) + shapes[0][1:]
        return self._node("Concat", bottoms, [self._top(layer)], shape, node_name=layer, axis=1)

    def sum(self, layer, bottoms, top=None):
        return self._node("Sum", bottoms, [self._top(top or layer)], self.shapes[bottoms[0]], node_name=layer)

    def add(self, layer, a, b):
        return self._node("Add", [a, b], [self._top(layer)], self.shapes[a], node_name=layer)

    def channel_shuffle(self, layer, bottom, groups):
        """Reshape (1, g, C/g, H, W) → Transpose(0, 2, 1, 3, 4) → Reshape (1, C, H, W); batch 1 baked in."""
        c, h, w = self.shapes[bottom]
        temporary = self._dummy if self.style == "caffe2" else (lambda: self._top(layer))
        grouped = self.reshape(bottom, (1, groups, c // groups, h, w), temporary())
        swapped = self._node("Transpose", [grouped], [temporary()], (c // groups, groups, h, w),
                             perm=[0, 2, 1, 3, 4])
        dims = (1, -1, h, w) if self.style == "torch" else (1, c, h, w)
        return self.reshape(swapped, dims, self._top(layer))

    def split(self, layer, bottom, parts=2):
        c, h, w = self.shapes[bottom]
        tops = [self._top(f"{layer}_{i}") for i in range(parts)]
        self.nodes.append(helper.make_node("Split", [bottom], tops, axis=1, split=[c // parts] * parts))
        for t in tops:
            self.shapes[t] = (c // parts, h, w)
        return tops

    def reduce_mean(self, layer, bottom):
        c = self.shapes[bottom][0]
        return self._node("ReduceMean", [bottom], [self._top(layer)], (c,), node_name=layer, axes=[2, 3],
                          keepdims=0)

    def softmax(self, layer, bottom):
        return self._node("Softmax", [bottom], [self._top(layer)], self.shapes[bottom], node_name=layer, axis=1)

    # --- the model -------------------------------------------------------------------------------

    def model(self, output) -> onnx.ModelProto:
        batch = self.batch if self.batch is not None else "N"
        inputs = [helper.make_tensor_value_info(self.input, onnx.TensorProto.FLOAT,
                                                [batch, *self.shapes[self.input]])]
        # IR 3 (and torch < 1.5): every initializer is a graph input too
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in self.initializers]
        outputs = [helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, [batch, *self.shapes[output]])]
        graph = helper.make_graph(self.nodes, self.name, inputs, outputs, initializer=self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name={"caffe2": "onnx-caffe2", "mxnet": "mxnet",
                                                 "torch": "pytorch"}[self.style])
        model.ir_version = 3 if self.style != "torch" else ir_for_opset(self.opset)
        return model


# --- AlexNet family -------------------------------------------------------------------------------

def _alexnet_body(z, lrn_first, groups=True):
    g = 2 if groups else 1
    x = z.relu("relu1", z.conv("conv1", z.input, z.scaled(96, 2), 11, stride=4))
    if lrn_first:
        x = z.max_pool("pool1", z.lrn("norm1", x), 3, 2)
    else:
        x = z.lrn("norm1", z.max_pool("pool1", x, 3, 2))
    x = z.relu("relu2", z.conv("conv2", x, z.scaled(256, 2), 5, pad=2, group=g))
    if lrn_first:
        x = z.max_pool("pool2", z.lrn("norm2", x), 3, 2)
    else:
        x = z.lrn("norm2", z.max_pool("pool2", x, 3, 2))
    x = z.relu("relu3", z.conv("conv3", x, z.scaled(384, 2), 3, pad=1))
    x = z.relu("relu4", z.conv("conv4", x, z.scaled(384, 2), 3, pad=1, group=g))
    x = z.relu("relu5", z.conv("conv5", x, z.scaled(256, 2), 3, pad=1, group=g))
    return z.max_pool("pool5", x, 3, 2)


def _fc_head(z, x, fc_width):
    x = z.dropout("drop6", z.relu("relu6", z.fc("fc6", x, fc_width)))
    return z.dropout("drop7", z.relu("relu7", z.fc("fc7", x, fc_width)))


def bvlc_alexnet(opset=9, width=1.0, input_size=224, num_classes=1000, seed=0, batch=1):
    """bvlc_alexnet: LRN before each of the first two pools, grouped conv2/4/5; output softmaxout_1."""
    z = _Zoo("bvlc_alexnet", "caffe2", opset, seed, width, input_size, batch=batch)
    x = _fc_head(z, _alexnet_body(z, lrn_first=True), z.scaled(4096))
    return z.model(z.softmax("softmaxout", z.fc("fc8", x, num_classes)))


def bvlc_reference_caffenet(opset=9, width=1.0, input_size=224, num_classes=1000, seed=0, batch=1):
    """bvlc_reference_caffenet: AlexNet with each pool before its LRN; output prob_1."""
    z = _Zoo("bvlc_reference_caffenet", "caffe2", opset, seed, width, input_size, batch=batch)
    x = _fc_head(z, _alexnet_body(z, lrn_first=False), z.scaled(4096))
    return z.model(z.softmax("prob", z.fc("fc8", x, num_classes)))


def bvlc_reference_rcnn_ilsvrc13(opset=9, width=1.0, input_size=224, num_classes=200, seed=0, batch=1):
    """R-CNN ILSVRC13: the CaffeNet body and fc6/fc7, then fc-rcnn (200 SVM scores), no softmax."""
    z = _Zoo("bvlc_reference_rcnn_ilsvrc13", "caffe2", opset, seed, width, input_size, batch=batch)
    x = _fc_head(z, _alexnet_body(z, lrn_first=False), z.scaled(4096))
    return z.model(z.fc("fc-rcnn", x, num_classes))


def zfnet512(opset=9, width=1.0, input_size=224, num_classes=1000, seed=0, batch=1):
    """ZFNet-512 (Caffe2, gpu_0/ names): conv1 96 7×7 s2, pools 3×3 s2 before LRN, conv2 256 5×5 s2,
    then 512 / 512 / 512 maps (Zeiler & Fergus's larger variant with conv4 halved), fc6/fc7 4096."""
    z = _Zoo("zfnet512", "caffe2", opset, seed, width, input_size, batch=batch, prefix="gpu_0/")
    x = z.relu("relu1", z.conv("conv1", z.input, z.scaled(96), 7, stride=2, pad=1))
    x = z.lrn("norm1", z.max_pool("pool1", x, 3, 2))
    x = z.relu("relu2", z.conv("conv2", x, z.scaled(256), 5, stride=2))
    x = z.lrn("norm2", z.max_pool("pool2", x, 3, 2))
    x = z.relu("relu3", z.conv("conv3", x, z.scaled(512), 3, pad=1))
    x = z.relu("relu4", z.conv("conv4", x, z.scaled(512), 3, pad=1))
    x = z.relu("relu5", z.conv("conv5", x, z.scaled(512), 3, pad=1))
    x = _fc_head(z, z.max_pool("pool5", x, 3, 2), z.scaled(4096))
    return z.model(z.softmax("softmax", z.fc("fc8", x, num_classes)))


# --- VGG ------------------------------------------------------------------------------------------

VGG_STAGES = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


def _vgg_features(z, depth, torch_names=False):
    x, index = z.input, 0
    for stage, (channels, convs) in enumerate(zip((64, 128, 256, 512, 512), VGG_STAGES[depth]), start=1):
        for i in range(1, convs + 1):
            layer = f"features.{index}" if torch_names else f"conv{stage}_{i}"
            x = z.relu(f"relu{stage}_{i}", z.conv(layer, x, z.scaled(channels), 3, pad=1))
            index += 2
        x = z.max_pool(f"features.{index}" if torch_names else f"pool{stage}", x, 2, 2, ceil=not torch_names)
        index += 1
    return x


def vgg19_caffe2(opset=9, width=1.0, input_size=224, num_classes=1000, seed=0, batch=1):
    """VGG-19 (configuration E) via Caffe2: 16 conv 3×3 + ReLU, 5 max pools 2×2 s2, fc6/fc7, prob_1."""
    z = _Zoo("vgg19_caffe2", "caffe2", opset, seed, width, input_size, batch=batch)
    x = _fc_head(z, _vgg_features(z, 19), z.scaled(4096))
    return z.model(z.softmax("prob", z.fc("fc8", x, num_classes)))


def vgg_torchvision(depth=16, opset=9, width=1.0, input_size=224, num_classes=1000, seed=0, batch=1,
                    flatten="Flatten", pooled=None):
    """torchvision's vgg16 / vgg19 exported by torch.onnx: features, AdaptiveAvgPool2d to ``pooled``
    (exported as AveragePool with kernel = stride = map / pooled, 1 when they are equal, and as
    GlobalAveragePool when pooled is 1),
    flattening (``"Flatten"`` or the traced ``"view"``), then classifier Linear–ReLU–Dropout ×2 and
    Linear. ``pooled`` defaults to the features' map size (7 at 224)."""
    z = _Zoo(f"vgg{depth}", "torch", opset, seed, width, input_size, batch=batch)
    x = _vgg_features(z, depth, torch_names=True)
    c, h, _ = z.shapes[x]
    pooled = pooled or h
    if h % pooled:
        raise ValueError(f"vgg{depth}: a {h}×{h} map does not pool evenly to {pooled}×{pooled}")
    if pooled == 1:
        x = z.global_ave_pool("avgpool", x)
    else:
        k = h // pooled
        x = z._node("AveragePool", [x], [z._top("avgpool")], (c, pooled, pooled), kernel_shape=[k, k],
                    strides=[k, k], pads=[0, 0, 0, 0], **({"ceil_mode": 0} if opset >= 10 else {}))
    x = z.flatten("flatten", x) if flatten == "Flatten" else z.flatten_view(x)
    width_fc = z.scaled(4096)
    x = z.dropout("classifier.2", z.relu("classifier.1", z.fc("classifier.0", x, width_fc)), mask=False)
    x = z.dropout("classifier.5", z.relu("classifier.4", z.fc("classifier.3", x, width_fc)), mask=False)
    return z.model(z.fc("classifier.6", x, num_classes))


def vgg16(opset=9, **kwargs):
    return vgg_torchvision(16, opset, **kwargs)


def vgg19(opset=9, **kwargs):
    """torchvision < 0.4 flattened with ``x.view(x.size(0), -1)``: traced as a Shape subgraph."""
    kwargs.setdefault("flatten", "view")
    return vgg_torchvision(19, opset, **kwargs)


# --- GoogLeNet / Inception ------------------------------------------------------------------------

def _googlenet(name, opset, width, input_size, num_classes, seed, batch):
    z = _Zoo(name, "caffe2", opset, seed, width, input_size, batch=batch)
    x = z.relu("conv1/relu_7x7", z.conv("conv1/7x7_s2", z.input, z.scaled(64), 7, stride=2, pad=3))
    x = z.lrn("pool1/norm1", z.max_pool("pool1/3x3_s2", x, 3, 2))
    x = z.relu("conv2/relu_3x3_reduce", z.conv("conv2/3x3_reduce", x, z.scaled(64), 1))
    x = z.relu("conv2/relu_3x3", z.conv("conv2/3x3", x, z.scaled(192), 3, pad=1))
    x = z.max_pool("pool2/3x3_s2", z.lrn("conv2/norm2", x), 3, 2)
    for spec in GOOGLENET_INCEPTIONS:
        x = z.max_pool(spec[0], x, 3, 2) if len(spec) == 1 else inception_module(z, spec[0], x, *spec[1:])
    x = z.dropout("pool5/drop_7x7_s1", z.ave_pool_whole("pool5/7x7_s1", x), ratio=0.4)
    return z.model(z.softmax("prob", z.fc("loss3/classifier", x, num_classes)))


def bvlc_googlenet(opset=9, width=1.0, input_size=224, num_classes=1000, seed=0, batch=1):
    """bvlc_googlenet without the auxiliary heads: stem with two LRNs, nine inception modules,
    pool5/7x7_s1 over the whole map, dropout 0.4, loss3/classifier, prob_1."""
    return _googlenet("bvlc_googlenet", opset, width, input_size, num_classes, seed, batch)


def inception_v1(opset=9, width=1.0, input_size=224, num_classes=1000, seed=0, batch=1):
    """Inception v1 (Caffe2's reproduction of GoogLeNet): the bvlc_googlenet layer pattern (the zoo
    describes it as such; its exact layer list was not confirmed)."""
    return _googlenet("inception_v1", opset, width, input_size, num_classes, seed, batch)


def _bn_inception(z, name, bottom, n1x1, n3x3_reduce, n3x3, d3x3_reduce, d3x3, pool, pool_proj, stride=1):
    """BN-Inception module (Ioffe & Szegedy 2015): conv–BN–Scale–ReLU branches 1×1 | 3×3 | double
    3×3 | pool (average 3×3 s1 pad 1 with a projection, or max pass-through in the stride-2
    modules), concatenated."""
    def branch(suffix, x, num_output, kernel, pad=0, s=1):
        return _conv_bn_scale_relu(z, f"{name}/{suffix}", x, num_output, kernel, stride=s, pad=pad)

    branches = []
    if n1x1:
        branches.append(branch("1x1", bottom, n1x1, 1))
    branches.append(branch("3x3", branch("3x3_reduce", bottom, n3x3_reduce, 1), n3x3, 3, pad=1, s=stride))
    x = branch("double3x3a", branch("double3x3_reduce", bottom, d3x3_reduce, 1), d3x3, 3, pad=1)
    branches.append(branch("double3x3b", x, d3x3, 3, pad=1, s=stride))
    if pool == "max":
        branches.append(z.max_pool(f"{name}/pool", bottom, 3, stride, legacy=False))
    else:
        branches.append(branch("pool_proj", z.ave_pool(f"{name}/pool", bottom, 3, 1, pad=1), pool_proj, 1))
    return z.concat(f"{name}/output", branches)


def _conv_bn_scale_relu(z, layer, bottom, num_output, kernel, stride=1, pad=0):
    """Caffe's Convolution (no bias) → BatchNorm → Scale → ReLU as Caffe2 holds it: SpatialBN into
    ``<layer>/bn``, Scale into ``<layer>/bn/sc`` (Mul, Add), ReLU in place."""
    x = z.conv(layer, bottom, z.scaled(num_output), kernel, stride=stride, pad=pad, bias=False)
    x = z.batch_norm(f"{layer}/bn", x, trivial_affine=True)
    x = z.scale(f"{layer}/bn/sc", x, top=f"{layer}/bn/sc")
    return z.relu(f"{layer}/relu", x)


def inception_v2(opset=9, width=1.0, input_size=224, num_classes=1000, seed=0, batch=1):
    """Inception v2 (Caffe2's BN-Inception, itself from Caffe: every conv is followed by BatchNorm
    and Scale), shortened: conv1 7×7 s2, pool, conv2 reduce and 3×3, pool (max 3×3 s2 with the
    pad_b/pad_r = 1 the Caffe2 net carries), inception_3a, 3b, 3c (stride 2, max-pool pass-through),
    4a, global average pool, fc, prob_1. (The full net continues 4b–4e and 5a/5b.)"""
    z = _Zoo("inception_v2", "caffe2", opset, seed, width, input_size, batch=batch)
    x = _conv_bn_scale_relu(z, "conv1/7x7_s2", z.input, 64, 7, stride=2, pad=3)
    x = z.max_pool("pool1/3x3_s2", x, 3, 2, legacy=False)
    x = _conv_bn_scale_relu(z, "conv2/3x3_reduce", x, 64, 1)
    x = _conv_bn_scale_relu(z, "conv2/3x3", x, 192, 3, pad=1)
    x = z.max_pool("pool2/3x3_s2", x, 3, 2, legacy=False)
    x = _bn_inception(z, "inception_3a", x, 64, 64, 64, 64, 96, "ave", 32)
    x = _bn_inception(z, "inception_3b", x, 64, 64, 96, 64, 96, "ave", 64)
    x = _bn_inception(z, "inception_3c", x, 0, 128, 160, 64, 96, "max", 0, stride=2)
    x = _bn_inception(z, "inception_4a", x, 224, 64, 96, 96, 128, "ave", 128)
    x = z.global_ave_pool("pool5/7x7_s1", x)
    return z.model(z.softmax("prob", z.fc("fc", x, num_classes)))


# --- DenseNet-121 ---------------------------------------------------------------------------------

def densenet121(opset=9, width=1.0, input_size=224, num_classes=1000, seed=0, batch=1, blocks=(2, 2),
                growth=32):
    """DenseNet-121 as Caffe (shicai/DenseNet-Caffe) → Caffe2 → ONNX, shortened to ``blocks`` dense
    layers per block (121 has 6, 12, 24, 16): every BatchNorm is a trivial-affine
    BatchNormalization followed by a Scale layer (Mul, Add); dense layers are BN–Scale–ReLU–conv 1×1
    (4k) and BN–Scale–ReLU–conv 3×3 (k), concatenated onto their input; transitions halve the
    channels with a 1×1 conv and average-pool 2×2 s2; pools round down (Caffe2's net has no
    legacy_pad); the classifier is pool5 (GlobalAveragePool) and fc6, a 1×1 convolution with bias:
    the output fc6_1 is (1, classes, 1, 1), no softmax."""
    z = _Zoo("densenet121", "caffe2", opset, seed, width, input_size, batch=batch)
    k = z.scaled(growth)

    def bn_scale_relu(layer, x):
        x = z.batch_norm(f"{layer}/bn", x, trivial_affine=True)
        return z.relu(f"relu{layer}", z.scale(f"{layer}/scale", x))

    x = z.conv("conv1", z.input, z.scaled(64), 7, stride=2, pad=3, bias=False)
    x = z.max_pool("pool1", bn_scale_relu("conv1", x), 3, 2, pad=1, ceil=False)
    for b, layers in enumerate(blocks, start=2):
        for i in range(1, layers + 1):
            name = f"conv{b}_{i}"
            y = z.conv(f"{name}/x1", bn_scale_relu(f"{name}/x1", x), 4 * k, 1, bias=False)
            y = z.conv(f"{name}/x2", bn_scale_relu(f"{name}/x2", y), k, 3, pad=1, bias=False)
            x = z.concat(f"concat_{b}_{i}", [x, y])
        if b < len(blocks) + 1:
            y = z.conv(f"conv{b}_blk", bn_scale_relu(f"conv{b}_blk", x), z.shapes[x][0] // 2, 1, bias=False)
            x = z.ave_pool(f"pool{b}", y, 2, 2, ceil=False)
    x = bn_scale_relu("conv5_blk", x)
    x = z.global_ave_pool("pool5", x)
    return z.model(z.conv("fc6", x, num_classes, 1))


# --- ResNet-50 ------------------------------------------------------------------------------------

RESNET50_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))   # bottleneck width, blocks (256·… out)


def resnet50_caffe2(opset=9, width=1.0, input_size=224, num_classes=1000, seed=0, batch=1, blocks=(1, 1, 1, 1)):
    """ResNet-50 as Caffe2's resnet50_trainer builds it (gpu_0/ names), shortened to ``blocks``
    bottlenecks per stage (50 has 3, 4, 6, 3): conv1 7×7 s2 without bias, SpatialBN, ReLU, max pool
    3×3 s2 pad 1 (rounding down); bottlenecks 1×1 → 3×3 (stride here) → 1×1 ×4, each with
    SpatialBN, a projection shortcut (1×1 conv + BN) in each stage's first block, joined by a Sum
    into the branch's blob then ReLU in place; pool5 average over the whole map (7×7 at 224), pred
    (FC), softmax_1."""
    z = _Zoo("resnet50_caffe2", "caffe2", opset, seed, width, input_size, batch=batch, prefix="gpu_0/")
    x = z.relu("relu1", z.batch_norm("res_conv1_bn", z.conv("conv1", z.input, z.scaled(64), 7, stride=2, pad=3,
                                                              bias=False)))
    x = z.max_pool("pool1", x, 3, 2, pad=1, ceil=False)
    for s, ((channels, _), n_blocks) in enumerate(zip(RESNET50_STAGES, blocks), start=2):
        for i in range(n_blocks):
            name = f"res{s}_{i}"
            stride = 2 if (i == 0 and s > 2) else 1
            y = z.relu(f"{name}_branch2a_relu", z.batch_norm(f"{name}_branch2a_bn", z.conv(
                f"{name}_branch2a", x, z.scaled(channels), 1, bias=False)))
            y = z.relu(f"{name}_branch2b_relu", z.batch_norm(f"{name}_branch2b_bn", z.conv(
                f"{name}_branch2b", y, z.scaled(channels), 3, stride=stride, pad=1, bias=False)))
            y = z.batch_norm(f"{name}_branch2c_bn", z.conv(f"{name}_branch2c", y, z.scaled(4 * channels), 1,
                                                            bias=False))
            shortcut = x
            if i == 0:
                shortcut = z.batch_norm(f"{name}_branch1_bn", z.conv(f"{name}_branch1", x, z.scaled(4 * channels), 1,
                                                                      stride=stride, bias=False))
            x = z.relu(f"{name}_relu", z.sum(f"{name}_sum", [y, shortcut], top=f"{name}_branch2c_bn"))
    x = z.ave_pool_whole("pool5", x)
    return z.model(z.softmax("softmax", z.fc("pred", x, num_classes)))


def _resnet_mxnet(version, opset, width, input_size, num_classes, seed, batch, blocks):
    net = f"resnetv{version}"
    z = _Zoo(f"resnet50_v{version}", "mxnet", opset, seed, width, input_size, batch=batch,
             net_prefix=f"{net}{'1' if version == 1 else '2'}7_")
    counters = {}

    def layer(kind, stage=None):
        """Gluon's layer names: <scope><kind><k>, k counting per scope and kind."""
        key = (f"stage{stage}_" if stage else "") + kind
        counters[key] = counters.get(key, -1) + 1
        return f"{key}{counters[key]}"

    def conv(x, channels, kernel, stride=1, pad=0, stage=None):
        return z.conv(layer("conv", stage), x, z.scaled(channels), kernel, stride=stride, pad=pad, bias=False)

    def bn(x, stage=None, trivial=False):
        return z.batch_norm(layer("batchnorm", stage), x, trivial_affine=trivial)

    def relu(x, stage=None):
        return z.relu(layer("relu", stage), x)

    x = z.input
    if version == 2:
        x = bn(x, trivial=True)    # gluon's v2 normalises the input with BatchNorm(scale=False, center=False)
    x = conv(x, 64, 7, stride=2, pad=3)
    x = relu(bn(x))
    x = z.max_pool("pool0", x, 3, 2, pad=1, ceil=False)
    for s, ((channels, _), n_blocks) in enumerate(zip(RESNET50_STAGES, blocks), start=1):
        for i in range(n_blocks):
            stride = 2 if (i == 0 and s > 1) else 1
            if version == 1:
                y = relu(bn(conv(x, channels, 1, stride=stride, stage=s), s), s)
                y = relu(bn(conv(y, channels, 3, pad=1, stage=s), s), s)
                y = bn(conv(y, 4 * channels, 1, stage=s), s)
                shortcut = bn(conv(x, 4 * channels, 1, stride=stride, stage=s), s) if i == 0 else x
                x = relu(z.add(layer("add", s), y, shortcut), s)
            else:
                pre = relu(bn(x, s), s)
                y = conv(pre, channels, 1, stage=s)
                y = conv(relu(bn(y, s), s), channels, 3, stride=stride, pad=1, stage=s)
                y = conv(relu(bn(y, s), s), 4 * channels, 1, stage=s)
                shortcut = conv(pre, 4 * channels, 1, stride=stride, stage=s) if i == 0 else x
                x = z.add(layer("add", s), y, shortcut)
    if version == 2:
        x = relu(bn(x))
    x = z.flatten("flatten0", z.global_ave_pool("pool1", x))
    return z.model(z.fc("dense0", x, num_classes))


def resnet50_v1(opset=7, width=1.0, input_size=224, num_classes=1000, seed=0, batch=1, blocks=(1, 1, 1, 1)):
    """Gluon's ResNet-50 v1 exported by MXNet (resnet50-v1-7): stride in each stage's first 1×1,
    post-activation bottlenecks joined by Add then ReLU; GlobalAveragePool, Flatten, dense0 (Gemm);
    no softmax. Shortened to ``blocks`` bottlenecks per stage."""
    return _resnet_mxnet(1, opset, width, input_size, num_classes, seed, batch, blocks)


def resnet50_v2(opset=7, width=1.0, input_size=224, num_classes=1000, seed=0, batch=1, blocks=(1, 1, 1, 1)):
    """Gluon's ResNet-50 v2 exported by MXNet (resnet50-v2-7): a BatchNorm on the input itself,
    pre-activation bottlenecks (BN–ReLU–conv ×3, the shortcut projecting the pre-activated input,
    stride in the 3×3), a final BN–ReLU, GlobalAveragePool, Flatten, dense0."""
    return _resnet_mxnet(2, opset, width, input_size, num_classes, seed, batch, blocks)


# --- SqueezeNet -----------------------------------------------------------------------------------

SQUEEZENET_FIRES = {  # squeeze, expand 1×1, expand 3×3
    2: (16, 64, 64), 3: (16, 64, 64), 4: (32, 128, 128), 5: (32, 128, 128),
    6: (48, 192, 192), 7: (48, 192, 192), 8: (64, 256, 256), 9: (64, 256, 256),
}


def _fire(z, name, bottom, squeeze, e1, e3):
    s = z.relu(f"{name}/relu_squeeze1x1", z.conv(f"{name}/squeeze1x1", bottom, z.scaled(squeeze), 1))
    a = z.relu(f"{name}/relu_expand1x1", z.conv(f"{name}/expand1x1", s, z.scaled(e1), 1))
    b = z.relu(f"{name}/relu_expand3x3", z.conv(f"{name}/expand3x3", s, z.scaled(e3), 3, pad=1))
    return z.concat(f"{name}/concat", [a, b])


def squeezenet1_0(opset=9, width=1.0, input_size=224, num_classes=1000, seed=0, batch=1):
    """SqueezeNet 1.0 (Caffe → Caffe2): conv1 96 7×7 s2, max pools 3×3 s2 (Caffe's ceil) after conv1,
    fire4 and fire8, fire2–9, drop9, conv10 1×1 to the classes, ReLU, pool10 global average, and
    Softmax on the (1, classes, 1, 1) map (opset < 13's 2-D coercion at axis 1): softmaxout_1."""
    z = _Zoo("squeezenet1_0", "caffe2", opset, seed, width, input_size, batch=batch)
    x = z.max_pool("pool1", z.relu("relu_conv1", z.conv("conv1", z.input, z.scaled(96), 7, stride=2)), 3, 2)
    for f in range(2, 10):
        x = _fire(z, f"fire{f}", x, *SQUEEZENET_FIRES[f])
        if f in (4, 8):
            x = z.max_pool(f"pool{f}", x, 3, 2)
    x = z.dropout("drop9", x)
    x = z.relu("relu_conv10", z.conv("conv10", x, num_classes, 1))
    return z.model(z.softmax("softmaxout", z.global_ave_pool("pool10", x)))


def squeezenet1_1(opset=7, width=1.0, input_size=224, num_classes=1000, seed=0, batch=1):
    """SqueezeNet 1.1 (Gluon → MXNet → ONNX): conv 64 3×3 s2, max pools 3×3 s2 after conv1, fire3 and
    fire5 (exported without Gluon's ceil_mode: MXNet's exporter had no ceil pooling at opset 7),
    dropout, conv 1×1 to the classes, ReLU, average pool over the whole map, Flatten; no softmax."""
    z = _Zoo("squeezenet1_1", "mxnet", opset, seed, width, input_size, batch=batch, net_prefix="squeezenet0_")
    x = z.relu("relu0", z.conv("conv0", z.input, z.scaled(64), 3, stride=2))
    x = z.max_pool("pool0", x, 3, 2, ceil=False)
    for f in range(2, 10):
        x = _fire(z, f"fire{f}", x, *SQUEEZENET_FIRES[f])
        if f in (3, 5):
            x = z.max_pool(f"pool{f}", x, 3, 2, ceil=False)
    x = z.dropout("dropout0", x, mask=False)
    x = z.relu("relu_final", z.conv("conv_final", x, num_classes, 1))
    return z.model(z.flatten("flatten0", z.ave_pool_whole("pool_final", x)))


# --- ShuffleNet -----------------------------------------------------------------------------------

def shufflenet(opset=9, width=1.0, input_size=224, num_classes=1000, seed=0, batch=1, groups=3,
               blocks=(1, 1)):
    """ShuffleNet v1 (Caffe2, g = 3), shortened to two stages of ``blocks`` stride-1 units after
    each stride-2 unit (the full net has three stages of 3, 7, 3): conv1 3×3 s2–BN–ReLU, max pool
    3×3 s2 pad 1; a unit is group conv 1×1–BN–ReLU, channel shuffle, depthwise 3×3 (stride)–BN,
    group conv 1×1–BN, then Sum with the input (stride 1) or Concat with a 3×3 s2 average pool of
    it (stride 2), then ReLU; global average (whole-map AveragePool), FC, softmax_1."""
    z = _Zoo("shufflenet", "caffe2", opset, seed, width, input_size, batch=batch)
    if groups != 3:
        raise ValueError("shufflenet: the zoo's file has g = 3")
    x = z.relu("conv1_relu", z.batch_norm("conv1_bn", z.conv("conv1", z.input, z.scaled(24, groups), 3, stride=2,
                                                             pad=1, bias=False)))
    x = z.max_pool("pool1", x, 3, 2, pad=1, ceil=False)
    for s, (base, n) in enumerate(zip((240, 480), blocks), start=2):
        channels, bottleneck = z.scaled(base, groups), z.scaled(base // 4, groups)
        for i in range(n + 1):
            name = f"gconv{s}_{i}"
            stride = 2 if i == 0 else 1
            c_out = channels - z.shapes[x][0] if stride == 2 else channels   # stride 2 concatenates x
            first_group = 1 if (s == 2 and i == 0) else groups               # conv1's 24 maps are not grouped
            y = z.relu(f"{name}_1_relu", z.batch_norm(f"{name}_1_bn", z.conv(
                f"{name}_1", x, bottleneck, 1, group=first_group, bias=False)))
            y = z.channel_shuffle(f"shuffle{s}_{i}", y, groups)
            y = z.batch_norm(f"{name}_dw_bn", z.conv(f"{name}_dw", y, bottleneck, 3, stride=stride, pad=1,
                                                     group=bottleneck, bias=False))
            y = z.batch_norm(f"{name}_2_bn", z.conv(f"{name}_2", y, c_out, 1, group=groups, bias=False))
            if stride == 2:
                x = z.concat(f"concat{s}_{i}", [y, z.ave_pool(f"pool{s}_{i}", x, 3, 2, pad=1, ceil=False)])
            else:
                x = z.sum(f"sum{s}_{i}", [y, x])
            x = z.relu(f"relu{s}_{i}", x)
    x = z.ave_pool_whole("pool_ave", x)
    return z.model(z.softmax("softmax", z.fc("fc", x, num_classes)))


def shufflenet_v2(opset=10, width=1.0, input_size=224, num_classes=1000, seed=0, batch=1, blocks=(1, 1)):
    """torchvision's ShuffleNet v2 ×1.0 exported by torch.onnx at opset 10, shortened to ``blocks``
    stride-1 units after each stride-2 unit in two stages (the full net: 3 stages of 3, 7, 3):
    conv1 3×3 s2–BN–ReLU, max pool; a stride-2 unit concatenates branch1 (depthwise 3×3 s2–BN,
    1×1–BN–ReLU) and branch2 (1×1–BN–ReLU, depthwise 3×3 s2–BN, 1×1–BN–ReLU); a stride-1 unit Splits
    the channels in two and runs branch2 on the second half; each unit ends in channel_shuffle
    (Reshape by Constant shapes, Transpose, Reshape); conv5 1×1–BN–ReLU, mean over H and W
    (ReduceMean), fc (Gemm)."""
    z = _Zoo("shufflenet_v2", "torch", opset, seed, width, input_size, batch=batch)

    def cbr(layer, x, channels, kernel, stride=1, pad=0, group=1, relu=True):
        x = z.batch_norm(f"{layer}.1", z.conv(f"{layer}.0", x, channels, kernel, stride=stride, pad=pad,
                                                group=group, bias=False))
        return z.relu(f"{layer}.2", x) if relu else x

    x = cbr("conv1", z.input, z.scaled(24), 3, stride=2, pad=1)
    x = z.max_pool("maxpool", x, 3, 2, pad=1, ceil=False)
    for s, (channels, n) in enumerate(zip((116, 232), blocks), start=2):
        half = z.scaled(channels // 2)
        for i in range(n + 1):
            name = f"stage{s}.{i}"
            if i == 0:
                c_in = z.shapes[x][0]
                left = cbr(f"{name}.branch1.0", x, c_in, 3, stride=2, pad=1, group=c_in, relu=False)
                left = cbr(f"{name}.branch1.2", left, half, 1)
                right = x
                stride = 2
            else:
                left, right = z.split(f"{name}.chunk", x)
                stride = 1
            right = cbr(f"{name}.branch2.0", right, half, 1)
            right = cbr(f"{name}.branch2.3", right, half, 3, stride=stride, pad=1, group=half, relu=False)
            right = cbr(f"{name}.branch2.5", right, half, 1)
            x = z.channel_shuffle(f"{name}.shuffle", z.concat(f"{name}.cat", [left, right]), 2)
    x = cbr("conv5", x, z.scaled(1024), 1)
    return z.model(z.fc("fc", z.reduce_mean("mean", x), num_classes))


# --- registry -------------------------------------------------------------------------------------

ZOO = {
    "bvlc_alexnet": bvlc_alexnet,
    "bvlc_reference_caffenet": bvlc_reference_caffenet,
    "bvlc_reference_rcnn_ilsvrc13": bvlc_reference_rcnn_ilsvrc13,
    "bvlc_googlenet": bvlc_googlenet,
    "inception_v1": inception_v1,
    "inception_v2": inception_v2,
    "densenet121": densenet121,
    "resnet50_caffe2": resnet50_caffe2,
    "resnet50_v1": resnet50_v1,
    "resnet50_v2": resnet50_v2,
    "squeezenet1_0": squeezenet1_0,
    "squeezenet1_1": squeezenet1_1,
    "shufflenet": shufflenet,
    "shufflenet_v2": shufflenet_v2,
    "vgg16": vgg16,
    "vgg19": vgg19,
    "vgg19_caffe2": vgg19_caffe2,
    "zfnet512": zfnet512,
}


def logits_blob(model: onnx.ModelProto) -> str:
    """The blob the final Softmax reads, or the graph output when there is no Softmax."""
    softmaxes = [n for n in model.graph.node if n.op_type == "Softmax"]
    return softmaxes[-1].input[0] if softmaxes else model.graph.output[0].name
