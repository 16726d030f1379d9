"""Grad-CAM and guided Grad-CAM (Selvaraju et al. 2017): the CAM family with gradient weights.

For the feature maps A (N, C, h, w) of a layer on the path to the score,

    α_ck     = (1 / h·w) Σ_ij ∂S_c/∂A_k(i,j)          (one backward, diffs=[layer], K stacked)
    GradCAM  = ReLU( Σ_k α_ck A_k ),  upsampled to H×W
    guided   = GuidedBackprop_c(I) ⊙ GradCAM_c       ((K, N, C, H, W), the CAM broadcast over C)

The default layer is the last blob on the path to the score whose spatial extent exceeds 1×1
(``pool5`` in CaffeNet, ``head.relu`` in EfficientNet-Lite0).
"""
from __future__ import annotations

import numpy as np

from caffe_port.errors import InputError
from caffe_port.layout import axis_roles
from caffe_port.methods.base import as_batch, check_reduction, reduce_channels
from caffe_port.methods.cam import CAMFamily


def last_spatial_blob(net, score_blob, input_layouts=None):
    """The last blob (in forward order) with a 4-D shape and h·w > 1 that the score depends on,
    h and w found whatever the blob's layout (``input_layouts``: {input: "NCHW" | "NHWC"},
    default every input NCHW; see caffe_port.layout)."""
    graph = net.graph
    roles = axis_roles(graph, input_layouts or {name: "NCHW" for name in graph.inputs})
    order = {name: k for k, name in enumerate(graph.blob_names())}
    candidates = [b for b in graph.ancestors(score_blob) if b in graph.differentiable and b in order]
    for name in sorted(candidates, key=order.get, reverse=True):
        shape = net.blobs[name].shape
        axes = roles.get(name, "NCHW")
        if len(shape) == 4 and shape[axes.index("H")] * shape[axes.index("W")] > 1:
            return name
    raise InputError(f"no blob with spatial extent larger than 1×1 leads to the score blob "
                     f"{score_blob!r}; name one with layer=")


class GradCAM(CAMFamily):
    """Grad-CAM on ``layer`` (default: ``last_spatial_blob``)."""
    relu = True

    def default_layer(self):
        return last_spatial_blob(self.net, self.score_blob, {self.input_blob: self.layout.layout})

    def channel_weights(self, features, classes, n):
        grads = self._backward(classes, n, "backprop", diffs=[self.layer])[self.layer]
        grads = self.layer_channels_first(grads, lead=1)
        return grads.mean(axis=(3, 4), dtype=np.float64).astype(np.float32)


class GuidedGradCAM(GradCAM):
    """Guided back-propagation times the upsampled Grad-CAM of the same class.

    reduction: "signed" (default: the (C, H, W) image) or any of ``reduce_channels``'s
    """

    def __init__(self, net, layer=None, *, reduction="signed", upsample="linear", **kwargs):
        if upsample is None:
            raise InputError("guided Grad-CAM multiplies at image resolution: upsample cannot be None")
        super().__init__(net, layer, upsample=upsample, **kwargs)
        self.reduction = check_reduction(reduction)

    def maps(self, data, classes):
        data = as_batch(data)
        cam = super().maps(data, classes)
        guided = self.input_gradients(data, classes, "guided")
        return reduce_channels(guided * cam[:, :, None], self.reduction)
