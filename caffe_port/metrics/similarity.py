"""How alike two maps are: Spearman's rank correlation and SSIM (numpy and OpenCV only).

    spearman(a, b)   Pearson's correlation of the two maps' ranks, ties taking the mean of the
                     ranks they span (scipy.stats.spearmanr's definition); NaN when either map
                     is constant (its ranks have no variance)
    ssim(a, b, R)    the mean structural similarity of Wang et al. (2004), as
                     skimage.metrics.structural_similarity computes it with gaussian_weights=True,
                     sigma=1.5, use_sample_covariance=False (Wang's own settings):

        μ, σ², σ_ab  local means, variances and covariance under an 11×11 Gaussian window
                     (σ = 1.5, truncated at 3.5σ, normalised), image borders mirrored
                     (edge pixel repeated: cv2.BORDER_REFLECT = ndimage's 'reflect')
        S = (2μ_aμ_b + C1)(2σ_ab + C2) / ((μ_a² + μ_b² + C1)(σ_a² + σ_b² + C2)),
        C1 = (0.01 R)², C2 = (0.03 R)², R the data range;
        SSIM = mean of S over the pixels at least 5 from every border.

Both take two arrays of one shape and compute in float64; they are the sanity checks' measures
(caffe_port/sanity.py), tested against scipy and scikit-image (tests/caffe_port/metrics/).
"""
from __future__ import annotations

import cv2
import numpy as np

from caffe_port.errors import InputError, ShapeError

SSIM_SIGMA = 1.5
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)        # 5: scikit-image's truncate = 3.5 → an 11-tap window
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _pair(a, b, what):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ShapeError(f"{what} compares maps of one shape, got {a.shape} and {b.shape}")
    if a.size < 2:
        raise ShapeError(f"{what} needs maps of two values or more, got shape {a.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise InputError(f"{what}: a map holds NaN or infinite values")
    return a, b


def rank(values) -> np.ndarray:
    """Ranks 1…n of the flattened values in ascending order, tied values taking the mean of the
    ranks they span (float64)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]          # where each run of ties starts
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], x.size]                           # one past each run's end
    mean_rank = (starts + ends + 1) / 2.0                      # mean of ranks starts+1 … ends
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = mean_rank[np.cumsum(first) - 1]
    return ranks


def spearman(a, b) -> float:
    """Spearman's ρ of two maps of one shape (module docstring); NaN if either is constant."""
    a, b = _pair(a, b, "Spearman's rank correlation")
    ra = rank(a) - (a.size + 1) / 2.0
    rb = rank(b) - (b.size + 1) / 2.0
    denominator = np.sqrt(np.dot(ra, ra) * np.dot(rb, rb))
    if denominator == 0:
        return float("nan")
    return float(np.clip(np.dot(ra, rb) / denominator, -1.0, 1.0))


def _local_mean(image):
    return cv2.GaussianBlur(image, (2 * SSIM_RADIUS + 1,) * 2, SSIM_SIGMA, sigmaY=SSIM_SIGMA,
                            borderType=cv2.BORDER_REFLECT)


def ssim(a, b, data_range) -> float:
    """Mean SSIM of two (H, W) maps (module docstring); ``data_range`` is R, the span the values
    can take (1 for maps scaled to [0, 1]). Both sides need at least 11 pixels."""
    a, b = _pair(a, b, "SSIM")
    if a.ndim != 2:
        raise ShapeError(f"SSIM compares (H, W) maps, got shape {a.shape}")
    window = 2 * SSIM_RADIUS + 1
    if min(a.shape) < window:
        raise ShapeError(f"SSIM's {window}×{window} window does not fit a {a.shape[0]}×{a.shape[1]} map")
    if not np.isfinite(data_range) or data_range <= 0:
        raise InputError(f"SSIM's data range must be positive, got {data_range!r}")
    mu_a, mu_b = _local_mean(a), _local_mean(b)
    var_a = _local_mean(a * a) - mu_a * mu_a
    var_b = _local_mean(b * b) - mu_b * mu_b
    cov = _local_mean(a * b) - mu_a * mu_b
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    r = SSIM_RADIUS
    return float(s[r:-r, r:-r].mean())
