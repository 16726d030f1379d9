"""Spearman's ρ against scipy.stats.spearmanr and SSIM against skimage.metrics.structural_similarity
(Wang et al.'s settings: Gaussian window σ = 1.5, population covariances). Tolerance: 1e-12 for ρ
(both are exact rank arithmetic in float64), 1e-9 for SSIM (two filters' float64 rounding)."""
import numpy as np
import pytest
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from caffe_port.errors import InputError, ShapeError
from caffe_port.metrics.similarity import rank, spearman, ssim


def skimage_ssim(a, b, data_range):
    return structural_similarity(a, b, data_range=data_range, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)


@pytest.mark.parametrize("shape", [(13, 17), (24, 11), (5,)])
def test_spearman_matches_scipy_with_ties(shape):
    rng = np.random.default_rng(3)
    a = np.maximum(rng.normal(size=shape), 0)               # many tied zeros, as a ReLU'd map
    b = np.round(a + rng.normal(size=shape) * 0.5, 1)       # ties from rounding
    assert spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel()).statistic, abs=1e-12)
    assert spearman(a, -a) == pytest.approx(-1.0, abs=1e-12)
    assert spearman(a, a) == pytest.approx(1.0, abs=1e-12)


def test_ranks_average_ties():
    assert rank([10, 20, 20, 5, 20]).tolist() == [2, 4, 4, 1, 4]


def test_spearman_of_a_constant_map_is_nan():
    assert np.isnan(spearman(np.zeros((4, 4)), np.arange(16).reshape(4, 4)))


def test_spearman_refuses_mismatched_or_bad_maps():
    with pytest.raises(ShapeError, match="one shape"):
        spearman(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(InputError, match="NaN"):
        spearman(np.array([1.0, np.nan]), np.array([1.0, 2.0]))


@pytest.mark.parametrize("shape", [(11, 11), (32, 27), (64, 48)])
def test_ssim_matches_skimage(shape):
    rng = np.random.default_rng(shape[0])
    a = rng.uniform(size=shape)
    b = np.clip(a + rng.normal(scale=0.2, size=shape), 0, 1)
    smooth = np.clip(a * 0.3 + 0.5, 0, 1)
    for x, y in ((a, b), (a, smooth), (a, a)):
        assert ssim(x, y, 1.0) == pytest.approx(skimage_ssim(x, y, 1.0), abs=1e-9)
    assert ssim(a * 200, b * 200, 255.0) == pytest.approx(skimage_ssim(a * 200, b * 200, 255.0), abs=1e-9)
    assert ssim(a, a, 1.0) == pytest.approx(1.0, abs=1e-12)


def test_ssim_refuses_what_skimage_refuses():
    with pytest.raises(ShapeError, match="window"):
        ssim(np.zeros((10, 30)), np.zeros((10, 30)), 1.0)
    with pytest.raises(ValueError):
        skimage_ssim(np.zeros((10, 30)), np.zeros((10, 30)), 1.0)
    with pytest.raises(ShapeError, match=r"\(H, W\)"):
        ssim(np.zeros((3, 12, 12)), np.zeros((3, 12, 12)), 1.0)
    with pytest.raises(InputError, match="data range"):
        ssim(np.zeros((12, 12)), np.zeros((12, 12)), 0)
