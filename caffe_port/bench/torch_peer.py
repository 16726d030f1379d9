"""PyTorch's side of ``caffe-port bench``: an ONNX graph run node by node with plain torch
functions (``F.conv2d``, ``F.max_pool2d``, ``F.linear``…) and differentiated by autograd — what a
PyTorch user would write for the same network and weights, timed beside caffe_port's backward and
checked against it.

torch is optional (the ``test`` extra, not a dependency of caffe_port): it is imported inside the
functions that build or run a graph, so this module imports without it
(``caffe_port.bench.run.torch_available`` says whether the peer can run).

* ``TorchGraph(model, dtype)`` is the interpreter: ``run(feeds)`` evaluates each node with the
  function its op type has in ``TorchGraph.ops``; ``make_feeds`` turns arrays into graph inputs and
  ``input_grads`` top diffs into input gradients. A subclass may replace entries of ``ops`` (the
  test suite's float64 oracle gates the ReLU family and max pooling by the forward under test).
* ``TorchNet(model, dtype, device)`` is the peer: ``forward``, ``backward``, ``input_grad``; on
  ``device="cuda"`` for the GPU rows of ``caffe-port bench``.

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


def _torch():
    import torch
    return torch


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


# --- geometry -------------------------------------------------------------------------------------

def torch_pads(begins, ends):
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
        raise ModelError(f"{n}-D {name} is not supported by the PyTorch peer")
    return getattr(F, f"{name}{n}d")


def maxpool_window(node, a, x):
    """(kernel, strides, dilations, begins, ends) of a MaxPool over ``x``: the pads of each spatial
    axis, ceil_mode's extension included in ``ends`` (padded positions never win a window)."""
    kernel, strides, dilations, begins, ends, extension = _pool_params(node, a, x)
    if a.get("storage_order", 0):
        raise ModelError(f"MaxPool {node.name!r}: storage_order 1 is not supported by the PyTorch peer")
    return kernel, strides, dilations, begins, [e + extra for e, extra in zip(ends, extension)]


def clip_bounds(x, a):
    """A Clip node's (min, max): attributes before opset 11, optional inputs from it on."""
    lo, hi = a.get("min", -math.inf), a.get("max", math.inf)
    if len(x) > 1 and x[1] is not None:
        lo = float(x[1])
    if len(x) > 2 and x[2] is not None:
        hi = float(x[2])
    return lo, hi


# --- ops: f(graph, node, bottoms, attrs) -> list of tops --------------------------------------------

def _conv(it, node, x, a):
    torch = _torch()
    data, weight = x[0], x[1]
    n = weight.dim() - 2
    kernel = list(a.get("kernel_shape", weight.shape[2:]))
    strides = list(a.get("strides", [1] * n))
    dilations = list(a.get("dilations", [1] * n))
    begins, ends, _ = _window_pads(node, a, tuple(data.shape[2:]), kernel, strides, dilations)
    data = torch.nn.functional.pad(data, torch_pads(begins, ends))
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
    kernel, strides, dilations, begins, ends = maxpool_window(node, a, x[0])
    padded = torch.nn.functional.pad(x[0], torch_pads(begins, ends), value=-math.inf)
    return [_functional(len(kernel), "max_pool")(padded, kernel, strides, dilation=dilations)]


def _global_maxpool(it, node, x, a):
    data = x[0]
    return [data.flatten(2).max(dim=2).values.reshape(data.shape[:2] + (1,) * (data.dim() - 2))]


def _avgpool(it, node, x, a):
    """Window sums over the divisor: the real pixels, plus the pads when count_include_pad (never
    the ceil_mode extension, as in Caffe)."""
    torch = _torch()
    data = x[0]
    kernel, strides, dilations, begins, ends, extension = _pool_params(node, a, data)
    if any(d != 1 for d in dilations):
        raise ModelError(f"AveragePool {node.name!r}: dilations are not supported by the PyTorch peer")
    pool = _functional(len(kernel), "avg_pool")
    pad = torch.nn.functional.pad
    area = float(np.prod(kernel))
    outer = torch_pads([0] * len(kernel), extension)
    sums = pool(pad(pad(data, torch_pads(begins, ends)), outer), kernel, strides) * area
    real = torch.ones((1, 1) + tuple(data.shape[2:]), dtype=data.dtype, device=data.device)
    counted = pad(real, torch_pads(begins, ends), value=float(a.get("count_include_pad", 0)))
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
    return [_torch().relu(x[0])]     # its backward uses [x > 0], as Caffe's


def _leaky_relu(it, node, x, a):
    data = x[0]
    return [_torch().where(data > 0, data, data * float(a.get("alpha", 0.01)))]


def _prelu(it, node, x, a):
    data = x[0]
    return [_torch().where(data > 0, data, data * x[1])]


def _clip(it, node, x, a):
    lo, hi = clip_bounds(x, a)
    return [x[0].clamp(min=lo, max=hi)]


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
        # Python's slice clamping is ONNX's, except that ONNX clamps a negative step's start below
        # the first element to that element, where Python leaves the range empty
        if step < 0 and start < -dim:
            start = 0
        index = torch.arange(*slice(int(start), int(end), int(step)).indices(dim), dtype=torch.long,
                             device=data.device)
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
    order = torch_pads(begins, ends)
    if mode == "constant":
        return [torch.nn.functional.pad(data, order, value=value)]
    # reflect/edge pad only trailing axes in torch: trim the untouched leading ones from the list
    first = next((i for i in range(data.dim()) if begins[i] or ends[i]), data.dim())
    order = torch_pads(begins[first:], ends[first:])
    return [torch.nn.functional.pad(data, order, mode={"reflect": "reflect", "edge": "replicate"}[mode])]


def _identity(it, node, x, a):
    return [x[0]]


def _dropout(it, node, x, a):
    torch = _torch()
    tops = [x[0]]
    if len(node.output) > 1:
        tops.append(torch.ones(x[0].shape, dtype=torch.bool, device=x[0].device))
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
    return [torch.tensor(shape[start:None if end is None else int(end)], dtype=torch.long, device=it.device)]


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


# --- the interpreter and the peer -----------------------------------------------------------------

def resolve_dtype(dtype):
    """A torch dtype from None (float32), a torch dtype, or anything numpy reads as a dtype."""
    torch = _torch()
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    return getattr(torch, np.dtype(dtype).name)


class TorchGraph:
    """One ONNX graph on torch tensors of ``dtype`` on ``device`` (default "cpu"; "cuda" for the GPU
    peer); every node runs the function ``ops`` gives its op type, f(graph, node, bottoms,
    attributes) → tops."""

    ops = _OPS

    def __init__(self, model, dtype=None, device=None):
        self.model = _load(model)
        self.dtype = resolve_dtype(dtype)
        self.device = _torch().device(device or "cpu")
        self.opset = next((int(i.version) for i in self.model.opset_import if i.domain in ("", "ai.onnx")), 1)
        graph = self.model.graph
        unsupported = {}
        for node in graph.node:
            if node.domain not in ("", "ai.onnx") or node.op_type not in self.ops:
                unsupported.setdefault(node.op_type, []).append(node.name or node.output[0])
        if unsupported:
            raise UnsupportedOpError(unsupported)
        self.params = {}
        for init in graph.initializer:
            self.params[init.name] = self.tensor(numpy_helper.to_array(init))
        self.input_names = [i.name for i in graph.input if i.name not in self.params]
        self.output_names = [o.name for o in graph.output]

    def tensor(self, array):
        torch = _torch()
        array = np.asarray(array)
        t = torch.from_numpy(np.array(array, copy=True))
        t = t.to(self.dtype) if np.issubdtype(array.dtype, np.floating) else t
        return t.to(self.device)

    def run(self, feeds: dict) -> dict:
        """Forward; returns every blob (torch tensors), constants included."""
        blobs = dict(self.params)
        blobs.update(feeds)
        for node in self.model.graph.node:
            bottoms = [blobs[name] if name else None for name in node.input]
            tops = self.ops[node.op_type](self, node, bottoms, _attrs(node))
            for name, top in zip(node.output, tops):
                if name:
                    blobs[name] = top
        return blobs

    def make_feeds(self, inputs, requires_grad) -> dict:
        """{input name: tensor of ``dtype``} from arrays or tensors; every graph input is needed."""
        torch = _torch()
        feeds = {}
        for name, value in inputs.items():
            if name not in self.input_names:
                raise KeyError(f"{name!r} is not an input of the graph (inputs: {', '.join(self.input_names)})")
            t = self.tensor(value) if not isinstance(value, torch.Tensor) else value.to(self.device, self.dtype)
            if requires_grad and t.is_floating_point():
                t.requires_grad_(True)
            feeds[name] = t
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise KeyError(f"missing graph inputs: {', '.join(missing)}")
        return feeds

    def input_grads(self, blobs, feeds, top_diffs) -> dict:
        """Σ_tops ⟨top_diff, top⟩ differentiated w.r.t. every float input, as numpy arrays. A top
        diff with one more axis than its blob is a stack of K diffs: the result then has that
        leading K axis too."""
        torch = _torch()
        names = list(top_diffs)
        tops = [blobs[n] for n in names]
        diffs = [torch.as_tensor(np.asarray(top_diffs[n])).to(self.device, self.dtype) for n in names]
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
            return {n: g.detach().cpu().numpy() for n, g in zip(names_in, results[0])}
        return {n: torch.stack([r[j] for r in results]).detach().cpu().numpy()
                for j, n in enumerate(names_in)}


class TorchNet:
    """A model run by PyTorch autograd: the benchmark peer.

    ``forward(**inputs)`` returns the graph outputs as numpy arrays and keeps every blob;
    ``blob(name)`` reads one; ``backward(**top_diffs)`` returns {input name: diff} for the last
    forward, where a top diff of shape ``(N, …)`` gives ``(N, C, H, W)`` input diffs and a stacked
    ``(K, N, …)`` one gives ``(K, N, C, H, W)`` (K backward passes over one graph).
    dtype: None (float32), a torch dtype, or a numpy one (``"float64"``); device: None ("cpu") or
    a torch device ("cuda"): the weights and every blob live there, results come back as numpy.
    """

    def __init__(self, model, dtype=None, device=None):
        self.graph = TorchGraph(model, dtype, device)
        self.dtype = self.graph.dtype
        self.input_names = list(self.graph.input_names)
        self.output_names = list(self.graph.output_names)
        self._blobs = None
        self._feeds = None

    def forward(self, **inputs) -> dict:
        torch = _torch()
        with torch.enable_grad():
            self._feeds = self.graph.make_feeds(inputs, requires_grad=True)
            self._blobs = self.graph.run(self._feeds)
        return {n: self._blobs[n].detach().cpu().numpy() for n in self.output_names}

    def blob(self, name) -> np.ndarray:
        if self._blobs is None:
            raise RuntimeError("call forward() first")
        return self._blobs[name].detach().cpu().numpy()

    def backward(self, **top_diffs) -> dict:
        if self._blobs is None:
            raise RuntimeError("call forward() first")
        return self.graph.input_grads(self._blobs, self._feeds, top_diffs)

    def input_grad(self, x, top_name, top_diff, input_name=None) -> np.ndarray:
        """Forward ``x`` and return the diff of input ``input_name`` (the only input by default)."""
        input_name = input_name or self.input_names[0]
        self.forward(**{input_name: x})
        return self.backward(**{top_name: top_diff})[input_name]
