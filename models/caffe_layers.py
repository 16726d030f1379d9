"""Caffe's layer factory for the ONNX conversion: one converter per Caffe layer type.

Each converter takes a ``LayerWriter`` (the layer's bottoms, tops and Caffe shapes, and helpers
that add ONNX nodes and initializers under the layer's name), writes nodes that compute what the
layer's ``Forward_cpu`` computes, and returns the Caffe shapes of the layer's tops. Each docstring
says which Caffe behaviour it reproduces. ``LAYER_CONVERTERS`` maps a Caffe type to its
converter: a new layer type is one function and one line there.

The net around the layers — state rules, blob bookkeeping, weights, the assembled model and its
naming contract — is ``caffe_net``; this module does not import it (a ``LayerWriter`` reaches
the net being converted through the object it is given).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from onnx import TensorProto, helper

from caffe_port.errors import ModelError

from . import caffe_proto
from .caffe_fillers import check_filler, constant_filler


# --- Caffe's pooling geometry ----------------------------------------------------------------

def pooled_shape(size, kernel, pad, stride, ceil_mode=True) -> tuple:
    """Caffe's PoolingLayer::Reshape for each spatial axis:

        pooled = ceil((size + 2·pad − kernel) / stride) + 1      (floor with round_mode FLOOR)

    then, if any pad is non-zero, one less on an axis whose last window would start at or beyond
    size + pad (so every window starts inside the image or its leading pad).
    """
    rounding = math.ceil if ceil_mode else math.floor
    pooled = [int(rounding((n + 2 * p - k) / s)) + 1
              for n, k, p, s in zip(size, kernel, pad, stride)]
    if any(pad):
        pooled = [q - 1 if (q - 1) * s >= n + p else q
                  for q, n, p, s in zip(pooled, size, pad, stride)]
    return tuple(pooled)


# --- fillers -----------------------------------------------------------------------------------

def _filler(owner, field, default=0.0):
    """The ``FillerParameter`` a blob starts from: ``owner.field`` as the prototxt gives it, or
    the layer's default when it gives none (Caffe's default filler is constant 0; Scale picks 1,
    PReLU 0.25)."""
    if not owner.HasField(field):
        return constant_filler(default)
    return getattr(owner, field)


# --- what a converter is given ------------------------------------------------------------------

class LayerWriter:
    """One Caffe layer being written as ONNX: its bottoms and tops (tensor names and Caffe
    shapes) and helpers that add nodes and initializers under the layer's name.

    ``net`` is the net being converted (``caffe_net.NetConverter``); converters reach it only
    through this class, which uses its ``source`` and ``state`` (for messages and the phase),
    ``current``/``shapes``/``version_name`` (the tensor and Caffe shape of each blob),
    ``unique``/``add_initializer``/``nodes`` (the graph being built), ``weights.take`` (param
    blobs), ``inputs`` and ``batch_fixed_by``. After the converter ran, ``nodes``, ``params``,
    ``param_shapes`` and ``derived`` describe the layer for the model's metadata."""

    def __init__(self, net, param):
        self.net = net
        self.param = param
        self.name = param.name
        self.type = param.type
        self.bottoms = [net.current[b] for b in param.bottom]
        self.shapes = [net.shapes[b] for b in param.bottom]
        self.tops = [net.version_name(t, param.name) for t in param.top]
        self.nodes, self.params, self.param_shapes, self.derived = [], [], [], {}
        self.arrays = []

    @property
    def source(self):
        """The prototxt the layer comes from, for messages."""
        return self.net.source

    @property
    def phase(self):
        """The net's phase: 0 TRAIN, 1 TEST (Caffe's Phase numbers)."""
        return self.net.state.phase

    def fail(self, message):
        raise ModelError(f"{self.source}: layer {self.name!r} ({self.type}): {message}")

    def count(self, bottoms=None, tops=None):
        """Caffe's ExactNumBottomBlobs / ExactNumTopBlobs checks (an int or a (min, max) pair)."""
        for what, expected, actual in (("bottom", bottoms, len(self.bottoms)),
                                       ("top", tops, len(self.tops))):
            if expected is None:
                continue
            low, high = expected if isinstance(expected, tuple) else (expected, expected)
            if not low <= actual <= (high if high is not None else actual):
                wanted = f"{low}" if low == high else f"{low} to {high}" if high else f"{low} or more"
                self.fail(f"takes {wanted} {what} blob(s), has {actual}")

    def axis(self, axis, ndim):
        """Caffe's CanonicalAxisIndex: −ndim ≤ axis < ndim, negative counting from the end."""
        if not -ndim <= axis < ndim:
            self.fail(f"axis {axis} is out of range for a {ndim}-axis blob")
        return axis % ndim

    def fix_batch(self, why):
        """The batch cannot stay symbolic because of this layer (the metadata names the first
        such layer)."""
        self.net.batch_fixed_by = self.net.batch_fixed_by or f"{self.name} ({why})"

    def declare_input(self, blob, tensor, shape):
        """Make ``tensor`` (Caffe blob ``blob`` of ``shape``) a net input."""
        self.net.inputs.append((blob, tensor, shape))

    def declare_source(self, blob, tensor, shape, filler):
        """Make ``tensor`` (Caffe blob ``blob`` of ``shape``) a data source: a net input that
        the layer fills with ``filler`` (DummyData), not one the user feeds."""
        self.net.sources.append((blob, tensor, shape, filler))

    def helper_name(self, what):
        """A fresh tensor name ``<layer>/<what>`` (``~k`` appended while the name is taken)."""
        return self.net.unique(f"{self.name}/{what}")

    def weights(self, specs) -> list:
        """Register the layer's Caffe param blobs ``<layer>#<i>``; specs: [(shape, filler)], a
        filler a ``FillerParameter`` or the value of a constant one. Returns the initializer
        names; the arrays are in ``self.arrays``."""
        shapes = [tuple(int(d) for d in shape) for shape, _ in specs]
        fillers = [f if isinstance(f, caffe_proto.FillerParameter) else constant_filler(f)
                   for _, f in specs]
        self.arrays = self.net.weights.take(self, list(zip(shapes, fillers)))
        names = []
        for i, (shape, array) in enumerate(zip(shapes, self.arrays)):
            names.append(self.net.add_initializer(f"{self.name}#{i}", array))
            self.param_shapes.append(list(shape))
        self.params = names
        return names

    def derive(self, i, what, array, how):
        """A derived initializer ``<layer>#<i>/<what>`` computed from param blob i."""
        name = self.net.add_initializer(f"{self.name}#{i}/{what}", array)
        self.derived[name] = how
        return name

    def const(self, what, array):
        """A helper constant ``<layer>/<what>`` (shapes, pads, coefficients)."""
        return self.net.add_initializer(f"{self.name}/{what}", array)

    def node(self, op_type, inputs, *, what=None, outputs=None, **attrs):
        """Add a node: the main one (``what`` None) is named after the layer and writes the
        layer's tops unless ``outputs`` says otherwise; a helper is ``<layer>/<what>`` and writes
        the tensor of the same name. Returns the first output's name."""
        name = self.name if what is None else self.helper_name(what)
        if outputs is None:
            outputs = list(self.tops) if what is None else [name]
        self.net.nodes.append(helper.make_node(op_type, list(inputs), list(outputs),
                                               name=name, **attrs))
        self.nodes.append(name)
        return outputs[0]

    def broadcastable(self, i, tensor_name, array, axis, ndim):
        """Param blob i (covering axes axis..axis+array.ndim of a ndim-axis bottom) as ONNX
        broadcasting needs it: as is when it ends at the last axis, else reshaped with trailing
        1s into ``<layer>#<i>/reshape``."""
        trailing = ndim - axis - array.ndim
        if trailing <= 0:
            return tensor_name
        return self.derive(i, "reshape", np.reshape(array, array.shape + (1,) * trailing),
                           f"{tensor_name} reshaped to {list(array.shape) + [1] * trailing}")


# --- layer converters: one per Caffe type -----------------------------------------------------
# Each takes a LayerWriter, adds nodes, and returns the Caffe shapes of the layer's tops.

def _input(layer):
    """Input: each top is a net input of the declared shape (one shape for all tops, or one
    per top), as Caffe's InputLayer."""
    shapes = layer.param.input_param.shape
    if len(shapes) not in (1, len(layer.tops)):
        layer.fail(f"{len(shapes)} input_param shapes for {len(layer.tops)} tops")
    result = []
    for i, (blob, tensor) in enumerate(zip(layer.param.top, layer.tops)):
        shape = tuple(int(d) for d in shapes[min(i, len(shapes) - 1)].dim)
        layer.declare_input(blob, tensor, shape)
        result.append(shape)
    return result


def _spatial(layer, what, values, hw, default, n_spatial):
    """Caffe's per-axis convolution settings: ``<what>_h``/``<what>_w`` (2D only) or a repeated
    ``<what>`` with one value for all axes or one per axis, else ``default``."""
    h, w = hw
    if h is not None or w is not None:
        if h is None or w is None or n_spatial != 2 or len(values):
            layer.fail(f"{what}_h and {what}_w go together, for 2D only, without {what}")
        return [int(h), int(w)]
    if not len(values):
        if default is None:
            layer.fail(f"{what} is required")
        return [default] * n_spatial
    if len(values) not in (1, n_spatial):
        layer.fail(f"{what} has {len(values)} values for {n_spatial} spatial axes")
    return [int(v) for v in values] * (n_spatial if len(values) == 1 else 1)


def _positive(layer, **settings):
    """Caffe's CHECK_GT(…, 0) on kernel sizes, strides, dilations and output counts: a zero
    would divide by zero in the output size or make an empty blob."""
    for what, values in settings.items():
        if any(v < 1 for v in values):
            layer.fail(f"{what} must be positive, got {values[0] if len(values) == 1 else values}")


def _optional(message, field):
    return getattr(message, field) if message.HasField(field) else None


def _convolution(layer):
    """Convolution: y = W ∗ x + b with groups, pad/stride/dilation (``_h``/``_w`` or per-axis
    lists), output (size + 2·pad − (dilation·(kernel − 1) + 1)) / stride + 1, floored — the
    same arithmetic as ONNX Conv. W is (num_output, C / group, *kernel), b is (num_output,)."""
    layer.count(bottoms=1, tops=1)
    p = layer.param.convolution_param
    shape = layer.shapes[0]
    if layer.axis(p.axis, len(shape)) != 1:
        layer.fail("only channel axis 1 is supported")
    n_spatial = len(shape) - 2
    if n_spatial < 1:
        layer.fail(f"needs a blob with spatial axes, got shape {shape}")
    kernel = _spatial(layer, "kernel", p.kernel_size,
                      (_optional(p, "kernel_h"), _optional(p, "kernel_w")), None, n_spatial)
    pad = _spatial(layer, "pad", p.pad, (_optional(p, "pad_h"), _optional(p, "pad_w")), 0, n_spatial)
    stride = _spatial(layer, "stride", p.stride,
                      (_optional(p, "stride_h"), _optional(p, "stride_w")), 1, n_spatial)
    dilation = _spatial(layer, "dilation", p.dilation, (None, None), 1, n_spatial)
    _positive(layer, kernel=kernel, stride=stride, dilation=dilation, num_output=[p.num_output])
    channels, group = shape[1], p.group
    if group < 1 or channels % group or p.num_output % group:
        layer.fail(f"group {group} must divide the {channels} input channels and "
                   f"num_output {p.num_output}")
    specs = [((p.num_output, channels // group, *kernel), _filler(p, "weight_filler"))]
    if p.bias_term:
        specs.append(((p.num_output,), _filler(p, "bias_filler")))
    names = layer.weights(specs)
    out = [(n + 2 * q - (d * (k - 1) + 1)) // s + 1
           for n, k, q, s, d in zip(shape[2:], kernel, pad, stride, dilation)]
    layer.node("Conv", [layer.bottoms[0], *names], kernel_shape=kernel, pads=pad + pad,
               strides=stride, dilations=dilation, group=group)
    return [(shape[0], p.num_output, *out)]


def _round_mode_ceil(layer, p) -> bool:
    """Upstream ``round_mode`` (CEIL/FLOOR) or a fork's ``ceil_mode`` (bool); ceil by default."""
    if p.HasField("round_mode") and p.HasField("ceil_mode"):
        if (p.round_mode == 0) != p.ceil_mode:
            layer.fail("round_mode and ceil_mode disagree")
    if p.HasField("round_mode"):
        return p.round_mode == 0
    return p.ceil_mode


def _pool_geometry(layer, p):
    """(kernel, pad, stride) per axis from Caffe's square (``kernel_size``, ``pad``, ``stride``)
    or rectangular (``*_h`` and ``*_w``, together) settings; a kernel is required."""
    def pair(square, rectangular, default):
        h, w = _optional(p, f"{rectangular}_h"), _optional(p, f"{rectangular}_w")
        if h is not None or w is not None:
            if h is None or w is None or p.HasField(square):
                layer.fail(f"give {square}, or {rectangular}_h and {rectangular}_w together")
            return [int(h), int(w)]
        if default is None and not p.HasField(square):
            layer.fail(f"{square} (or {rectangular}_h and {rectangular}_w) is required")
        return [int(getattr(p, square))] * 2
    return pair("kernel_size", "kernel", None), pair("pad", "pad", 0), pair("stride", "stride", 1)


def _caffe_average_pool(layer, x, size, kernel, pad, stride, pooled, *, what=None):
    """Caffe's AVE pooling: each window is clipped to the padded image [−pad, size + pad), its
    area is the divisor, and only real pixels are summed. Encoded as an explicit zero Pad
    (``<layer>/pad``) and an AveragePool with count_include_pad=0, floor rounding and extra end
    pads so that it yields ``pooled`` windows: on the padded tensor ONNX then counts exactly the
    in-window elements up to size + 2·pad, which is Caffe's divisor."""
    if any(pad):
        x = layer.node("Pad", [x, layer.const("pads", np.array([0, 0, *pad, 0, 0, *pad], np.int64))],
                       what="pad", mode="constant")
    padded = [n + 2 * q for n, q in zip(size, pad)]
    end = [max(0, (o - 1) * s + k - n) for o, s, k, n in zip(pooled, stride, kernel, padded)]
    if any(e >= k for e, k in zip(end, kernel)):
        layer.fail("its last window lies wholly outside the input (kernel < stride without pad); "
                   "Caffe would average an empty window")
    return layer.node("AveragePool", [x], what=what, kernel_shape=kernel, strides=stride,
                      pads=[0, 0, *end], count_include_pad=0)


def _pooling(layer):
    """Pooling, MAX or AVE, exactly as Caffe's PoolingLayer: output size from ``pooled_shape``
    (ceil rounding by default, with Caffe's clip of a last window starting in the end padding).

    MAX takes the largest real pixel of each window (padding never wins): a MaxPool with the
    leading pad as given and an end pad grown until floor rounding gives Caffe's window count.
    AVE: see ``_caffe_average_pool``. ``global_pooling``: GlobalMaxPool / GlobalAveragePool.
    """
    layer.count(bottoms=1, tops=1)
    p = layer.param.pooling_param
    shape = layer.shapes[0]
    if len(shape) != 4:
        layer.fail(f"Caffe pools 4-axis blobs (N, C, H, W), got shape {shape}")
    method = caffe_proto.PoolingParameter.PoolMethod.Name(p.pool)
    if method not in ("MAX", "AVE"):
        layer.fail(f"{method} pooling is not supported (MAX and AVE are)")
    if p.global_pooling:
        if p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField("kernel_w"):
            layer.fail("with global_pooling the kernel size cannot be given")
        pad_stride = [p.pad, p.pad_h, p.pad_w, p.stride, p.stride_h or 1, p.stride_w or 1]
        if pad_stride != [0, 0, 0, 1, 1, 1]:
            layer.fail("with global_pooling pad must be 0 and stride 1")
        layer.node("GlobalMaxPool" if method == "MAX" else "GlobalAveragePool", [layer.bottoms[0]])
        return [(shape[0], shape[1], 1, 1)]
    kernel, pad, stride = _pool_geometry(layer, p)
    _positive(layer, kernel=kernel, stride=stride)
    if any(q >= k for q, k in zip(pad, kernel)):
        layer.fail(f"pad {pad} must be smaller than kernel {kernel}")
    size = list(shape[2:])
    if any(n + 2 * q < k for n, q, k in zip(size, pad, kernel)):
        layer.fail(f"kernel {kernel} is larger than the padded input {size} + 2·{pad}")
    pooled = list(pooled_shape(size, kernel, pad, stride, _round_mode_ceil(layer, p)))
    if method == "AVE":
        _caffe_average_pool(layer, layer.bottoms[0], size, kernel, pad, stride, pooled)
    else:
        end = [max(0, (o - 1) * s + k - n - q)
               for o, s, k, n, q in zip(pooled, stride, kernel, size, pad)]
        if any(e >= k for e, k in zip(end, kernel)):
            layer.fail("its last window lies wholly outside the input (kernel < stride without "
                       "pad); Caffe would take the max of an empty window")
        layer.node("MaxPool", [layer.bottoms[0]], kernel_shape=kernel, strides=stride,
                   pads=[*pad, *end])
    return [(shape[0], shape[1], *pooled)]


def _lrn(layer):
    """LRN. ACROSS_CHANNELS: y = x / (k + α/n · Σ_{n channels around c} x²)^β, which is ONNX LRN
    (size n, bias k). WITHIN_CHANNEL: Caffe's composite of layers, y = x · (1 + α·avg(x²))^(−β)
    with avg its AVE pooling over n×n (pad (n−1)/2, stride 1; k unused), written as
    Mul → Pad → AveragePool → Mul(α) → Add(1) → Pow(β) → Div. n must be odd (Caffe checks it)."""
    layer.count(bottoms=1, tops=1)
    p = layer.param.lrn_param
    shape = layer.shapes[0]
    n = int(p.local_size)
    if n % 2 == 0:
        layer.fail(f"local_size {n} must be odd (Caffe's LRN supports odd sizes only)")
    region = caffe_proto.LRNParameter.NormRegion.Name(p.norm_region)
    if region == "ACROSS_CHANNELS":
        layer.node("LRN", [layer.bottoms[0]], size=n, alpha=float(p.alpha), beta=float(p.beta),
                   bias=float(p.k))
        return [shape]
    if len(shape) != 4:
        layer.fail(f"WITHIN_CHANNEL needs a 4-axis blob, got shape {shape}")
    x = layer.bottoms[0]
    squared = layer.node("Mul", [x, x], what="square")
    pad = [(n - 1) // 2] * 2
    size = list(shape[2:])
    pooled = list(pooled_shape(size, [n, n], pad, [1, 1]))
    average = _caffe_average_pool(layer, squared, size, [n, n], pad, [1, 1], pooled, what="pool")
    scaled = layer.node("Mul", [average, layer.const("alpha", np.array(p.alpha, np.float32))],
                        what="scale")
    shifted = layer.node("Add", [scaled, layer.const("one", np.array(1.0, np.float32))],
                         what="shift")
    powered = layer.node("Pow", [shifted, layer.const("beta", np.array(p.beta, np.float32))],
                         what="power")
    layer.node("Div", [x, powered])
    return [shape]


def _inner_product(layer):
    """InnerProduct: the bottom's axes from ``axis`` on are flattened to K features;
    y = x·Wᵀ + b with W (num_output, K), or y = x·W with W (K, num_output) when ``transpose``.
    Output shape bottom.shape[:axis] + (num_output,). Gemm (transB = not transpose) on the
    (M, K) view; ``<layer>/flatten`` and ``<layer>/unflatten`` reshape around it."""
    layer.count(bottoms=1, tops=1)
    p = layer.param.inner_product_param
    shape = layer.shapes[0]
    axis = layer.axis(p.axis, len(shape))
    k = math.prod(shape[axis:])
    n_out = int(p.num_output)
    _positive(layer, num_output=[n_out])
    specs = [((k, n_out) if p.transpose else (n_out, k), _filler(p, "weight_filler"))]
    if p.bias_term:
        specs.append(((n_out,), _filler(p, "bias_filler")))
    names = layer.weights(specs)
    out_shape = (*shape[:axis], n_out)
    x = layer.bottoms[0]
    if axis == 0:
        layer.fix_batch("InnerProduct over axis 0")
    if axis == 1 and len(shape) == 2:
        layer.node("Gemm", [x, *names], transB=0 if p.transpose else 1)
    elif axis == 1:
        x = layer.node("Flatten", [x], what="flatten", axis=1)
        layer.node("Gemm", [x, *names], transB=0 if p.transpose else 1)
    else:
        rows = -1 if axis > 0 else 1
        x = layer.node("Reshape", [x, layer.const("flatten_shape", np.array([rows, k], np.int64))],
                       what="flatten")
        y = layer.node("Gemm", [x, *names], outputs=[layer.helper_name("gemm")],
                       transB=0 if p.transpose else 1)
        target = [-1, *out_shape[1:]] if axis > 0 else list(out_shape)
        layer.node("Reshape", [y, layer.const("unflatten_shape", np.array(target, np.int64))],
                   what="unflatten", outputs=list(layer.tops))
    return [out_shape]


def _relu(layer):
    """ReLU: y = max(x, 0) + negative_slope·min(x, 0): Relu, or LeakyRelu(α = negative_slope)."""
    layer.count(bottoms=1, tops=1)
    slope = float(layer.param.relu_param.negative_slope)
    if slope:
        layer.node("LeakyRelu", [layer.bottoms[0]], alpha=slope)
    else:
        layer.node("Relu", [layer.bottoms[0]])
    return [layer.shapes[0]]


def _prelu(layer):
    """PReLU: y = max(x, 0) + a_c·min(x, 0), a of shape (C,) (C = axis 1), or one scalar () when
    ``channel_shared``; Caffe's default filler is the constant 0.25."""
    layer.count(bottoms=1, tops=1)
    p = layer.param.prelu_param
    shape = layer.shapes[0]
    if len(shape) < 2:
        layer.fail(f"needs at least 2 axes, got shape {shape}")
    slope_shape = () if p.channel_shared else (shape[1],)
    (name,) = layer.weights([(slope_shape, _filler(p, "filler", 0.25))])
    slope = name if p.channel_shared else layer.broadcastable(0, name, layer.arrays[0], 1, len(shape))
    layer.node("PRelu", [layer.bottoms[0], slope])
    return [shape]


def _dropout(layer):
    """Dropout: the identity at test time (Caffe scales by 1/(1 − ratio) while training, so
    nothing remains to undo): ONNX Dropout in inference mode."""
    layer.count(bottoms=1, tops=1)
    layer.node("Dropout", [layer.bottoms[0]])
    return [layer.shapes[0]]


def _softmax(layer):
    """Softmax over ``axis`` (default 1): y = exp(x − max) / Σ exp(x − max) — ONNX Softmax-13."""
    layer.count(bottoms=1, tops=1)
    shape = layer.shapes[0]
    layer.node("Softmax", [layer.bottoms[0]],
               axis=layer.axis(layer.param.softmax_param.axis, len(shape)))
    return [shape]


def _concat(layer):
    """Concat along ``axis`` (or the legacy ``concat_dim``; not both), other axes equal."""
    layer.count(bottoms=(1, None), tops=1)
    p = layer.param.concat_param
    if p.HasField("axis") and p.HasField("concat_dim"):
        layer.fail("give axis or concat_dim, not both")
    shape = layer.shapes[0]
    axis = layer.axis(p.axis, len(shape)) if p.HasField("axis") else \
        layer.axis(p.concat_dim, len(shape))
    for other in layer.shapes[1:]:
        if len(other) != len(shape) or any(a != b for i, (a, b) in enumerate(zip(other, shape))
                                           if i != axis):
            layer.fail(f"bottom shapes {layer.shapes} differ outside axis {axis}")
    if axis == 0:
        layer.fix_batch("Concat on axis 0")
    layer.node("Concat", layer.bottoms, axis=axis)
    out = list(shape)
    out[axis] = sum(s[axis] for s in layer.shapes)
    return [tuple(out)]


def _eltwise(layer):
    """Eltwise over equal-shaped bottoms: SUM y = Σ coeff_i·x_i (coeff 1 by default; Mul nodes
    ``<layer>/coeff<i>`` only where coeff ≠ 1), PROD y = Π x_i, MAX y = max_i x_i."""
    layer.count(bottoms=(2, None), tops=1)
    p = layer.param.eltwise_param
    op = caffe_proto.EltwiseParameter.EltwiseOp.Name(p.operation)
    if any(s != layer.shapes[0] for s in layer.shapes):
        layer.fail(f"bottoms must have equal shapes, got {layer.shapes}")
    if len(p.coeff) and op != "SUM":
        layer.fail("coeff is for SUM only")
    if len(p.coeff) not in (0, len(layer.bottoms)):
        layer.fail(f"{len(p.coeff)} coeff for {len(layer.bottoms)} bottoms")
    terms = list(layer.bottoms)
    if op == "SUM":
        for i, c in enumerate(p.coeff):
            if c != 1.0:
                terms[i] = layer.node("Mul", [terms[i], layer.const(f"coeff{i}",
                                                                    np.array(c, np.float32))],
                                      what=f"coeff{i}")
        layer.node("Add" if len(terms) == 2 else "Sum", terms)
    elif op == "PROD":
        product = terms[0]
        for i, term in enumerate(terms[1:-1], start=1):
            product = layer.node("Mul", [product, term], what=f"prod{i}")
        layer.node("Mul", [product, terms[-1]])
    else:
        layer.node("Max", terms)
    return [layer.shapes[0]]


def _batch_norm(layer):
    """BatchNorm with its stored statistics (Caffe's use_global_stats): blobs mean sum,
    variance sum and a scale factor s; mean = blob0·f, var = blob1·f with f = 1/s (f = 0 when
    s = 0); y = (x − mean) / sqrt(var + eps) over channel axis 1. ONNX BatchNormalization with
    scale 1 and bias 0 (Caffe puts the affine part in a following Scale layer)."""
    layer.count(bottoms=1, tops=1)
    p = layer.param.batch_norm_param
    shape = layer.shapes[0]
    if len(shape) < 2:
        layer.fail(f"needs at least 2 axes (N, C, ...), got shape {shape}")
    global_stats = p.use_global_stats if p.HasField("use_global_stats") else \
        layer.phase == 1
    if not global_stats:
        warnings.warn(f"{layer.source}: layer {layer.name!r}: Caffe would normalise with "
                      "batch statistics here (phase TRAIN or use_global_stats: false); converted "
                      "with the stored statistics", stacklevel=4)
    c = shape[1]
    names = layer.weights([((c,), 0.0), ((c,), 0.0), ((1,), 0.0)])
    mean_sum, var_sum, s = layer.arrays
    factor = np.float32(0.0) if s[0] == 0 else np.float32(1.0) / np.float32(s[0])
    mean = layer.derive(0, "mean", (mean_sum * factor).astype(np.float32),
                        f"{names[0]} · f, f = 1/{names[2]} (0 if {names[2]} = 0)")
    var = layer.derive(1, "var", (var_sum * factor).astype(np.float32),
                       f"{names[1]} · f, f = 1/{names[2]} (0 if {names[2]} = 0)")
    ones = layer.const("ones", np.ones(c, np.float32))
    zeros = layer.const("zeros", np.zeros(c, np.float32))
    layer.node("BatchNormalization", [layer.bottoms[0], ones, zeros, mean, var],
               epsilon=float(p.eps))
    return [shape]


def _scale_operand(layer, p, kind):
    """Scale/Bias share Caffe's operand rules: the operand is bottom[1] (its shape fixes the axes
    covered, starting at ``axis``) or a param blob of shape bottom.shape[axis:axis + num_axes]
    (num_axes −1: to the end, 0: a scalar). Returns (the ONNX operand, or None when it is a param
    blob still to be registered; the first covered axis; the covered shape)."""
    shape = layer.shapes[0]
    axis = layer.axis(p.axis, len(shape)) if len(shape) else 0
    if len(layer.bottoms) == 2:
        operand_shape = layer.shapes[1]
        if tuple(shape[axis:axis + len(operand_shape)]) != tuple(operand_shape):
            layer.fail(f"bottom[1] shape {operand_shape} does not match bottom[0] {shape} from "
                       f"axis {axis}")
        trailing = len(shape) - axis - len(operand_shape)
        operand = layer.bottoms[1]
        if trailing > 0:
            # reshape the second bottom to broadcast: its own axes copied (0), trailing 1s
            operand = layer.node("Reshape", [operand, layer.const(
                f"{kind}_shape", np.array([0] * len(operand_shape) + [1] * trailing, np.int64))],
                what=f"{kind}_reshape")
        return operand, axis, tuple(operand_shape)
    if p.num_axes < -1:
        layer.fail(f"num_axes must be ≥ −1, got {p.num_axes}")
    end = len(shape) if p.num_axes == -1 else axis + p.num_axes
    if end > len(shape):
        layer.fail(f"axis {axis} + num_axes {p.num_axes} exceeds the {len(shape)} axes")
    if axis == 0 and end > 0:
        layer.fix_batch(f"{kind} parameter covers axis 0")
    return None, axis, tuple(shape[axis:end])


def _scale(layer):
    """Scale: y = x ⊙ s (+ b), s broadcast over bottom axes axis..axis+len(s.shape) — s is
    bottom[1] or a learned blob (Caffe's default filler: constant 1); with ``bias_term`` a
    learned b of s's shape follows (blob 1, or blob 0 in the two-bottom form). Mul ``<layer>``,
    then Add ``<layer>/bias``."""
    layer.count(bottoms=(1, 2), tops=1)
    p = layer.param.scale_param
    shape = layer.shapes[0]
    operand, axis, covered = _scale_operand(layer, p, "scale")
    specs = [] if operand is not None else [(covered, _filler(p, "filler", 1.0))]
    if p.bias_term:
        specs.append((covered, _filler(p, "bias_filler", 0.0)))
    names = layer.weights(specs) if specs else []
    if operand is None:
        operand = layer.broadcastable(0, names[0], layer.arrays[0], axis, len(shape))
    if not p.bias_term:
        layer.node("Mul", [layer.bottoms[0], operand])
        return [shape]
    i = len(names) - 1
    bias = layer.broadcastable(i, names[i], layer.arrays[i], axis, len(shape))
    scaled = layer.node("Mul", [layer.bottoms[0], operand],
                        outputs=[layer.helper_name("scaled")])
    layer.node("Add", [scaled, bias], what="bias", outputs=list(layer.tops))
    return [shape]


def _bias(layer):
    """Bias: y = x + b, b broadcast over bottom axes axis..axis+len(b.shape); b is bottom[1] or a
    learned blob of shape bottom.shape[axis:axis + num_axes] (default filler constant 0)."""
    layer.count(bottoms=(1, 2), tops=1)
    p = layer.param.bias_param
    shape = layer.shapes[0]
    operand, axis, covered = _scale_operand(layer, p, "bias")
    if operand is None:
        (name,) = layer.weights([(covered, _filler(p, "filler", 0.0))])
        operand = layer.broadcastable(0, name, layer.arrays[0], axis, len(shape))
    layer.node("Add", [layer.bottoms[0], operand])
    return [shape]


def _batch_preserving_shape(layer, out_shape, keeps_axis0):
    """A Reshape target for ``out_shape`` that serves any batch: 0 (copy) at axis 0 when the
    layer keeps axis 0, else the static shape (and the batch becomes fixed)."""
    target = list(out_shape)
    if keeps_axis0 and target:
        target[0] = 0
    elif target:
        layer.fix_batch("reshapes axis 0")
    return _shape_tensor(layer, target)


def _shape_tensor(layer, dims):
    """A shape as ONNX's int64 tensor; a dimension past int64 is a blob no machine holds."""
    if any(abs(d) >= 2**63 for d in dims):
        layer.fail(f"its top would have shape {tuple(dims)}, past what int64 counts")
    return np.array(dims, np.int64)


def _flatten(layer):
    """Flatten: axes axis..end_axis merged into one: shape[:axis] + (∏ shape[axis:end+1],) +
    shape[end+1:]. ONNX Flatten where that is (N, rest), else a Reshape."""
    layer.count(bottoms=1, tops=1)
    p = layer.param.flatten_param
    shape = layer.shapes[0]
    start, end = layer.axis(p.axis, len(shape)), layer.axis(p.end_axis, len(shape))
    if end < start:
        layer.fail(f"end_axis {p.end_axis} comes before axis {p.axis}")
    out = (*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])
    if start == 1 and end == len(shape) - 1:
        layer.node("Flatten", [layer.bottoms[0]], axis=1)
    else:
        layer.node("Reshape", [layer.bottoms[0], layer.const(
            "shape", _batch_preserving_shape(layer, out, start > 0))])
    return [out]


def _reshape(layer):
    """Reshape: dims [axis, axis + num_axes) of the bottom (num_axes −1: to the end; a negative
    axis counts from the end + 1) become ``shape``, where 0 copies the bottom's dim and −1 is
    inferred; the other dims stay. Written with static dims except axis 0, which is copied (0)
    or inferred (−1) so that the model serves any batch when Caffe's reshape keeps the batch."""
    layer.count(bottoms=1, tops=1)
    p = layer.param.reshape_param
    shape = list(layer.shapes[0])
    start = p.axis if p.axis >= 0 else len(shape) + p.axis + 1
    if not 0 <= start <= len(shape):
        layer.fail(f"axis {p.axis} is out of range for shape {tuple(shape)}")
    end = len(shape) if p.num_axes == -1 else start + p.num_axes
    if p.num_axes < -1 or end > len(shape):
        layer.fail(f"num_axes {p.num_axes} is out of range for shape {tuple(shape)}")
    dims = [int(d) for d in p.shape.dim]
    if dims.count(-1) > 1:
        layer.fail("at most one dim may be -1")
    new = []
    for i, d in enumerate(dims):
        if d == 0:
            if start + i >= len(shape):
                layer.fail(f"dim {i} is 0 but the bottom has no axis {start + i} to copy")
            new.append(shape[start + i])
        elif d == -1 or d > 0:
            new.append(d)
        else:
            layer.fail(f"dim {d} is invalid")
    out = shape[:start] + new + shape[end:]
    total = math.prod(shape)
    if -1 in out:
        known = math.prod([d for d in out if d != -1])
        if known == 0 or total % known:
            layer.fail(f"cannot reshape {tuple(shape)} to {dims}")
        out[out.index(-1)] = total // known
    if math.prod(out) != total:
        layer.fail(f"cannot reshape {tuple(shape)} ({total} values) to {tuple(out)}")
    # Axis 0 survives a batch change when it is copied, or inferred while the other axes hold
    # exactly the bottom's non-batch values.
    copies_axis0 = start > 0 or not dims or dims[0] == 0
    infers_axis0 = (start == 0 and dims and dims[0] == -1
                    and math.prod(out[1:]) == math.prod(shape[1:]))
    target = _shape_tensor(layer, out)
    if not out:
        layer.fix_batch("reshape to a blob without axes")
    elif copies_axis0:
        target[0] = 0
    elif infers_axis0:
        target[0] = -1
    else:
        layer.fix_batch("reshape sets axis 0")
    layer.node("Reshape", [layer.bottoms[0], layer.const("shape", target)])
    return [tuple(out)]


def _split(layer):
    """Split: every top is a copy of the bottom (Identity ``<layer>`` for top 0,
    ``<layer>/copy<i>`` for the others)."""
    layer.count(bottoms=1, tops=(1, None))
    for i, top in enumerate(layer.tops):
        layer.node("Identity", [layer.bottoms[0]], what=None if i == 0 else f"copy{i}",
                   outputs=[top])
    return [layer.shapes[0]] * len(layer.tops)


def _slice(layer):
    """Slice along ``axis`` (or legacy ``slice_dim``; not both) at the ``slice_point``s, or into
    equal parts when none are given: ONNX Split with explicit sizes."""
    layer.count(bottoms=1, tops=(1, None))
    p = layer.param.slice_param
    if p.HasField("axis") and p.HasField("slice_dim"):
        layer.fail("give axis or slice_dim, not both")
    shape = layer.shapes[0]
    axis = layer.axis(p.axis if p.HasField("axis") else p.slice_dim, len(shape))
    n, parts = shape[axis], len(layer.tops)
    if len(p.slice_point):
        points = [int(q) for q in p.slice_point]
        if len(points) != parts - 1 or points != sorted(set(points)) or not 0 < points[0] \
                or points[-1] >= n:
            layer.fail(f"slice_point {points} does not cut axis {axis} of size {n} into {parts}")
        sizes = [b - a for a, b in zip([0] + points, points + [n])]
    else:
        if n % parts:
            layer.fail(f"axis {axis} of size {n} does not split into {parts} equal parts")
        sizes = [n // parts] * parts
    if axis == 0:
        layer.fix_batch("Slice on axis 0")
    layer.node("Split", [layer.bottoms[0], layer.const("split", np.array(sizes, np.int64))],
               axis=axis)
    return [tuple(shape[:axis]) + (size,) + tuple(shape[axis + 1:]) for size in sizes]


def _sigmoid(layer):
    """Sigmoid: y = 1 / (1 + exp(−x))."""
    layer.count(bottoms=1, tops=1)
    layer.node("Sigmoid", [layer.bottoms[0]])
    return [layer.shapes[0]]


def _tanh(layer):
    """TanH: y = tanh(x)."""
    layer.count(bottoms=1, tops=1)
    layer.node("Tanh", [layer.bottoms[0]])
    return [layer.shapes[0]]


def _power(layer):
    """Power: y = (shift + scale·x)^power, written as Mul ``<layer>/scale`` (scale ≠ 1),
    Add ``<layer>/shift`` (shift ≠ 0) and Pow (power ≠ 1); the last step is the main node, an
    Identity when all three are trivial."""
    layer.count(bottoms=1, tops=1)
    p = layer.param.power_param
    steps = []
    if p.scale != 1.0:
        steps.append(("Mul", "scale", p.scale))
    if p.shift != 0.0:
        steps.append(("Add", "shift", p.shift))
    if p.power != 1.0:
        steps.append(("Pow", "power", p.power))
    x = layer.bottoms[0]
    if not steps:
        layer.node("Identity", [x])
    for i, (op, what, value) in enumerate(steps):
        operand = layer.const(what, np.array(value, np.float32))
        x = layer.node(op, [x, operand], what=None if i == len(steps) - 1 else what)
    return [layer.shapes[0]]


# --- data, test and loss layers ----------------------------------------------------------------

def _dummy_data(layer):
    """DummyData: each top a blob of the given shape (``shape`` once or once per top, or the
    legacy num/channels/height/width), filled by its data_filler (none: constant 0; one: for
    every top; else one per top). Caffe fills every top at set-up and refills the tops of
    non-constant fillers at each forward; here the tops are data sources (net inputs the
    pycaffe shell fills by that rule; ``caffe.Net``'s inputs do not list them)."""
    layer.count(bottoms=0, tops=(1, None))
    p = layer.param.dummy_data_param
    n = len(layer.tops)
    if len(p.data_filler) not in (0, 1, n):
        layer.fail(f"{len(p.data_filler)} data fillers for {n} tops (give 0, 1 or one per top)")
    legacy = [list(getattr(p, name)) for name in ("num", "channels", "height", "width")]
    if any(legacy):
        if len(p.shape):
            layer.fail("give shape or num/channels/height/width, not both")
        if any(len(values) not in (1, n) for values in legacy):
            layer.fail(f"num, channels, height and width each once, or once per top ({n})")
        shapes = [tuple(int(values[min(i, len(values) - 1)]) for values in legacy)
                  for i in range(n)]
    else:
        if len(p.shape) not in (1, n):
            layer.fail(f"{len(p.shape)} shapes for {n} tops (give one, or one per top)")
        shapes = [tuple(int(d) for d in p.shape[min(i, len(p.shape) - 1)].dim) for i in range(n)]
    for i, (blob, tensor, shape) in enumerate(zip(layer.param.top, layer.tops, shapes)):
        filler = p.data_filler[min(i, len(p.data_filler) - 1)] if len(p.data_filler) \
            else constant_filler(0.0)
        check_filler(filler, f"{layer.source}: layer {layer.name!r} (DummyData)")
        layer.declare_source(blob, tensor, shape, filler)
    return shapes


def _silence(layer):
    """Silence: takes its bottoms and writes nothing (their diffs stay zero); no node."""
    layer.count(bottoms=(1, None), tops=0)
    return []


def _class_axis(layer, axis):
    """(canonical class axis, outer count, inner count, a Reshape target of the label blob to
    the scores' shape with the class axis 1) for a label blob of outer·inner values, as Caffe's
    SoftmaxWithLoss and Accuracy check it. Axis 0 keeps the batch; later axes are copied (0)."""
    shape = layer.shapes[0]
    axis = layer.axis(axis, len(shape))
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    labels = int(np.prod(layer.shapes[1], dtype=np.int64))
    if outer * inner != labels:
        layer.fail(f"{labels} labels for predictions of shape {shape} (class axis {axis}): the "
                   f"label count must be {outer * inner} (outer × inner), with integer values in "
                   f"0..{shape[axis] - 1}")
    target = list(shape)
    target[axis] = 1
    if axis > 0:
        target[0] = 0
    else:
        layer.fix_batch(f"{layer.type} over axis 0")
    return axis, outer, inner, np.array(target, np.int64)


def _label_hits(layer, axis, target, ignore):
    """The labels as Caffe reads them (static_cast<int>: ONNX Cast to int64 truncates the same
    way) and the one-hot float mask over the class axis (zero at an ignored label). The labels
    cross no float operation, so no diff reaches them (Caffe refuses to back-propagate to
    labels). Returns (one-hot, labels as int64 in the scores' layout, valid mask or None)."""
    shape = layer.shapes[0]
    labels = layer.node("Cast", [layer.bottoms[1]], what="label", to=TensorProto.INT64)
    labels = layer.node("Reshape", [labels, layer.const("label_shape", target)],
                        what="label_layout")
    classes = np.arange(shape[axis], dtype=np.int64).reshape(
        [shape[axis] if k == axis else 1 for k in range(len(shape))])
    hits = layer.node("Equal", [labels, layer.const("classes", classes)], what="hits")
    valid = None
    if ignore is not None:
        ignored = layer.node("Equal", [labels, layer.const("ignore_label",
                                                           np.array(ignore, np.int64))],
                             what="ignored")
        valid = layer.node("Not", [ignored], what="valid")
        hits = layer.node("And", [hits, valid], what="kept_hits")
    onehot = layer.node("Cast", [hits], what="onehot", to=TensorProto.FLOAT)
    return onehot, labels, valid


def _normalization(layer, default):
    """Caffe's LossParameter rule: ``normalization`` when given, else ``normalize`` (true:
    VALID, false: BATCH_SIZE) when given, else the layer's default."""
    p = layer.param.loss_param
    if p.HasField("normalization"):
        return caffe_proto.LossParameter.NormalizationMode.Name(p.normalization)
    if p.HasField("normalize"):
        return "VALID" if p.normalize else "BATCH_SIZE"
    return default


def _normalizer(layer, mode, count_of, valid, inner):
    """Caffe's get_normalizer as nodes: FULL the label count, VALID the labels not ignored,
    BATCH_SIZE the outer count (label count / inner), NONE 1; then max(1, ·). ``count_of`` is
    the tensor whose size is the label count. Returns the divisor's name, or None for 1."""
    if mode == "NONE":
        return None
    if mode == "VALID" and valid is not None:
        as_float = layer.node("Cast", [valid], what="valid_float", to=TensorProto.FLOAT)
        count = layer.node("ReduceSum", [as_float], what="valid_count", keepdims=0)
    else:
        size = layer.node("Size", [count_of], what="label_count")
        count = layer.node("Cast", [size], what="label_count_float", to=TensorProto.FLOAT)
        if mode == "BATCH_SIZE" and inner != 1:
            count = layer.node("Div", [count, layer.const("inner", np.array(inner, np.float32))],
                               what="outer_count")
    return layer.node("Max", [count, layer.const("one", np.array(1.0, np.float32))],
                      what="normalizer")


def _negated_mean(layer, total, normalizer):
    """The main node: loss = −total / normalizer (−total where there is none)."""
    negated = layer.const("minus_one", np.array(-1.0, np.float32))
    if normalizer is None:
        return layer.node("Mul", [total, negated], outputs=[layer.tops[0]])
    total = layer.node("Mul", [total, negated], what="negated")
    return layer.node("Div", [total, normalizer], outputs=[layer.tops[0]])


def _loss_layer(layer):
    """What every Caffe loss layer checks: two bottoms of the same first dimension."""
    layer.count(bottoms=2, tops=(1, 2) if layer.type == "SoftmaxWithLoss" else 1)
    if not layer.shapes[0] or not layer.shapes[1] or layer.shapes[0][0] != layer.shapes[1][0]:
        layer.fail(f"the data and label should have the same first dimension, got "
                   f"{layer.shapes[0]} and {layer.shapes[1]}")


def _softmax_with_loss(layer):
    """SoftmaxWithLoss: loss = −Σ log p[label] / normalizer over the outer × inner positions
    whose label is not ``ignore_label``, p the softmax over ``softmax_param.axis``; normalizer
    by ``loss_param`` (default VALID: the labels counted), at least 1. Written as LogSoftmax,
    the labels' one-hot mask, Mul and ReduceSum; its backward (through those kernels) is
    Caffe's: ∂loss/∂x = (p − onehot) / normalizer, times the top's diff (the loss weight), and
    zero at ignored positions. The optional second top is the softmax."""
    _loss_layer(layer)
    p = layer.param
    axis, _, inner, target = _class_axis(layer, p.softmax_param.axis)
    ignore = p.loss_param.ignore_label if p.loss_param.HasField("ignore_label") else None
    log_prob = layer.node("LogSoftmax", [layer.bottoms[0]], what="log_prob", axis=axis)
    onehot, _, valid = _label_hits(layer, axis, target, ignore)
    picked = layer.node("Mul", [log_prob, onehot], what="picked")
    total = layer.node("ReduceSum", [picked], what="total", keepdims=0)
    _negated_mean(layer, total, _normalizer(layer, _normalization(layer, "VALID"),
                                            layer.bottoms[1], valid, inner))
    shapes = [()]
    if len(layer.tops) == 2:
        layer.node("Softmax", [layer.bottoms[0]], what="prob", outputs=[layer.tops[1]], axis=axis)
        shapes.append(layer.shapes[0])
    return shapes


def _as_shape_of(layer, i, what):
    """Bottom i in bottom 0's shape (Caffe's losses compare blobs of equal count elementwise)."""
    shape, other = layer.shapes[0], layer.shapes[i]
    if tuple(other) == tuple(shape):
        return layer.bottoms[i]
    target = np.array([0] + list(shape[1:]), np.int64)
    return layer.node("Reshape", [layer.bottoms[i], layer.const(f"{what}_shape", target)],
                      what=f"{what}_layout")


def _euclidean_loss(layer):
    """EuclideanLoss: loss = Σ (a − b)² / 2N over equal counts per item (N = a's first axis).
    Its backward gives ±(a − b) / N times the top's diff to a and to b, as Caffe's."""
    _loss_layer(layer)
    count = [int(np.prod(s[1:], dtype=np.int64)) for s in layer.shapes]
    if count[0] != count[1]:
        layer.fail(f"inputs must have the same dimension, got {layer.shapes[0]} and "
                   f"{layer.shapes[1]}")
    b = _as_shape_of(layer, 1, "target")
    difference = layer.node("Sub", [layer.bottoms[0], b], what="difference")
    squared = layer.node("Mul", [difference, difference], what="squared")
    total = layer.node("ReduceSum", [squared], what="total", keepdims=0)
    shape = layer.node("Shape", [layer.bottoms[0]], what="shape")
    num = layer.node("Gather", [shape, layer.const("batch_axis", np.array(0, np.int64))],
                     what="num")
    num = layer.node("Cast", [num], what="num_float", to=TensorProto.FLOAT)
    twice = layer.node("Mul", [num, layer.const("two", np.array(2.0, np.float32))],
                       what="twice_num")
    layer.node("Div", [total, twice])
    return [()]


def _sigmoid_cross_entropy_loss(layer):
    """SigmoidCrossEntropyLoss: loss = −Σ [t·log σ(x) + (1 − t)·log(1 − σ(x))] / normalizer
    over the targets not ``ignore_label`` (default normalization BATCH_SIZE, as Caffe's). The
    two logs are a LogSoftmax over the pair (0, x), stable at any x; the backward is Caffe's
    (σ(x) − t) / normalizer. Unlike Caffe, which refuses it, the target bottom takes a diff too."""
    _loss_layer(layer)
    if int(np.prod(layer.shapes[0])) != int(np.prod(layer.shapes[1])):
        layer.fail(f"inputs must have the same count, got {layer.shapes[0]} and {layer.shapes[1]}")
    p = layer.param
    x, t = layer.bottoms[0], _as_shape_of(layer, 1, "target")
    last = layer.const("last_axis", np.array([-1], np.int64))
    x_pair = layer.node("Unsqueeze", [x, last], what="x_pair")
    zero = layer.node("Mul", [x_pair, layer.const("zero", np.array(0.0, np.float32))], what="zero")
    pair = layer.node("Concat", [zero, x_pair], what="pair", axis=-1)
    logs = layer.node("LogSoftmax", [pair], what="logs", axis=-1)
    log_not, log_yes = layer.helper_name("log_one_minus_sigmoid"), layer.helper_name("log_sigmoid")
    layer.node("Split", [logs, layer.const("halves", np.array([1, 1], np.int64))], what="split",
               outputs=[log_not, log_yes], axis=-1)
    t_pair = layer.node("Unsqueeze", [t, last], what="t_pair")
    gap = layer.node("Sub", [log_yes, log_not], what="gap")
    weighted = layer.node("Mul", [t_pair, gap], what="weighted")
    term = layer.node("Add", [log_not, weighted], what="term")
    valid = None
    if p.loss_param.HasField("ignore_label"):
        targets = layer.node("Cast", [t_pair], what="target_int", to=TensorProto.INT64)
        ignored = layer.node("Equal", [targets, layer.const(
            "ignore_label", np.array(p.loss_param.ignore_label, np.int64))], what="ignored")
        valid = layer.node("Not", [ignored], what="valid")
        mask = layer.node("Cast", [valid], what="valid_mask", to=TensorProto.FLOAT)
        term = layer.node("Mul", [term, mask], what="kept")
    total = layer.node("ReduceSum", [term], what="total", keepdims=0)
    inner = int(np.prod(layer.shapes[0][1:], dtype=np.int64))
    _negated_mean(layer, total, _normalizer(layer, _normalization(layer, "BATCH_SIZE"), x,
                                            valid, inner))
    return [()]


def _accuracy(layer):
    """Accuracy: the fraction of the outer × inner positions (label not ``ignore_label``) whose
    label's score is among the ``top_k`` largest over ``axis``: with Caffe's count of the classes
    scoring ≥ the label's (the label itself included), a hit when that count ≤ top_k. Ties count
    against, as in Caffe. No diff flows back (its top feeds no loss)."""
    layer.count(bottoms=2, tops=1)
    p = layer.param.accuracy_param
    axis, _, _, target = _class_axis(layer, p.axis)
    ignore = p.ignore_label if p.HasField("ignore_label") else None
    onehot, _, valid = _label_hits(layer, axis, target, ignore)
    picked = layer.node("Mul", [layer.bottoms[0], onehot], what="picked")
    axes = layer.const("class_axis", np.array([axis], np.int64))
    label_score = layer.node("ReduceSum", [picked, axes], what="label_score", keepdims=1)
    at_least = layer.node("GreaterOrEqual", [layer.bottoms[0], label_score], what="at_least")
    as_float = layer.node("Cast", [at_least], what="at_least_float", to=TensorProto.FLOAT)
    rank = layer.node("ReduceSum", [as_float, axes], what="rank", keepdims=1)
    hit = layer.node("Less", [rank, layer.const("top_k", np.array(p.top_k + 0.5, np.float32))],
                     what="hit")
    if valid is not None:
        hit = layer.node("And", [hit, valid], what="kept_hit")
    hits = layer.node("Cast", [hit], what="hit_float", to=TensorProto.FLOAT)
    total = layer.node("ReduceSum", [hits], what="hits", keepdims=0)
    layer.node("Div", [total, _normalizer(layer, "VALID", layer.bottoms[1], valid, 1)])
    return [()]


LAYER_CONVERTERS = {
    "Input": _input,
    "Convolution": _convolution,
    "InnerProduct": _inner_product,
    "Pooling": _pooling,
    "LRN": _lrn,
    "ReLU": _relu,
    "PReLU": _prelu,
    "Dropout": _dropout,
    "Softmax": _softmax,
    "Concat": _concat,
    "Eltwise": _eltwise,
    "BatchNorm": _batch_norm,
    "Scale": _scale,
    "Bias": _bias,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Split": _split,
    "Slice": _slice,
    "Sigmoid": _sigmoid,
    "TanH": _tanh,
    "Power": _power,
    "DummyData": _dummy_data,
    "Silence": _silence,
    "Accuracy": _accuracy,
    "SoftmaxWithLoss": _softmax_with_loss,
    "EuclideanLoss": _euclidean_loss,
    "SigmoidCrossEntropyLoss": _sigmoid_cross_entropy_loss,
}
