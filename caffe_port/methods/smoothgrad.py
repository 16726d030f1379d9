"""SmoothGrad (Smilkov et al. 2017): the mean of a map over noisy copies of the image.

    M̂_c(x) = (1/n) Σ_{i=1..n} M_c(x + ε_i),    ε_i ~ N(0, σ²),   σ = noise · (max x − min x)

where M_c is any of the maps (saliency, deconvnet, guided backprop, guided Grad-CAM, Grad-CAM)
with its own reduction, and σ is a fraction of the image's value range in the network's input
space (Smilkov et al. recommend 10–20 %). The classes are those of the clean image; the n copies
go through the net's batch axis in chunks of the method's batch size, all K classes stacked.
"""
from __future__ import annotations

import numpy as np

from caffe_port.errors import InputError
from caffe_port.methods.base import Wrapper, as_batch
from caffe_port.methods.saliency import Saliency


class SmoothGrad(Wrapper):
    """SmoothGrad over ``method`` (a method object with ``maps``; a Net means Saliency(net)).

    samples: n, the number of noisy copies per image
    noise:   σ as a fraction of each image's value range
    seed:    the noise generator's seed (each call draws the same noise for the same seed)
    """

    def __init__(self, method, *, samples=50, noise=0.15, seed=0):
        if not hasattr(method, "maps"):
            method = Saliency(method)
        if not isinstance(samples, (int, np.integer)) or samples < 1:
            raise InputError(f"samples must be a positive int, got {samples!r}")
        if not np.isfinite(noise) or noise < 0:
            raise InputError(f"noise must be a non-negative fraction of the input range, got {noise!r}")
        super().__init__(method)
        self.samples = int(samples)
        self.noise = float(noise)
        self.seed = seed

    def maps(self, data, classes):
        """(K, N, ...) smoothed maps for explicit (K, N) classes."""
        m = self.method
        data = as_batch(data)
        classes = np.asarray(classes, dtype=np.int64)
        rng = np.random.default_rng(self.seed)
        out = None
        for i, image in enumerate(data):
            sigma = self.noise * float(image.max() - image.min())
            noisy = image[None] + rng.normal(0.0, sigma, (self.samples,) + image.shape).astype(np.float32)
            maps = m.maps(noisy, np.repeat(classes[:, i:i + 1], self.samples, axis=1))
            mean = maps.mean(axis=1, dtype=np.float64).astype(np.float32)
            if out is None:
                out = np.empty((classes.shape[0], len(data)) + mean.shape[1:], dtype=np.float32)
            out[:, i] = mean
        return out
