"""An interpreter of ONNX graphs in PyTorch: the benchmark peer and the float64 oracle.

torch is a test and benchmark dependency only: it is imported inside the functions here, and
nothing in the runtime imports this module.

Two uses:

* ``TorchNet(model, dtype)`` runs the graph with plain autograd (``F.conv2d``, ``F.max_pool2d``,
  ``F.linear``…) and returns input gradients of any blob for a given top diff — what a PyTorch
  user would write, to time and compare against.
* ``reference_input_grad(model, x, top_name, top_diff, rule, kept)`` computes the input diff in
  float64 with the non-smooth decisions taken from the forward under test (``kept``: blob name →
  float32 array): every ReLU-family node takes its local derivative f'(x) from the kept blobs, and
  every max pool takes its switches (the first maximum of each window in scan order, padded
  positions excluded — Caffe's rule) from its kept float32 bottom. The reference then differs from
  the engine only by arithmetic precision: a float32 forward and a float64 one disagree on a few
  near-zero ReLU inputs and near-tied pooling windows, and those flips alone move a VGG input
  gradient by up to 2e-2 relative L2.

The three rules, for a ReLU-family node with local derivative f'(x) and incoming diff g:

    backprop   g · f'(x)
    deconvnet  max(g, 0)
    guided     max(g, 0) · f'(x)

are ``torch.autograd.Function``s; every other node is differentiated by autograd. Max pooling
routes its diff through the switches under every rule (Zeiler & Fergus's unpooling).

Supported ops: Conv, Gemm, MatMul, BatchNormalization (inference), MaxPool, AveragePool,
GlobalMaxPool, GlobalAveragePool, ReduceMean, ReduceSum, LRN, Relu, LeakyRelu, PRelu, Clip,
Softmax, LogSoftmax, Sigmoid, Tanh, Add, Sum, Sub, Mul, Div, Max, Min, Pow, Concat, Split, Slice,
Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Pad, Identity, Dropout, and the shape helpers
Constant, Shape, Gather, Cast. Pooling and convolution are 1-D, 2-D or 3-D (ONNX's N, C, spatial…).
"""
from __future__ import annotations

import math
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

from caffe_port.errors import ModelError, UnsupportedOpError

RULES = ("backprop", "deconvnet", "guided")
RELU_FAMILY = ("Relu", "LeakyRelu", "PRelu", "Clip")


def _torch():
    import torch
    return torch


# --- the rule gate: one autograd.Function for the whole ReLU family -----------------------------------

_RULE_GATE = None


def _rule_gate():
    """``RuleGate.apply(x, top, slope, rule)`` returns ``top`` (computed from x beforehand, without
    grad) and sends back the diff the rule prescribes with slope = f'(x)."""
    global _RULE_GATE
    if _RULE_GATE is None:
        torch = _torch()

        class RuleGate(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, top, slope, rule):
                ctx.save_for_backward(slope)
                ctx.rule = rule
                return top.clone()

            @staticmethod
            def backward(ctx, top_diff):
                (slope,) = ctx.saved_tensors
                if ctx.rule == "backprop":
                    bottom_diff = top_diff * slope
                elif ctx.rule == "deconvnet":
                    bottom_diff = top_diff.clamp(min=0)
                else:
                    bottom_diff = top_diff.clamp(min=0) * slope
                return bottom_diff, None, None, None

        _RULE_GATE = RuleGate
    return _RULE_GATE


# --- loading ----------------------------------------------------------------------------------------

def _load(model) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        proto = onnx.ModelProto()
        try:
            proto.ParseFromString(bytes(model))
        except Exception:
            raise ModelError("the given bytes are not a readable ONNX model") from None
        return proto
    if isinstance(model, (str, os.PathLike)):
        try:
            return onnx.load(os.fspath(model))
        except Exception as e:
            raise ModelError(f"cannot read ONNX model {os.fspath(model)}: {e}") from None
    raise ModelError(f"cannot load a model from a {type(model).__name__}")


def _attrs(node) -> dict:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, onnx.TensorProto):
            v = numpy_helper.to_array(v)
        out[a.name] = v
    return out


def _kept_array(kept, name):
    """A float32 blob from the forward under test; ``kept`` maps names to arrays or to objects with
    ``.data`` (e.g. ``Net.blobs``)."""
    try:
        value = kept[name]
    except KeyError:
        raise KeyError(f"the oracle needs blob {name!r} from the forward under test, "
                       f"but it was not kept") from None
    if not isinstance(value, np.ndarray) and hasattr(value, "data"):
        value = value.data
    return np.asarray(value)


def _has(kept, name):
    try:
        _kept_array(kept, name)
        return True
    except KeyError:
        return False


# --- geometry -------------------------------------------------------------------------------------

def _torch_pads(begins, ends):
    """ONNX (b1…bn, e1…en) for the spatial axes → F.pad's order, last axis first."""
    out = []
    for b, e in zip(reversed(begins), reversed(ends)):
        out += [int(b), int(e)]
    return out


def _window_pads(node, a, spatial, kernel, strides, dilations, ceil_mode=False):
    """(begins, ends, extension): the pads of each spatial axis (explicit or auto_pad), and the extra
    end padding that makes ceil_mode's last, partial window a full one. With ceil_mode, a window
    that would start in the end padding is dropped (ONNX Runtime's and Caffe's rule)."""
    n = len(spatial)
    auto_pad = a.get("auto_pad", "NOTSET")
    pads = list(a.get("pads", [0] * 2 * n))
    begins, ends, extension = pads[:n], pads[n:], [0] * n
    for i, size in enumerate(spatial):
        k_eff = (kernel[i] - 1) * dilations[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out = -(-size // strides[i])
            total = max((out - 1) * strides[i] + k_eff - size, 0)
            small, large = total // 2, total - total // 2
            begins[i], ends[i] = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
        elif auto_pad == "VALID":
            begins[i], ends[i] = 0, 0
        if ceil_mode:
            span = size + begins[i] + ends[i] - k_eff
            out = -(-span // strides[i]) + 1
            if (out - 1) * strides[i] >= size + begins[i]:
                out -= 1
            extension[i] = max((out - 1) * strides[i] + k_eff - (size + begins[i] + ends[i]), 0)
    return begins, ends, extension


def _pool_params(node, a, x):
    spatial = tuple(x.shape[2:])
    kernel = list(a["kernel_shape"])
    n = len(kernel)
    strides = list(a.get("strides", [1] * n))
    dilations = list(a.get("dilations", [1] * n))
    begins, ends, extension = _window_pads(node, a, spatial, kernel, strides, dilations,
                                           bool(a.get("ceil_mode", 0)))
    return kernel, strides, dilations, begins, ends, extension


def _functional(n, name):
    import torch.nn.functional as F
    if n not in (1, 2, 3):
        raise ModelError(f"{n}-D {name} is not supported by the torch reference")
    return getattr(F, f"{name}{n}d")


# --- the interpreter -------------------------------------------------------------------------------

class _Interpreter:
    """Runs one ONNX graph on torch tensors. ``oracle``: ReLU masks and max-pool switches come from
    ``kept`` (or, when ``kept`` is None, from this run's own forward) and go through the rule gate;
    otherwise the graph is plain autograd, except that a rule other than backprop gates the
    ReLU family with masks from this run's forward."""

    def __init__(self, model, dtype, rule="backprop", oracle=False, kept=None):
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
        self.model = _load(model)
        self.dtype = dtype
        self.rule = rule
        self.oracle = oracle
        self.kept = kept
        self.opset = next((int(i.version) for i in self.model.opset_import if i.domain in ("", "ai.onnx")), 1)
        graph = self.model.graph
        unsupported = {}
        for node in graph.node:
            if node.domain not in ("", "ai.onnx") or node.op_type not in _OPS:
                unsupported.setdefault(node.op_type, []).append(node.name or node.output[0])
        if unsupported:
            raise UnsupportedOpError(unsupported)
        self.params = {}
        for init in graph.initializer:
            array = numpy_helper.to_array(init)
            self.params[init.name] = self.tensor(array)
        self.input_names = [i.name for i in graph.input if i.name not in self.params]
        self.output_names = [o.name for o in graph.output]

    def tensor(self, array):
        torch = _torch()
        array = np.asarray(array)
        t = torch.from_numpy(np.array(array, copy=True))
        return t.to(self.dtype) if np.issubdtype(array.dtype, np.floating) else t

    def run(self, feeds: dict) -> dict:
        """Forward; returns every blob (torch tensors), constants included."""
        blobs = dict(self.params)
        blobs.update(feeds)
        for node in self.model.graph.node:
            bottoms = [blobs[name] if name else None for name in node.input]
            a = _attrs(node)
            tops = _OPS[node.op_type](self, node, bottoms, a)
            for name, top in zip(node.output, tops):
                if name:
                    blobs[name] = top
        return blobs

    # ReLU-family local derivatives: from the kept float32 forward (oracle) or this forward

    def slope_source(self, node, x):
        """The blob f'(x) is read from, as the engine's kernel reads it: Relu and Clip their top,
        LeakyRelu and PRelu their bottom (the other serves where the two give the same mask)."""
        top, bottom = node.output[0], node.input[0]
        if not (self.oracle and self.kept is not None):
            return x.detach()
        order = [top, bottom] if node.op_type in ("Relu", "Clip") else [bottom, top]
        if node.op_type == "PRelu" or (node.op_type == "LeakyRelu" and float(_attrs(node).get("alpha", 0.01)) <= 0):
            order = order[:1]      # a non-positive slope makes the top's sign say nothing about x's
        for name in order:
            if _has(self.kept, name):
                return self.tensor(_kept_array(self.kept, name))
        _kept_array(self.kept, order[0])   # raises, naming the blob

    def gate(self, x, top, slope):
        """The node's output; its backward follows ``self.rule`` with f'(x) = slope."""
        if not self.oracle and self.rule == "backprop":
            return top
        return _rule_gate().apply(x, top.detach(), slope.to(x.dtype), self.rule)

    def switches(self, node, x, kernel, strides, dilations, begins, ends):
        """Flat indices (into the padded map, spatial axes flattened) of each window's first maximum
        in scan order, from the kept float32 bottom (oracle) or this forward."""
        torch = _torch()
        if self.oracle and self.kept is not None:
            source = torch.from_numpy(np.ascontiguousarray(_kept_array(self.kept, node.input[0]), dtype=np.float32))
            if tuple(source.shape) != tuple(x.shape):
                raise ValueError(f"kept blob {node.input[0]!r} has shape {tuple(source.shape)}, "
                                 f"this forward {tuple(x.shape)}")
        else:
            source = x.detach()
        padded = torch.nn.functional.pad(source, _torch_pads(begins, ends), value=-math.inf)
        return _argmax_windows(padded, kernel, strides, dilations)


def _argmax_windows(padded, kernel, strides, dilations):
    """For (N, C, *S) padded maps: (N, C, *out) flat indices into S of each window's first maximum,
    scanning the window in row-major order (Caffe's loop order). Padding is −∞ and never wins."""
    torch = _torch()
    n, c = padded.shape[:2]
    spatial = padded.shape[2:]
    windows = padded
    for axis, (k, s, d) in enumerate(zip(kernel, strides, dilations)):
        # unfold each axis by its window; a dilated window is a strided view of a wider one
        windows = windows.unfold(2 + axis, (k - 1) * d + 1, s)[..., ::d]
    out = windows.shape[2:2 + len(spatial)]
    offsets = windows.reshape(n, c, *out, -1).argmax(dim=-1)   # first maximum in row-major order
    # window offset (row-major over the kernel) + window origin → flat index into the padded map
    index = torch.zeros_like(offsets)
    remaining = offsets
    kernel_strides = [int(np.prod(kernel[i + 1:])) for i in range(len(kernel))]
    flat_strides = [int(np.prod(spatial[i + 1:])) for i in range(len(spatial))]
    for axis in range(len(kernel)):
        along = remaining // kernel_strides[axis]
        remaining = remaining % kernel_strides[axis]
        shape = [1] * (2 + len(out))
        shape[2 + axis] = out[axis]
        origin = (torch.arange(out[axis]) * strides[axis]).reshape(shape)
        index = index + (origin + along * dilations[axis]) * flat_strides[axis]
    return index


# --- ops: f(interp, node, bottoms, attrs) -> list of tops -------------------------------------------

def _conv(it, node, x, a):
    torch = _torch()
    data, weight = x[0], x[1]
    n = weight.dim() - 2
    kernel = list(a.get("kernel_shape", weight.shape[2:]))
    strides = list(a.get("strides", [1] * n))
    dilations = list(a.get("dilations", [1] * n))
    begins, ends, _ = _window_pads(node, a, tuple(data.shape[2:]), kernel, strides, dilations)
    data = torch.nn.functional.pad(data, _torch_pads(begins, ends))
    bias = x[2] if len(x) > 2 else None
    return [_functional(n, "conv")(data, weight, bias, stride=strides, dilation=dilations,
                                   groups=int(a.get("group", 1)))]


def _gemm(it, node, x, a):
    A = x[0].t() if a.get("transA", 0) else x[0]
    B = x[1].t() if a.get("transB", 0) else x[1]
    y = A @ B
    if a.get("alpha", 1.0) != 1.0:
        y = y * a["alpha"]
    if len(x) > 2 and x[2] is not None:
        y = y + x[2] * a.get("beta", 1.0)
    return [y]


def _matmul(it, node, x, a):
    return [x[0] @ x[1]]


def _batchnorm(it, node, x, a):
    data, scale, bias, mean, var = x[:5]
    # per channel (C,), or per activation (C, H, W) as opset < 9 allows with spatial=0
    shape = (1,) + tuple(scale.shape) if scale.dim() > 1 else (1, -1) + (1,) * (data.dim() - 2)
    inv = (var + a.get("epsilon", 1e-5)).rsqrt() * scale
    return [(data - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)]


def _maxpool(it, node, x, a):
    torch = _torch()
    data = x[0]
    kernel, strides, dilations, begins, ends, extension = _pool_params(node, a, data)
    ends = [e + extra for e, extra in zip(ends, extension)]
    if a.get("storage_order", 0):
        raise ModelError(f"MaxPool {node.name!r}: storage_order 1 is not supported by the torch reference")
    if not it.oracle:
        padded = torch.nn.functional.pad(data, _torch_pads(begins, ends), value=-math.inf)
        return [_functional(len(kernel), "max_pool")(padded, kernel, strides, dilation=dilations)]
    index = it.switches(node, data, kernel, strides, dilations, begins, ends)
    padded = torch.nn.functional.pad(data, _torch_pads(begins, ends))
    top = padded.flatten(2).gather(2, index.flatten(2)).reshape(index.shape)
    return [top]


def _global_maxpool(it, node, x, a):
    data = x[0]
    if not it.oracle:
        return [data.flatten(2).max(dim=2).values.reshape(data.shape[:2] + (1,) * (data.dim() - 2))]
    kernel = list(data.shape[2:])
    ones = [1] * len(kernel)
    zeros = [0] * len(kernel)
    index = it.switches(node, data, kernel, ones, ones, zeros, zeros)
    return [data.flatten(2).gather(2, index.flatten(2)).reshape(index.shape)]


def _avgpool(it, node, x, a):
    """Window sums over the divisor: the real pixels, plus the pads when count_include_pad (never
    the ceil_mode extension, as in Caffe)."""
    torch = _torch()
    data = x[0]
    kernel, strides, dilations, begins, ends, extension = _pool_params(node, a, data)
    if any(d != 1 for d in dilations):
        raise ModelError(f"AveragePool {node.name!r}: dilations are not supported by the torch reference")
    pool = _functional(len(kernel), "avg_pool")
    pad = torch.nn.functional.pad
    area = float(np.prod(kernel))
    outer = _torch_pads([0] * len(kernel), extension)
    sums = pool(pad(pad(data, _torch_pads(begins, ends)), outer), kernel, strides) * area
    real = torch.ones((1, 1) + tuple(data.shape[2:]), dtype=data.dtype)
    counted = pad(real, _torch_pads(begins, ends), value=float(a.get("count_include_pad", 0)))
    counts = pool(pad(counted, outer), kernel, strides) * area
    return [sums / counts]


def _global_avgpool(it, node, x, a):
    data = x[0]
    return [data.mean(dim=tuple(range(2, data.dim())), keepdim=True)]


def _reduce(it, node, x, a, op):
    data = x[0]
    axes = a.get("axes")
    if axes is None and len(x) > 1 and x[1] is not None:
        axes = [int(v) for v in x[1].tolist()]
    if not axes:
        if a.get("noop_with_empty_axes", 0):
            return [data]
        axes = list(range(data.dim()))
    dims = tuple(int(ax) % data.dim() for ax in axes)
    keep = bool(a.get("keepdims", 1))
    return [data.mean(dim=dims, keepdim=keep) if op == "mean" else data.sum(dim=dims, keepdim=keep)]


def _lrn(it, node, x, a):
    """y = x / (bias + α/size · Σ x²)^β, Σ over channels c − ⌊(size−1)/2⌋ … c + ⌈(size−1)/2⌉ (ONNX)."""
    torch = _torch()
    data = x[0]
    size = int(a["size"])
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    square = data * data
    shape = list(square.shape)
    square = torch.cat([square.new_zeros([shape[0], lo] + shape[2:]), square,
                        square.new_zeros([shape[0], hi] + shape[2:])], dim=1)
    window_sum = square.unfold(1, size, 1).sum(dim=-1)
    scale = a.get("bias", 1.0) + a.get("alpha", 1e-4) / size * window_sum
    return [data / scale.pow(a.get("beta", 0.75))]


def _relu(it, node, x, a):
    torch = _torch()
    data = x[0]
    if not it.oracle and it.rule == "backprop":
        return [torch.relu(data)]    # its backward uses [x > 0], as Caffe's
    source = it.slope_source(node, data)
    slope = (source > 0).to(data.dtype)
    top = data * slope if it.oracle else torch.relu(data)
    return [it.gate(data, top, slope)]


def _leaky_relu(it, node, x, a):
    return _piecewise_linear(it, node, x[0], float(a.get("alpha", 0.01)))


def _prelu(it, node, x, a):
    return _piecewise_linear(it, node, x[0], x[1])


def _piecewise_linear(it, node, data, negative_slope):
    torch = _torch()
    if not it.oracle and it.rule == "backprop":
        return [torch.where(data > 0, data, data * negative_slope)]
    source = it.slope_source(node, data)
    ones = torch.ones((), dtype=data.dtype)
    slope = torch.where(source > 0, ones, ones * negative_slope).to(data.dtype)
    top = data * slope if it.oracle else torch.where(data > 0, data, data * negative_slope)
    return [it.gate(data, top, slope)]


def _clip(it, node, x, a):
    torch = _torch()
    data = x[0]
    lo, hi = a.get("min", -math.inf), a.get("max", math.inf)
    if len(x) > 1 and x[1] is not None:
        lo = float(x[1])
    if len(x) > 2 and x[2] is not None:
        hi = float(x[2])
    top = data.clamp(min=lo, max=hi)
    if not it.oracle and it.rule == "backprop":
        return [top]
    source = it.slope_source(node, data)
    slope = ((source > lo) & (source < hi)).to(data.dtype)
    if it.oracle:
        top = torch.where(slope > 0, data, top)
    return [it.gate(data, top, slope)]


def _softmax(it, node, x, a, log=False):
    torch = _torch()
    data = x[0]
    fn = torch.log_softmax if log else torch.softmax
    if it.opset >= 13:
        return [fn(data, dim=int(a.get("axis", -1)))]
    axis = int(a.get("axis", 1)) % data.dim()   # before opset 13: coerced to 2-D at axis
    flat = data.reshape(int(np.prod(data.shape[:axis])), -1)
    return [fn(flat, dim=1).reshape(data.shape)]


def _variadic(op):
    def run(it, node, x, a):
        result = x[0]
        for other in x[1:]:
            result = op(result, other)
        return [result]
    return run


def _concat(it, node, x, a):
    return [_torch().cat(x, dim=int(a["axis"]))]


def _split(it, node, x, a):
    data = x[0]
    axis = int(a.get("axis", 0))
    if len(x) > 1 and x[1] is not None:
        sizes = [int(v) for v in x[1].tolist()]
    elif "split" in a:
        sizes = list(a["split"])
    else:
        parts = int(a.get("num_outputs", len(node.output)))
        chunk = -(-data.shape[axis] // parts)
        sizes = [min(chunk, data.shape[axis] - i * chunk) for i in range(parts)]
    return list(data.split(sizes, dim=axis))


def _slice(it, node, x, a):
    torch = _torch()
    data = x[0]
    if it.opset < 10:
        starts, ends = list(a["starts"]), list(a["ends"])
        axes = list(a.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = x[1].tolist(), x[2].tolist()
        axes = x[3].tolist() if len(x) > 3 and x[3] is not None else list(range(len(starts)))
        steps = x[4].tolist() if len(x) > 4 and x[4] is not None else [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = int(axis) % data.dim()
        dim = data.shape[axis]
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        index = torch.arange(start, end, step, dtype=torch.long)
        data = data.index_select(axis, index)
    return [data]


def _flatten(it, node, x, a):
    data = x[0]
    axis = int(a.get("axis", 1)) % (data.dim() + 1) if data.dim() else 0
    return [data.reshape(int(np.prod(data.shape[:axis])), -1)]


def _reshape(it, node, x, a):
    data = x[0]
    shape = [int(v) for v in x[1].tolist()]
    if not a.get("allowzero", 0):
        shape = [data.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return [data.reshape(shape)]


def _axes(it, x, a):
    if "axes" in a:
        return [int(v) for v in a["axes"]]
    if len(x) > 1 and x[1] is not None:
        return [int(v) for v in x[1].tolist()]
    return None


def _squeeze(it, node, x, a):
    data = x[0]
    axes = _axes(it, x, a)
    if axes is None:
        return [data.reshape([d for d in data.shape if d != 1])]
    axes = {ax % data.dim() for ax in axes}
    return [data.reshape([d for i, d in enumerate(data.shape) if i not in axes])]


def _unsqueeze(it, node, x, a):
    data = x[0]
    axes = _axes(it, x, a)
    rank = data.dim() + len(axes)
    for ax in sorted(ax % rank for ax in axes):
        data = data.unsqueeze(ax)
    return [data]


def _transpose(it, node, x, a):
    data = x[0]
    perm = a.get("perm", list(reversed(range(data.dim()))))
    return [data.permute(*perm)]


def _pad(it, node, x, a):
    torch = _torch()
    data = x[0]
    if it.opset < 11:
        pads, value = list(a["pads"]), float(a.get("value", 0.0))
    else:
        pads = [int(v) for v in x[1].tolist()]
        value = float(x[2]) if len(x) > 2 and x[2] is not None and x[2].numel() else 0.0
    axes = [int(v) % data.dim() for v in x[3].tolist()] if len(x) > 3 and x[3] is not None \
        else list(range(data.dim()))
    begins, ends = [0] * data.dim(), [0] * data.dim()
    for i, ax in enumerate(axes):
        begins[ax], ends[ax] = pads[i], pads[i + len(axes)]
    mode = a.get("mode", "constant")
    order = _torch_pads(begins, ends)
    if mode == "constant":
        return [torch.nn.functional.pad(data, order, value=value)]
    # reflect/edge pad only trailing axes in torch: trim the untouched leading ones from the list
    first = next((i for i in range(data.dim()) if begins[i] or ends[i]), data.dim())
    order = _torch_pads(begins[first:], ends[first:])
    return [torch.nn.functional.pad(data, order, mode={"reflect": "reflect", "edge": "replicate"}[mode])]


def _identity(it, node, x, a):
    return [x[0]]


def _dropout(it, node, x, a):
    torch = _torch()
    tops = [x[0]]
    if len(node.output) > 1:
        tops.append(torch.ones(x[0].shape, dtype=torch.bool))
    return tops


def _constant(it, node, x, a):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in a:
            return [it.tensor(np.asarray(a[key]))]
    raise ModelError(f"Constant {node.name!r}: unsupported value attribute")


def _shape(it, node, x, a):
    torch = _torch()
    shape = list(x[0].shape)
    start, end = int(a.get("start", 0)), a.get("end")
    return [torch.tensor(shape[start:None if end is None else int(end)], dtype=torch.long)]


def _gather(it, node, x, a):
    data, index = x[0], x[1].long()
    axis = int(a.get("axis", 0)) % data.dim()
    index = _wrap_negative(index, data.shape[axis])
    flat = data.index_select(axis, index.reshape(-1))
    return [flat.reshape(data.shape[:axis] + tuple(index.shape) + data.shape[axis + 1:])]


def _wrap_negative(index, dim):
    return index + (index < 0).long() * dim


def _cast(it, node, x, a):
    torch = _torch()
    target = helper.tensor_dtype_to_np_dtype(int(a["to"]))
    if np.issubdtype(target, np.floating):
        return [x[0].to(it.dtype)]
    return [x[0].to(getattr(torch, np.dtype(target).name))]


def _binary(name):
    def op(a_, b_):
        torch = _torch()
        return {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div,
                "Pow": torch.pow, "Max": torch.maximum, "Min": torch.minimum}[name](a_, b_)
    return op


def _elementwise(name):
    return _variadic(_binary(name))


def _unary(fn_name):
    def run(it, node, x, a):
        return [getattr(_torch(), fn_name)(x[0])]
    return run


_OPS = {
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "BatchNormalization": _batchnorm,
    "MaxPool": _maxpool,
    "GlobalMaxPool": _global_maxpool,
    "AveragePool": _avgpool,
    "GlobalAveragePool": _global_avgpool,
    "ReduceMean": lambda it, node, x, a: _reduce(it, node, x, a, "mean"),
    "ReduceSum": lambda it, node, x, a: _reduce(it, node, x, a, "sum"),
    "LRN": _lrn,
    "Relu": _relu,
    "LeakyRelu": _leaky_relu,
    "PRelu": _prelu,
    "Clip": _clip,
    "Softmax": _softmax,
    "LogSoftmax": lambda it, node, x, a: _softmax(it, node, x, a, log=True),
    "Sigmoid": _unary("sigmoid"),
    "Tanh": _unary("tanh"),
    "Add": _elementwise("Add"),
    "Sum": _elementwise("Add"),
    "Sub": _elementwise("Sub"),
    "Mul": _elementwise("Mul"),
    "Div": _elementwise("Div"),
    "Max": _elementwise("Max"),
    "Min": _elementwise("Min"),
    "Pow": _elementwise("Pow"),
    "Concat": _concat,
    "Split": _split,
    "Slice": _slice,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Transpose": _transpose,
    "Pad": _pad,
    "Identity": _identity,
    "Dropout": _dropout,
    "Constant": _constant,
    "Shape": _shape,
    "Gather": _gather,
    "Cast": _cast,
}


# --- the two entry points ------------------------------------------------------------------------

def _resolve_dtype(dtype):
    torch = _torch()
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    return getattr(torch, np.dtype(dtype).name)


def _feeds(it, inputs, requires_grad):
    torch = _torch()
    feeds = {}
    for name, value in inputs.items():
        if name not in it.input_names:
            raise KeyError(f"{name!r} is not an input of the graph (inputs: {', '.join(it.input_names)})")
        t = it.tensor(value) if not isinstance(value, torch.Tensor) else value.to(it.dtype)
        if requires_grad and t.is_floating_point():
            t.requires_grad_(True)
        feeds[name] = t
    missing = [n for n in it.input_names if n not in feeds]
    if missing:
        raise KeyError(f"missing graph inputs: {', '.join(missing)}")
    return feeds


def _input_grads(blobs, feeds, top_diffs, dtype):
    """Σ_tops ⟨top_diff, top⟩ differentiated w.r.t. every float input. A top diff with one more axis
    than its blob is a stack of K diffs: the result then has that leading K axis too."""
    torch = _torch()
    names = list(top_diffs)
    tops = [blobs[n] for n in names]
    diffs = [torch.as_tensor(np.asarray(top_diffs[n])).to(dtype) for n in names]
    stacked = [d.dim() == t.dim() + 1 for d, t in zip(diffs, tops)]
    for n, d, t, s in zip(names, diffs, tops, stacked):
        if tuple(d.shape[int(s):]) != tuple(t.shape):
            raise ValueError(f"top diff for {n!r} has shape {tuple(d.shape)}, blob {tuple(t.shape)}")
    if any(stacked) and not all(stacked):
        raise ValueError("either every top diff is stacked (K, …) or none is")
    inputs = [v for v in feeds.values() if v.requires_grad]
    k = diffs[0].shape[0] if stacked[0] else None
    runs = [[d[i] for d in diffs] for i in range(k)] if k is not None else [diffs]
    results = []
    for i, run in enumerate(runs):
        grads = torch.autograd.grad(tops, inputs, grad_outputs=run, retain_graph=i < len(runs) - 1,
                                    allow_unused=True)
        results.append([torch.zeros_like(v) if g is None else g for v, g in zip(inputs, grads)])
    names_in = [n for n, v in feeds.items() if v.requires_grad]
    if k is None:
        return {n: g.detach().numpy() for n, g in zip(names_in, results[0])}
    return {n: torch.stack([r[j] for r in results]).detach().numpy() for j, n in enumerate(names_in)}


class TorchNet:
    """A model run by PyTorch autograd: the benchmark peer.

    ``forward(**inputs)`` returns the graph outputs as numpy arrays and keeps every blob;
    ``blob(name)`` reads one; ``backward(**top_diffs)`` returns {input name: diff} for the last
    forward, where a top diff of shape ``(N, …)`` gives ``(N, C, H, W)`` input diffs and a stacked
    ``(K, N, …)`` one gives ``(K, N, C, H, W)`` (K backward passes over one graph).
    ``rule`` "deconvnet" or "guided" swaps the ReLU family's backward (masks from this forward).
    """

    def __init__(self, model, dtype=None, rule="backprop"):
        self.dtype = _resolve_dtype(dtype)
        self._it = _Interpreter(model, self.dtype, rule=rule)
        self.input_names = list(self._it.input_names)
        self.output_names = list(self._it.output_names)
        self._blobs = None
        self._feeds = None

    def forward(self, **inputs) -> dict:
        torch = _torch()
        with torch.enable_grad():
            self._feeds = _feeds(self._it, inputs, requires_grad=True)
            self._blobs = self._it.run(self._feeds)
        return {n: self._blobs[n].detach().numpy() for n in self.output_names}

    def blob(self, name) -> np.ndarray:
        if self._blobs is None:
            raise RuntimeError("call forward() first")
        return self._blobs[name].detach().numpy()

    def backward(self, **top_diffs) -> dict:
        if self._blobs is None:
            raise RuntimeError("call forward() first")
        return _input_grads(self._blobs, self._feeds, top_diffs, self.dtype)

    def input_grad(self, x, top_name, top_diff, input_name=None) -> np.ndarray:
        """Forward ``x`` and return the diff of input ``input_name`` (the only input by default)."""
        input_name = input_name or self.input_names[0]
        self.forward(**{input_name: x})
        return self.backward(**{top_name: top_diff})[input_name]


def reference_input_grad(model, x, top_name, top_diff, rule="backprop", kept=None, input_name=None,
                         forward_blobs=None):
    """The float64 oracle: d⟨top_diff, top⟩/d input under ``rule``, every ReLU-family mask and every
    max-pool switch taken from ``kept`` (blob name → float32 array, or an object whose values have
    ``.data``, e.g. ``Net.blobs``); with ``kept=None``, from this float64 forward.

    x: (N, C, H, W) input (or a dict of inputs); top_diff: (N, …) like the blob, or (K, N, …)
    stacked. Returns a float64 array (N, C, H, W), or (K, N, C, H, W) when stacked.
    forward_blobs: a dict to receive every blob of the float64 forward (saves a second forward).
    """
    torch = _torch()
    it = _Interpreter(model, torch.float64, rule=rule, oracle=True, kept=kept)
    input_name = input_name or it.input_names[0]
    inputs = dict(x) if isinstance(x, dict) else {input_name: x}
    with torch.enable_grad():
        feeds = _feeds(it, inputs, requires_grad=True)
        blobs = it.run(feeds)
        if forward_blobs is not None:
            forward_blobs.update({n: v.detach().numpy() for n, v in blobs.items()})
        return _input_grads(blobs, feeds, {top_name: top_diff}, torch.float64)[input_name]


def reference_forward(model, x, kept=None, input_name=None) -> dict:
    """Every blob of the oracle's float64 forward (masks and switches from ``kept`` when given)."""
    torch = _torch()
    it = _Interpreter(model, torch.float64, oracle=True, kept=kept)
    input_name = input_name or it.input_names[0]
    inputs = dict(x) if isinstance(x, dict) else {input_name: x}
    with torch.no_grad():
        blobs = it.run(_feeds(it, inputs, requires_grad=False))
    return {n: v.numpy() for n, v in blobs.items()}
