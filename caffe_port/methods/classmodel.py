"""Class model visualisation (Simonyan et al. 2013, §2): the image a class score likes best.

Gradient ascent on the image I (in the network's input space) for

    argmax_I  S_c(I) − λ ‖I‖²₂          step:  I ← I + η_t (∂S_c/∂I − 2λ I)

from the zero image — which, for mean-subtracted inputs, is the mean image: the mean is added
back at the end by the preset's ``deprocess``. The step size follows Caffe's "step" learning-rate
policy, η_t = η · γ^⌊t / step⌋ (constant when ``lr_step`` is 0).

Optional regularisers of Yosinski et al. (2015), all off by default:
    jitter          shift the image by up to ±j pixels (random, wrapping) before each forward and
                    shift the gradient back — the image must please the net at every offset
    blur            every ``blur_every`` steps, a Gaussian blur of σ = ``blur_sigma`` pixels
    clip_percentile set to zero the pixels whose norm over channels is below that percentile
    clip_range      keep every value within what a real pixel (0…255) maps to (needs a preset)

Several classes are optimised together, one image each, through the batch axis. The result is
deterministic for a given seed (the seed only drives the jitter).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from tqdm.auto import tqdm

from caffe_port.errors import InputError
from caffe_port.methods.base import Method, class_index, one_class
from caffe_port.preprocess import preset as get_preset


@dataclass
class ClassModelResult:
    data: np.ndarray            # (K, C, H, W) float32, the optimised images in network space
    images: np.ndarray | None   # (K, H, W, 3) uint8 RGB via the preset's deprocess (None without)
    classes: np.ndarray         # (K,) class indices
    scores: np.ndarray          # (K, classes) final pre-softmax scores
    probabilities: np.ndarray   # (K, classes) their softmax
    history: np.ndarray         # (iterations, K) S_c before each step


def softmax(scores):
    z = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class ClassModel(Method):
    """Class model visualisation on a Net.

    preset: a caffe_port.preprocess Preset (or its name), for ``deprocess`` and ``clip_range``
    """

    def __init__(self, net, preset=None, **kwargs):
        super().__init__(net, **kwargs)
        if preset is not None:
            preset = get_preset(preset)
        self.preset = preset

    def _image_shape(self, shape):
        declared = self.layout.image_shape(self.net.graph.input_shape(self.input_blob, batch=1))
        if shape is not None:
            shape = tuple(int(s) for s in shape)
            if len(shape) == 2:
                shape = (declared[0],) + shape
        elif None not in declared:
            shape = tuple(declared)
        elif self.preset is not None and self.preset.crop is not None and declared[0] is not None:
            shape = (declared[0],) + tuple(self.preset.crop)
        else:
            raise InputError(f"input {self.input_blob!r} has no fixed size: pass shape=(H, W)")
        if len(shape) != 3 or None in shape or min(shape) < 1:
            raise InputError(f"shape must be (H, W) or (C, H, W), got {shape!r}")
        return shape

    def _classes(self, target):
        targets = [target] if isinstance(target, (str, int, np.integer)) else list(target)
        if not targets:
            raise InputError("target names no class")
        n = self.num_classes
        return np.array([class_index(c, self.labels) if isinstance(c, str) else one_class(c, n, None)
                         for c in targets], dtype=np.int64)

    def generate(self, target, *, iterations=200, lr=1.0, weight_decay=1e-4, lr_step=0, gamma=0.5,
                 jitter=0, blur_every=0, blur_sigma=1.0, clip_percentile=0.0, clip_range=False,
                 seed=0, progress=True, shape=None) -> ClassModelResult:
        """Optimise one image per class in ``target`` (an index, a name, or a list of them).

        iterations: gradient steps;  lr: η;  weight_decay: λ;  lr_step, gamma: η·γ^⌊t/lr_step⌋
        jitter (pixels), blur_every/blur_sigma, clip_percentile (0–100), clip_range: regularisers
        seed: for the jitter;  progress: a tqdm bar;  shape: (H, W) where the input has none
        """
        image = np.zeros((1,) + self._image_shape(shape), dtype=np.float32)
        self.scores(image)                   # the score blob's shape, for nets sized by their input
        self.release()
        classes = self._classes(target)
        for name, value in (("iterations", iterations), ("jitter", jitter), ("blur_every", blur_every),
                            ("lr_step", lr_step)):
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise InputError(f"{name} must be a non-negative int, got {value!r}")
        if not 0 <= clip_percentile < 100:
            raise InputError(f"clip_percentile must be in [0, 100), got {clip_percentile!r}")
        if clip_range and self.preset is None:
            raise InputError("clip_range needs a preset (the pixel range in the network's input space)")
        rng = np.random.default_rng(seed)
        image = np.repeat(image, len(classes), axis=0)
        low = high = None
        if clip_range:
            # pixel_range is in the network's channel order, as the image is
            low, high = (v[None, :, None, None] for v in self.preset.pixel_range())
        history = np.zeros((iterations, len(classes)), dtype=np.float32)
        bar = tqdm(range(iterations), disable=not progress, desc="class model", leave=False)
        try:
            for t in bar:
                step = lr * (gamma ** (t // lr_step) if lr_step else 1.0)
                shift = tuple(int(s) for s in rng.integers(-jitter, jitter + 1, size=2)) if jitter else (0, 0)
                shown = np.roll(image, shift, axis=(2, 3)) if jitter else image
                grad, scores = self._score_gradient(shown, classes)
                if jitter:
                    grad = np.roll(grad, (-shift[0], -shift[1]), axis=(2, 3))
                history[t] = scores
                image += np.float32(step) * (grad - np.float32(2 * weight_decay) * image)
                if clip_range:
                    np.clip(image, low, high, out=image)
                if blur_every and (t + 1) % blur_every == 0 and blur_sigma > 0:
                    image = _blur(image, blur_sigma)
                if clip_percentile:
                    norms = np.sqrt(np.sum(image.astype(np.float64) ** 2, axis=1, keepdims=True))
                    cut = np.percentile(norms, clip_percentile, axis=(1, 2, 3), keepdims=True)
                    image *= (norms >= cut)
                if progress and (t % 10 == 0 or t == iterations - 1):
                    bar.set_postfix(score=f"{float(scores.mean()):.3g}")
        finally:
            bar.close()
            self.release()
        final = self.scores(image)
        self.release()
        images = np.stack([self.preset.deprocess(x) for x in image]) if self.preset is not None else None
        return ClassModelResult(image, images, classes, final, softmax(final.astype(np.float64)), history)

    def _score_gradient(self, image, classes):
        """∂S_c/∂I for each image's own class, and S_c: ((K, C, H, W), (K,))."""
        grad = np.empty_like(image)
        scores = np.empty(len(classes), dtype=np.float32)
        for a, b in self._chunks(len(image)):
            s = self._forward(image, a, b)
            scores[a:b] = s[np.arange(b - a), classes[a:b]]
            grad[a:b] = self._backward(classes[None, a:b], b - a)[self.input_blob][0]
        self.release()
        return grad, scores


def _blur(image, sigma):
    out = np.empty_like(image)
    for k in range(image.shape[0]):
        for c in range(image.shape[1]):
            out[k, c] = cv2.GaussianBlur(image[k, c], (0, 0), sigmaX=float(sigma), sigmaY=float(sigma),
                                         borderType=cv2.BORDER_REFLECT)
    return out
