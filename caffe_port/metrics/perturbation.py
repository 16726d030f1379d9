"""Deletion and insertion (Petsiuk et al. 2018, RISE): is the map faithful to what the net uses?

Pixels are taken in the order of the map, most important first, ``step`` at a time, and the
class probability is measured after each step:

    deletion    start from the image, set the pixels taken so far to the baseline (all their
                channels); a faithful map makes the probability fall fast: low AUC is good
    insertion   start from the baseline, put the image's pixels taken so far back; a faithful
                map makes it rise fast: high AUC is good

    p_k = softmax(S(x_k))_c,   k = 0 … n,   n = ⌈H·W / step⌉,   f_k = min(k·step, H·W) / (H·W)
    AUC = Σ_k (f_k − f_{k−1}) (p_k + p_{k−1}) / 2        (the trapezoid rule over f ∈ [0, 1])

S are the net's pre-softmax class scores (the score blob) and the probability is their softmax
(in float64), whatever the net's own output is; c is the class the map explains. RISE's own
code takes the same steps (224 pixels of a 224 × 224 image by default: ``step`` defaults to the
input's width, one row's worth) and, when H·W is a multiple of ``step``, the same AUC.

Baselines, in the network's input space (after pre-processing):

    "zeros"  zeros: RISE's deletion substrate (for a mean/std-normalised net, the mean image;
             for EfficientNet-Lite0's (x − 127)/128, mid grey)
    "blur"   the image blurred by an 11 × 11 Gaussian, σ = 5, each channel alone, zero padding
             at the borders as RISE's conv2d: RISE's insertion substrate (RISE builds its
             kernel with scipy's gaussian_filter of a delta, whose mirrored tails differ from
             the plain sampled Gaussian here in the fourth decimal of its weights)
    an array broadcastable to the image (C, H, W), from Python

The order: a (C, H, W) map is reduced to one value per pixel first (``reduction``: "abs",
Σ_c |M_c|, the default, or "sum", Σ_c M_c); ties are taken in row-major pixel order (a stable
sort of the negated map).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from caffe_port.errors import InputError, ShapeError
from caffe_port.methods.base import Method, Wrapper, as_batch, check_reduction, reduce_channels

BASELINES = ("zeros", "blur")
DEFAULT_BASELINES = {"deletion": "zeros", "insertion": "blur"}
BLUR_SIZE, BLUR_SIGMA = 11, 5.0
CHUNK = 32          # perturbed images built and scored at a time


@dataclass
class Curve:
    """A deletion or insertion curve: probabilities (n + 1,) at fractions (n + 1,), its AUC."""
    kind: str
    fractions: np.ndarray
    probabilities: np.ndarray
    auc: float


def scorer_of(method) -> Method:
    """The Net client that scores images: a method itself, or the one a Wrapper wraps."""
    while isinstance(method, Wrapper):
        method = method.method
    if not isinstance(method, Method):
        raise InputError(f"deletion and insertion need a caffe_port method to score images, got "
                         f"{type(method).__name__}")
    return method


def probabilities(scorer, images, target) -> np.ndarray:
    """softmax(S(image))_target for each image (float64): S the pre-softmax scores."""
    scores = np.asarray(scorer.scores(images), dtype=np.float64)
    scores -= scores.max(axis=1, keepdims=True)
    p = np.exp(scores)
    return p[:, target] / p.sum(axis=1)


def blurred(image) -> np.ndarray:
    """A (C, H, W) image blurred channel by channel (module docstring: "blur")."""
    kernel = cv2.getGaussianKernel(BLUR_SIZE, BLUR_SIGMA)
    return np.stack([cv2.sepFilter2D(np.ascontiguousarray(channel), cv2.CV_32F, kernel, kernel,
                                     borderType=cv2.BORDER_CONSTANT) for channel in image])


def baseline_image(image, baseline) -> np.ndarray:
    """The (C, H, W) substrate for one image: "zeros", "blur" or an array."""
    if isinstance(baseline, str):
        if baseline == "zeros":
            return np.zeros_like(image)
        if baseline == "blur":
            return blurred(image)
        raise InputError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)} "
                         f"(or pass an array)")
    try:
        return np.ascontiguousarray(np.broadcast_to(np.asarray(baseline, np.float32), image.shape))
    except ValueError:
        raise ShapeError(f"a baseline of shape {np.shape(baseline)} does not broadcast to the "
                         f"image's {image.shape}") from None


def pixel_order(saliency_map, shape, reduction="abs") -> np.ndarray:
    """Flat pixel indices, most important first (module docstring)."""
    m = np.asarray(saliency_map, dtype=np.float64)
    if m.ndim == 3:
        m = reduce_channels(m, check_reduction(reduction))
    if m.shape != tuple(shape):
        raise ShapeError(f"a map of shape {np.shape(saliency_map)} does not fit the "
                         f"{shape[0]}×{shape[1]} input (maps are at the network's resolution)")
    if not np.all(np.isfinite(m)):
        raise InputError("the map holds NaN or infinite values")
    return np.argsort(-m.ravel(), kind="stable")


def trapezoid_auc(fractions, values) -> float:
    """Σ (f_k − f_{k−1})(v_k + v_{k−1}) / 2."""
    f = np.asarray(fractions, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    return float(np.sum(np.diff(f) * (v[1:] + v[:-1]) / 2))


def perturbation_curve(method, data, saliency_map, target, kind, *, step=None, baseline=None,
                       reduction="abs") -> Curve:
    """The deletion or insertion curve of one image's map (module docstring).

    method:  any caffe_port method (its Net scores the perturbed images)
    data:    one image as the net's input, (C, H, W) or (1, C, H, W)
    saliency_map: its (H, W) or (C, H, W) map, at the network's resolution
    target:  the class index the map explains
    kind:    "deletion" or "insertion"
    step:    pixels per step (default: the input's width)
    baseline: "zeros", "blur" or an array (default: zeros for deletion, blur for insertion)
    """
    if kind not in DEFAULT_BASELINES:
        raise InputError(f"unknown curve {kind!r}; choose deletion or insertion")
    scorer = scorer_of(method)
    data = as_batch(data)
    if data.shape[0] != 1:
        raise InputError(f"a {kind} curve is of one image, got {data.shape[0]}")
    image = data[0]
    _, height, width = image.shape
    pixels = height * width
    step = width if step is None else step
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)) or step < 1:
        raise InputError(f"step must be a positive number of pixels, got {step!r}")
    target = int(target)
    if not 0 <= target < scorer.num_classes:
        raise InputError(f"class {target} is out of range: the net has {scorer.num_classes} classes")
    order = pixel_order(saliency_map, (height, width), reduction)
    substrate = baseline_image(image, DEFAULT_BASELINES[kind] if baseline is None else baseline)
    start, finish = (image, substrate) if kind == "deletion" else (substrate, image)
    n = -(-pixels // int(step))
    counts = np.minimum(np.arange(n + 1) * int(step), pixels)
    # rank[i]: when pixel i is taken; image k has the pixels of rank < counts[k] taken
    rank = np.empty(pixels, dtype=np.int64)
    rank[order] = np.arange(pixels)
    start_flat, finish_flat = start.reshape(len(image), -1), finish.reshape(len(image), -1)
    probs = np.empty(n + 1, dtype=np.float64)
    for a in range(0, n + 1, CHUNK):
        b = min(a + CHUNK, n + 1)
        taken = rank[None, :] < counts[a:b, None]                       # (chunk, pixels)
        batch = np.where(taken[:, None, :], finish_flat[None], start_flat[None])
        probs[a:b] = probabilities(scorer, batch.reshape((b - a,) + image.shape).astype(np.float32), target)
    fractions = counts / pixels
    return Curve(kind, fractions, probs, trapezoid_auc(fractions, probs))


def deletion(method, data, saliency_map, target, *, step=None, baseline="zeros", reduction="abs") -> Curve:
    """The deletion curve and its AUC (lower: the map found what the net uses)."""
    return perturbation_curve(method, data, saliency_map, target, "deletion", step=step,
                              baseline=baseline, reduction=reduction)


def insertion(method, data, saliency_map, target, *, step=None, baseline="blur", reduction="abs") -> Curve:
    """The insertion curve and its AUC (higher: the map found what the net uses)."""
    return perturbation_curve(method, data, saliency_map, target, "insertion", step=step,
                              baseline=baseline, reduction=reduction)
