"""The float64 oracle of the whole-network and zoo tests: the benchmark's ONNX → PyTorch interpreter
(``caffe_port.bench.torch_peer.TorchGraph``) with the non-smooth decisions taken from the forward
under test.

``reference_input_grad(model, x, top_name, top_diff, rule, kept)`` computes the input diff in
float64 (``kept``: blob name → float32 array): every ReLU-family node takes its local derivative
f'(x) from the kept blobs, and every max pool takes its switches (the first maximum of each window
in scan order, padded positions excluded — Caffe's rule) from its kept float32 bottom. The
reference then differs from the engine only by arithmetic precision: a float32 forward and a
float64 one disagree on a few near-zero ReLU inputs and near-tied pooling windows, and those flips
alone move a VGG input gradient by up to 2e-2 relative L2.

The three rules, for a ReLU-family node with local derivative f'(x) and incoming diff g:

    backprop   g · f'(x)
    deconvnet  max(g, 0)
    guided     max(g, 0) · f'(x)

are one ``torch.autograd.Function``; every other node is differentiated by autograd. Max pooling
routes its diff through the switches under every rule (Zeiler & Fergus's unpooling).

torch is imported inside the functions, as in the peer, so that a test module importing this one
can still skip itself (``pytest.importorskip("torch")``) where torch is missing.
"""
from __future__ import annotations

import math

import numpy as np

from caffe_port.bench.torch_peer import TorchGraph, clip_bounds, maxpool_window, torch_pads
from caffe_port.kernels.relu import RULES


# --- the rule gate: one autograd.Function for the whole ReLU family -----------------------------------

_RULE_GATE = None


def _rule_gate():
    """``RuleGate.apply(x, top, slope, rule)`` returns ``top`` (computed from x beforehand, without
    grad) and sends back the diff the rule prescribes with slope = f'(x)."""
    global _RULE_GATE
    if _RULE_GATE is None:
        import torch

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


# --- the blobs of the forward under test ----------------------------------------------------------

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


def _argmax_windows(padded, kernel, strides, dilations):
    """For (N, C, *S) padded maps: (N, C, *out) flat indices into S of each window's first maximum,
    scanning the window in row-major order (Caffe's loop order). Padding is −∞ and never wins."""
    import torch
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


# --- the gated ops: f(graph, node, bottoms, attrs) -> list of tops ------------------------------------

def _relu(graph, node, x, a):
    data = x[0]
    slope = (graph.slope_source(node, data, a) > 0).to(data.dtype)
    return [graph.gate(data, data * slope, slope)]


def _piecewise_linear(graph, node, a, data, negative_slope):
    import torch
    source = graph.slope_source(node, data, a)
    ones = torch.ones((), dtype=data.dtype)
    slope = torch.where(source > 0, ones, ones * negative_slope).to(data.dtype)
    return [graph.gate(data, data * slope, slope)]


def _leaky_relu(graph, node, x, a):
    return _piecewise_linear(graph, node, a, x[0], float(a.get("alpha", 0.01)))


def _prelu(graph, node, x, a):
    return _piecewise_linear(graph, node, a, x[0], x[1])


def _clip(graph, node, x, a):
    import torch
    data = x[0]
    lo, hi = clip_bounds(x, a)
    source = graph.slope_source(node, data, a)
    slope = ((source > lo) & (source < hi)).to(data.dtype)
    # where the kept forward says "inside", the top is x itself, even if float64 x crossed a bound
    top = torch.where(slope > 0, data, data.clamp(min=lo, max=hi))
    return [graph.gate(data, top, slope)]


def _maxpool(graph, node, x, a):
    import torch
    data = x[0]
    kernel, strides, dilations, begins, ends = maxpool_window(node, a, data)
    index = graph.switches(node, data, kernel, strides, dilations, begins, ends)
    padded = torch.nn.functional.pad(data, torch_pads(begins, ends))
    return [padded.flatten(2).gather(2, index.flatten(2)).reshape(index.shape)]


def _global_maxpool(graph, node, x, a):
    data = x[0]
    kernel = list(data.shape[2:])
    ones = [1] * len(kernel)
    zeros = [0] * len(kernel)
    index = graph.switches(node, data, kernel, ones, ones, zeros, zeros)
    return [data.flatten(2).gather(2, index.flatten(2)).reshape(index.shape)]


class OracleGraph(TorchGraph):
    """``TorchGraph`` in float64 whose ReLU family and max pools take their masks and switches from
    ``kept`` (or, when ``kept`` is None, from this run's own forward) and whose ReLU family sends
    back the diff ``rule`` prescribes."""

    ops = {**TorchGraph.ops, "Relu": _relu, "LeakyRelu": _leaky_relu, "PRelu": _prelu, "Clip": _clip,
           "MaxPool": _maxpool, "GlobalMaxPool": _global_maxpool}

    def __init__(self, model, rule="backprop", kept=None):
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
        super().__init__(model, "float64")
        self.rule = rule
        self.kept = kept

    def slope_source(self, node, x, a):
        """The blob f'(x) is read from, as the engine's kernel reads it: Relu and Clip their top,
        LeakyRelu and PRelu their bottom (the other serves where the two give the same mask)."""
        if self.kept is None:
            return x.detach()
        top, bottom = node.output[0], node.input[0]
        order = [top, bottom] if node.op_type in ("Relu", "Clip") else [bottom, top]
        if node.op_type == "PRelu" or (node.op_type == "LeakyRelu" and float(a.get("alpha", 0.01)) <= 0):
            order = order[:1]      # a non-positive slope makes the top's sign say nothing about x's
        for name in order:
            if _has(self.kept, name):
                return self.tensor(_kept_array(self.kept, name))
        _kept_array(self.kept, order[0])   # raises, naming the blob

    def gate(self, x, top, slope):
        """The node's output; its backward follows ``self.rule`` with f'(x) = slope."""
        return _rule_gate().apply(x, top.detach(), slope.to(x.dtype), self.rule)

    def switches(self, node, x, kernel, strides, dilations, begins, ends):
        """Flat indices (into the padded map, spatial axes flattened) of each window's first maximum
        in scan order, from the kept float32 bottom (or this forward)."""
        import torch
        if self.kept is not None:
            source = torch.from_numpy(np.ascontiguousarray(_kept_array(self.kept, node.input[0]), dtype=np.float32))
            if tuple(source.shape) != tuple(x.shape):
                raise ValueError(f"kept blob {node.input[0]!r} has shape {tuple(source.shape)}, "
                                 f"this forward {tuple(x.shape)}")
        else:
            source = x.detach()
        padded = torch.nn.functional.pad(source, torch_pads(begins, ends), value=-math.inf)
        return _argmax_windows(padded, kernel, strides, dilations)


# --- the two entry points ------------------------------------------------------------------------

def _inputs(graph, x, input_name):
    """x: one array for ``input_name`` (the graph's first input by default), or {name: array}."""
    return dict(x) if isinstance(x, dict) else {input_name or graph.input_names[0]: x}


def reference_input_grad(model, x, top_name, top_diff, rule="backprop", kept=None, input_name=None,
                         forward_blobs=None):
    """The float64 oracle: d⟨top_diff, top⟩/d input under ``rule``, every ReLU-family mask and every
    max-pool switch taken from ``kept`` (blob name → float32 array, or an object whose values have
    ``.data``, e.g. ``Net.blobs``); with ``kept=None``, from this float64 forward.

    x: (N, C, H, W) input (or a dict of inputs); top_diff: (N, …) like the blob, or (K, N, …)
    stacked. Returns a float64 array (N, C, H, W), or (K, N, C, H, W) when stacked.
    forward_blobs: a dict to receive every blob of the float64 forward (saves a second forward).
    """
    import torch
    graph = OracleGraph(model, rule=rule, kept=kept)
    input_name = input_name or graph.input_names[0]
    with torch.enable_grad():
        feeds = graph.make_feeds(_inputs(graph, x, input_name), requires_grad=True)
        blobs = graph.run(feeds)
        if forward_blobs is not None:
            forward_blobs.update({n: v.detach().numpy() for n, v in blobs.items()})
        return graph.input_grads(blobs, feeds, {top_name: top_diff})[input_name]


def reference_forward(model, x, kept=None, input_name=None) -> dict:
    """Every blob of the oracle's float64 forward (masks and switches from ``kept`` when given)."""
    import torch
    graph = OracleGraph(model, kept=kept)
    with torch.no_grad():
        blobs = graph.run(graph.make_feeds(_inputs(graph, x, input_name), requires_grad=False))
    return {n: v.numpy() for n, v in blobs.items()}
