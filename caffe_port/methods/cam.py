"""The CAM family: a class-weighted sum of one layer's feature maps, upsampled to the image.

For feature maps A (N, C, h, w) at some layer and channel weights α (K, N, C) for the K classes,

    M_c = [ReLU] ( Σ_k α_ck · A_k )                               (K, N, h, w)

upsampled bilinearly (OpenCV's pixel-centre convention) to the input's H×W. The variants differ
only in α, as in pytorch-grad-cam's base class:

    CAM        α_ck = w_ck, the weights of the linear layer after global average pooling
               (Zhou et al. 2016); no ReLU, no bias: the map's spatial mean + b_c is S_c
    Grad-CAM   α_ck = mean_ij ∂S_c/∂A_k(i,j), then ReLU (Selvaraju et al. 2017; gradcam.py)

On a GAP → linear network ∂S_c/∂A_k(i,j) = w_ck / (h·w), so Grad-CAM = ReLU(CAM) / (h·w).
"""
from __future__ import annotations

from abc import abstractmethod

import cv2
import numpy as np

from caffe_port.errors import InputError
from caffe_port.layout import axis_roles, to_channels_first
from caffe_port.methods.base import Attribution, Method, as_batch

# layers that pass a blob through unchanged in value (only its shape may change)
PASS_THROUGH = ("Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout")


def upsample(maps, size, interpolation="linear"):
    """(..., h, w) → (..., H, W) with cv2.resize (bilinear by default)."""
    flag = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "nearest": cv2.INTER_NEAREST}[interpolation]
    maps = np.asarray(maps, dtype=np.float32)
    height, width = size
    if tuple(maps.shape[-2:]) == (height, width):
        return maps.copy()
    flat = maps.reshape((-1,) + maps.shape[-2:])
    out = np.empty((flat.shape[0], height, width), dtype=np.float32)
    for k, m in enumerate(flat):
        out[k] = cv2.resize(np.ascontiguousarray(m), (width, height), interpolation=flag)
    return out.reshape(maps.shape[:-2] + (height, width))


class CAMFamily(Method, Attribution):
    """Shared mechanism; subclasses give ``default_layer`` and ``channel_weights`` (and ``relu``).

    layer:    the feature blob A (default: chosen by the subclass)
    upsample: "linear" (default), "cubic", "nearest", or None to keep the layer's h×w
    """
    relu = True

    def __init__(self, net, layer=None, *, upsample="linear", **kwargs):
        super().__init__(net, **kwargs)
        if layer is not None:
            net.blobs[layer]                    # BlobError if unknown
            if layer not in net.graph.ancestors(self.score_blob):
                raise InputError(f"layer {layer!r} does not lie on the path to the score blob "
                                 f"{self.score_blob!r}")
        if upsample not in ("linear", "cubic", "nearest", None):
            raise InputError(f"upsample must be 'linear', 'cubic', 'nearest' or None, not {upsample!r}")
        self._layer = layer
        self.upsample = upsample

    @property
    def layer(self):
        if self._layer is None:
            self._layer = self.default_layer()
        return self._layer

    def roles(self, blob):
        """The roles of a 4-D blob's axes ("NCHW", "NHWC", …: caffe_port.layout)."""
        if not hasattr(self, "_roles"):
            self._roles = axis_roles(self.net.graph, {self.input_blob: self.layout.layout})
        return self._roles.get(blob, "NCHW")

    def layer_channels_first(self, array, lead=0):
        """The layer's data (or ``lead``-stacked diffs) as (…, N, C, h, w), whatever its layout."""
        return to_channels_first(array, self.roles(self.layer), lead)

    @abstractmethod
    def default_layer(self) -> str:
        """The feature blob A when ``layer`` is not given."""

    @abstractmethod
    def channel_weights(self, features, classes, n) -> np.ndarray:
        """(K, n, C) weights α for the chunk whose forward the net holds; ``features`` is the
        layer's (n, C, h, w) data, ``classes`` the chunk's (K, n) class indices."""

    def maps(self, data, classes):
        """(K, N, H, W) maps (or (K, N, h, w) with upsample=None) for explicit (K, N) classes."""
        data = as_batch(data)
        classes = np.asarray(classes, dtype=np.int64)
        out = None
        for a, b in self._chunks(len(data)):
            self._forward(data, a, b)
            features = np.asarray(self.net.blobs[self.layer].data)
            if features.ndim != 4:
                raise InputError(f"layer {self.layer!r} has shape {features.shape}; the CAM family "
                                 f"needs 4-D feature maps, (N, C, h, w) or (N, h, w, C)")
            features = self.layer_channels_first(features)[:b - a]
            alpha = self.channel_weights(features, classes[:, a:b], b - a)
            cam = np.einsum("knc,nchw->knhw", alpha, features.astype(np.float32))
            if self.relu:
                cam = np.maximum(cam, 0)
            if self.upsample is not None:
                cam = upsample(cam, data.shape[2:], self.upsample)
            if out is None:
                out = np.empty((classes.shape[0], len(data)) + cam.shape[2:], dtype=np.float32)
            out[:, a:b] = cam
        return out


# --- finding GAP → linear ---------------------------------------------------------------------------

def _data_input(graph, node):
    """The one non-constant input of a node, or None."""
    live = [i for i in node.inputs if i and i not in graph.constants]
    return live[0] if len(live) == 1 else None


def _skip_pass_through(graph, blob):
    node = graph.producer.get(blob)
    while node is not None and node.op_type in PASS_THROUGH:
        blob = node.inputs[0]
        node = graph.producer.get(blob)
    return blob, node


def _linear_weights(graph, node):
    """(classes, C) weights of a Gemm / MatMul / 1×1 Conv whose weight is a constant, else None."""
    if node is None:
        return None
    inputs = node.inputs
    if node.op_type == "Gemm" and len(inputs) >= 2 and inputs[1] in graph.constants \
            and inputs[0] not in graph.constants and not node.attrs.get("transA", 0):
        b = graph.constants[inputs[1]].astype(np.float32)
        w = b if node.attrs.get("transB", 0) else b.T
        return w * np.float32(node.attrs.get("alpha", 1.0))
    if node.op_type == "MatMul" and len(inputs) == 2 and inputs[1] in graph.constants \
            and graph.constants[inputs[1]].ndim == 2:
        return graph.constants[inputs[1]].astype(np.float32).T
    if node.op_type == "Conv" and len(inputs) >= 2 and inputs[1] in graph.constants:
        w = graph.constants[inputs[1]]
        if w.ndim == 4 and w.shape[2:] == (1, 1) and int(node.attrs.get("group", 1)) == 1:
            return w[:, :, 0, 0].astype(np.float32)
    return None


def _bias_input(graph, node):
    """The non-constant operand of an Add of a constant vector (a bias), else None."""
    if node is None or node.op_type != "Add" or len(node.inputs) != 2:
        return None
    constant = [i for i in node.inputs if i in graph.constants]
    if len(constant) != 1 or graph.constants[constant[0]].ndim > 1:
        return None
    return next(i for i in node.inputs if i not in graph.constants)


def _is_global_average(net, node, roles):
    """GlobalAveragePool, ReduceMean over the two spatial axes (whatever the layout: ``roles``
    names its input's axes), or an AveragePool whose window is the whole (unpadded) input."""
    graph = net.graph
    if node.op_type == "GlobalAveragePool":
        return True
    if node.op_type == "ReduceMean":
        axes = node.attrs.get("axes")
        if axes is None and len(node.inputs) > 1 and node.inputs[1] in graph.constants:
            axes = graph.constants[node.inputs[1]].tolist()
        spatial = sorted(roles.index(a) for a in "HW")
        return axes is not None and sorted(a % 4 for a in axes) == spatial
    if node.op_type == "AveragePool":
        shape = net.blobs[node.inputs[0]].shape
        kernel = tuple(node.attrs.get("kernel_shape", ()))
        pads = node.attrs.get("pads", [0] * 4)
        return len(shape) == 4 and kernel == tuple(shape[2:]) and not any(pads) \
            and node.attrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID", b"NOTSET", b"VALID")
    return False


def _describe(node):
    return f"layer {node.name!r} ({node.op_type})" if node is not None else "no layer's output"


def cam_structure(net, score_blob, input_layouts=None):
    """(feature blob, (classes, C) class weights) for a net whose scores are
    GlobalAveragePool → [Flatten/Reshape] → one linear layer [→ Add bias]; InputError otherwise.

    input_layouts: {input: "NCHW" | "NHWC"} (default: every input NCHW), from which the feature
    blob's channel axis is found (caffe_port.layout)."""
    graph = net.graph
    roles = axis_roles(graph, input_layouts or {name: "NCHW" for name in graph.inputs})

    def refuse(why):
        raise InputError(f"CAM needs GlobalAveragePool → [Flatten] → one linear layer before the "
                         f"score blob {score_blob!r}, but {why}; use GradCAM, which works on any net")

    _, linear = _skip_pass_through(graph, score_blob)
    bias_input = _bias_input(graph, linear)
    if bias_input is not None:             # Keras' Dense and Paddle's fc: MatMul, then Add the bias
        _, linear = _skip_pass_through(graph, bias_input)
    weights = _linear_weights(graph, linear)
    if weights is None:
        refuse(f"it is produced by {_describe(linear)}, not a Gemm/MatMul/1×1 Conv with constant weights")
    pooled = _data_input(graph, linear)
    _, pool = _skip_pass_through(graph, pooled) if pooled else (None, None)
    features = pool.inputs[0] if pool is not None else None
    feature_roles = roles.get(features, "NCHW")
    if pool is None or not _is_global_average(net, pool, feature_roles):
        refuse(f"layer {linear.name!r} reads {_describe(pool)}, not a global average pooling")
    channels = net.blobs[features].shape[feature_roles.index("C")]
    if weights.shape[1] != channels:
        refuse(f"layer {linear.name!r} has {weights.shape[1]} inputs for {channels} pooled channels")
    return features, weights


class CAM(CAMFamily):
    """Class activation mapping (Zhou et al. 2016): α_ck = w_ck of the layer after the global
    average pooling, found from the graph; the map is Σ_k w_ck A_k, without ReLU or bias.

    A net without GAP → [Flatten] → linear raises InputError suggesting GradCAM.
    """
    relu = False

    def __init__(self, net, *, upsample="linear", **kwargs):
        super().__init__(net, None, upsample=upsample, **kwargs)
        self._layer, self.class_weights = cam_structure(net, self.score_blob,
                                                        {self.input_blob: self.layout.layout})

    def default_layer(self):
        return self._layer

    def channel_weights(self, features, classes, n):
        return self.class_weights[classes]
