"""Which axis of a blob is what: the image input's layout, and the roles of every 4-D blob's axes;
and whether the graph rescales its image input itself.

ONNX's convolutions and pools read (N, C, H, W): that is the one fact the graph states about
layouts. Everything else is found from it:

* the image input's layout. Follow the input forward through the layers that keep axes where
  they are (elementwise arithmetic, casts, activations) and through Transposes, to the first
  layer that reads channels first (Conv, a pool, BatchNormalization …). Its input's axes are the
  image's axes permuted by the Transposes met on the way, so the channel axis of the image is
  where the permutation takes axis 1 from. tf2onnx's Keras exports, (N, H, W, C) then
  Transpose(perm = 0 3 1 2) then Conv, are NHWC; an input that goes straight to a Conv is NCHW.
  A graph that never reaches such a layer (an MLP on pixels) is decided by the shape: NCHW where
  axis 1 holds 1, 3 or 4 channels, NHWC where axis 3 does and the two before it are larger
  (spatial), ONNX's own NCHW where neither fits; where nothing can be told (every dimension
  symbolic) the caller is asked for ``layout=`` (``--layout``).
* the roles of a 4-D blob's axes ("NCHW", "NHWC", …), for Grad-CAM's and CAM's feature maps:
  channel-first layers produce NCHW, a Transpose permutes its input's roles, a layer that keeps
  axes keeps them (elementwise, LayerNormalization, a MatMul with a constant matrix over the last
  axis); where the forward pass cannot tell, a consumer can (a GlobalAveragePool's input is
  NCHW; a Transpose's input is its output's roles un-permuted). A blob no rule reaches is taken
  as NCHW, ONNX's own convention.

The methods (caffe_port.methods) work on images as (N, C, H, W) and convert at the Net's
boundary with ``InputLayout.to_net`` / ``from_net``; for an NCHW net both are the identity and
return their argument itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from caffe_port.errors import InputError

LAYOUTS = ("NCHW", "NHWC")
CHANNEL_COUNTS = (1, 3, 4)
# layers whose (first) input and output are (N, C, spatial…) by the ONNX spec
CHANNELS_FIRST = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool",
                  "GlobalMaxPool", "GlobalLpPool", "BatchNormalization", "InstanceNormalization",
                  "GroupNormalization", "LRN", "MaxUnpool", "DepthToSpace", "SpaceToDepth", "PRelu"}
# layers that keep every axis where it is (the output has the roles of a same-rank input)
AXIS_KEEPING = {"Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
                "Elu", "Selu", "Celu", "Gelu", "Softplus", "Mish", "ThresholdedRelu", "Erf", "Exp",
                "Log", "Neg", "Abs", "Reciprocal", "Sqrt", "Floor", "Ceil", "Round", "Sign", "Cast",
                "CastLike", "Identity", "Dropout", "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min",
                "Sum", "Where", "Pad", "Concat", "Resize", "Softmax", "LogSoftmax",
                "LayerNormalization", "Expand"}


# --- the image input ----------------------------------------------------------------------------

@dataclass(frozen=True)
class InputLayout:
    """The image input's axes: ``layout`` "NCHW" or "NHWC", and how it was decided (``reason``)."""
    layout: str
    reason: str = ""

    @property
    def channel_axis(self) -> int:
        return self.layout.index("C")

    @property
    def spatial_axes(self) -> tuple:
        return self.layout.index("H"), self.layout.index("W")

    def image_shape(self, shape):
        """(C, H, W) of an input shape in this layout (the batch axis dropped)."""
        return tuple(shape[self.layout.index(a)] for a in "CHW")

    def to_net(self, data):
        """(N, C, H, W) images → the input blob's layout."""
        return data if self.layout == "NCHW" else np.ascontiguousarray(np.moveaxis(data, -3, -1))

    def from_net(self, blob):
        """An input-shaped array (with any leading axes, e.g. K stacked diffs) → (…, C, H, W)."""
        return blob if self.layout == "NCHW" else np.ascontiguousarray(np.moveaxis(blob, -1, -3))


def check_layout(layout):
    text = str(layout).upper()
    if text not in LAYOUTS:
        raise InputError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    return text


def input_layout(graph, name, layout=None) -> InputLayout:
    """The layout of the 4-D input ``name``: ``layout`` if given, else what the graph shows, else
    what the shape shows; InputError asking for ``layout=`` (``--layout``) when neither does."""
    shape = graph.input_shape(name, batch=None)
    if len(shape) != 4:
        raise InputError(f"input {name!r} has shape {_shown(shape)}, not a 4-D image batch")
    if layout is not None:
        return InputLayout(check_layout(layout), "as asked")
    channel_axis, reader = _channel_axis_from_graph(graph, name)
    if channel_axis in (1, 3):
        found = "NCHW" if channel_axis == 1 else "NHWC"
        how = "read channels first by" if channel_axis == 1 else "transposed to channels first for"
        return InputLayout(found, f"from the graph: {how} {reader.op_type} {reader.name!r}")
    channels_first = shape[1] in CHANNEL_COUNTS
    channels_last = shape[3] in CHANNEL_COUNTS and all(d is None or d > max(CHANNEL_COUNTS) for d in shape[1:3])
    if channels_first != channels_last:
        return InputLayout("NCHW" if channels_first else "NHWC", f"from the shape {_shown(shape)}")
    if channels_first or all(d is None for d in shape[1:]):
        raise InputError(f"cannot tell the layout of input {name!r} of shape {_shown(shape)} from the "
                         f"graph or the shape; pass --layout NCHW or --layout NHWC (layout= in Python)")
    # ONNX's own convention, and what caffe_port assumed before it looked at layouts
    return InputLayout("NCHW", "ONNX's default")


def _shown(shape):
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _channel_axis_from_graph(graph, name):
    """(the input axis that reaches the first channels-first layer as its axis 1, that layer),
    or (None, None)."""
    axes, reader, _ = _path_to_channels_first(graph, name)
    return (None, None) if reader is None else (axes[1], reader)


def _path_to_channels_first(graph, name):
    """(axes, reader, path): the first channels-first layer reached from the input through
    axis-keeping layers and Transposes, which input axis each axis of its input is, and the
    layers on the way (reader None when none is reached)."""
    frontier = [(name, tuple(range(4)), ())]       # blob, which input axis each of its axes is, path
    seen = set()
    while frontier:
        blob, axes, path = frontier.pop(0)
        if blob in seen:
            continue
        seen.add(blob)
        for node in graph.consumers.get(blob, ()):
            if node.op_type in CHANNELS_FIRST and node.inputs and node.inputs[0] == blob:
                return axes, node, path
            out = node.outputs[0] if node.outputs else None
            if not out:
                continue
            if node.op_type == "Transpose":
                frontier.append((out, tuple(axes[p] for p in _perm(node, len(axes))), path + (node,)))
            elif node.op_type in AXIS_KEEPING and _same_rank(graph, blob, out):
                frontier.append((out, axes, path + (node,)))
    return None, None, ()


def rescaling_layer(graph, name):
    """The layer by which the graph brings its image input from pixel values to unit range itself
    (Keras' Rescaling as Mul by 1/127.5, a Div by 255 before the permute of an NHWC export), or
    None: a Mul by at most 1/64 or a Div by at least 64, on the way to the first channels-first
    layer. Such a net reads 0–255 pixels, whatever the torchvision default would do to them."""
    for node in _path_to_channels_first(graph, name)[2]:
        constant = next((graph.constants[i] for i in node.inputs[1:] if i in graph.constants), None)
        if constant is None or constant.size == 0 or not np.all(constant):
            continue
        magnitude = float(np.max(np.abs(constant)))
        if (node.op_type == "Mul" and magnitude <= 1 / 64) or (node.op_type == "Div" and float(np.min(np.abs(constant))) >= 64):
            return node
    return None


def _same_rank(graph, a, b):
    shapes = graph.static_shapes
    return a in shapes and b in shapes and len(shapes[a]) == len(shapes[b])


# --- every 4-D blob ------------------------------------------------------------------------------

def axis_roles(graph, input_layouts) -> dict:
    """{blob: roles} for the 4-D blobs whose axes the graph shows (``input_layouts``: {input:
    "NCHW" | "NHWC"}); a role string names each axis, e.g. "NHWC"."""
    ranks = {k: len(v) for k, v in graph.static_shapes.items() if v is not None}
    roles = {k: v for k, v in input_layouts.items()}
    for node in graph.nodes:                                 # forward: from producers
        _forward_roles(graph, node, roles, ranks)
    for node in reversed(graph.nodes):                       # backward: from consumers
        _backward_roles(graph, node, roles, ranks)
    return {k: v for k, v in roles.items() if len(v) == 4}


def _forward_roles(graph, node, roles, ranks):
    out = node.outputs[0] if node.outputs else None
    if not out or ranks.get(out) != 4 or out in roles:
        return
    if node.op_type in CHANNELS_FIRST:
        roles[out] = "NCHW"
    elif node.op_type == "Transpose" and node.inputs[0] in roles:
        roles[out] = "".join(roles[node.inputs[0]][p] for p in _perm(node, 4))
    elif node.op_type in AXIS_KEEPING or _keeps_axes(graph, node):
        known = [roles[i] for i in node.inputs if i in roles and ranks.get(i) == 4]
        if known:
            roles[out] = known[0]
    elif node.op_type.startswith("Reduce") and int(node.attrs.get("keepdims", 1)) and node.inputs[0] in roles:
        roles[out] = roles[node.inputs[0]]


def _backward_roles(graph, node, roles, ranks):
    first = node.inputs[0] if node.inputs else None
    out = node.outputs[0] if node.outputs else None
    if not first or ranks.get(first) != 4 or first in roles or first in graph.constants:
        return
    if node.op_type in CHANNELS_FIRST:
        roles[first] = "NCHW"
    elif node.op_type == "Transpose" and out in roles:
        perm = _perm(node, 4)
        inverse = [0] * 4
        for i, p in enumerate(perm):
            inverse[p] = i
        roles[first] = "".join(roles[out][inverse[a]] for a in range(4))
    elif (node.op_type in AXIS_KEEPING or _keeps_axes(graph, node)) and out in roles and ranks.get(out) == 4:
        roles[first] = roles[out]


def _perm(node, rank):
    perm = node.attrs.get("perm")
    return list(range(rank))[::-1] if perm is None else [int(p) for p in perm]


def _keeps_axes(graph, node):
    """A MatMul by a constant matrix (a Linear layer over the last axis) keeps the other axes,
    and the last one stays the channels."""
    return node.op_type == "MatMul" and len(node.inputs) == 2 and node.inputs[1] in graph.constants \
        and graph.constants[node.inputs[1]].ndim == 2


def feature_roles(graph, blob, input_layouts) -> str:
    """The roles of a 4-D blob's axes; "NCHW" where the graph does not show them."""
    return axis_roles(graph, input_layouts).get(blob, "NCHW")


def to_channels_first(array, roles, lead=0):
    """An array whose axes after ``lead`` leading ones have ``roles`` → (…, N, C, H, W)."""
    if roles == "NCHW":
        return array
    order = [roles.index(a) for a in "NCHW"]
    return np.moveaxis(array, [lead + o for o in order], [lead + k for k in range(4)])
