"""Integrated Gradients (Sundararajan et al. 2017), by a midpoint Riemann sum.

Along the straight path from a baseline x' to the image x,

    IG_i(x) = (x_i − x'_i) · ∫₀¹ ∂S_c/∂x_i (x' + α(x − x')) dα
            ≈ (x_i − x'_i) · (1/m) Σ_{k=0..m−1} ∂S_c/∂x_i (x' + α_k (x − x')),   α_k = (k + ½)/m

which satisfies completeness, Σ_i IG_i = S_c(x) − S_c(x'), up to the quadrature error. The
default baseline is zeros in the network's input space — for mean-subtracted inputs ("caffe",
"torchvision" presets) that is the mean image. The m path points of one image go through the
net's batch axis together (in chunks of the method's batch size), the K classes stacked.

The gradient is that of the wrapped method (its rule: guided IG takes GuidedBackprop), and the
attributions are reduced over channels with its reduction (default "signed": (C, H, W)).
"""
from __future__ import annotations

import numpy as np

from caffe_port.errors import InputError, ShapeError
from caffe_port.methods.base import GradientMethod, Wrapper, as_batch, reduce_channels


class IntegratedGradients(Wrapper):
    """Integrated Gradients over ``method`` (a GradientMethod; a Net means plain gradients with
    the "signed" reduction).

    steps:    m, the number of path points
    baseline: an array broadcastable to one image (C, H, W) or to the (N, C, H, W) data, or None
              for zeros
    """

    def __init__(self, method, *, steps=50, baseline=None):
        if not isinstance(method, GradientMethod):
            if hasattr(method, "maps"):
                raise InputError("IntegratedGradients integrates input gradients: wrap Saliency, "
                                 "Deconvnet, GuidedBackprop or GradientMethod, not "
                                 f"{type(method).__name__}")
            method = GradientMethod(method)
        if not isinstance(steps, (int, np.integer)) or steps < 1:
            raise InputError(f"steps must be a positive int, got {steps!r}")
        super().__init__(method)
        self.steps = int(steps)
        self.baseline = baseline

    def _baselines(self, data):
        if self.baseline is None:
            return np.zeros_like(data)
        try:
            return np.broadcast_to(np.asarray(self.baseline, dtype=np.float32), data.shape)
        except ValueError:
            raise ShapeError(f"baseline of shape {np.shape(self.baseline)} does not broadcast to "
                             f"the data's {data.shape}") from None

    def attributions(self, data, classes):
        """(K, N, C, H, W) per-channel attributions for explicit (K, N) classes (before reduction)."""
        m = self.method
        data = as_batch(data)
        classes = np.asarray(classes, dtype=np.int64)
        baselines = self._baselines(data)
        alphas = ((np.arange(self.steps, dtype=np.float64) + 0.5) / self.steps).astype(np.float32)
        out = np.empty((classes.shape[0],) + data.shape, dtype=np.float32)
        for i in range(len(data)):
            delta = data[i] - baselines[i]
            path = baselines[i][None] + alphas[:, None, None, None] * delta[None]
            grads = m.gradients(path, np.repeat(classes[:, i:i + 1], self.steps, axis=1))
            out[:, i] = grads.mean(axis=1, dtype=np.float64).astype(np.float32) * delta
        return out

    def maps(self, data, classes):
        return reduce_channels(self.attributions(data, classes), self.method.reduction)
