"""Deletion and insertion: the definition recomputed by hand on a linear net (every step's
softmax written out), RISE's blur recomputed with scipy, and Quantus's PixelFlipping (the same
ordering loop, written independently) on a small conv net rebuilt in torch. Tolerances: 1e-6 on
probabilities (float32 forwards in both), 1e-9 on AUCs recomputed from the same probabilities."""
import numpy as np
import pytest
from scipy import ndimage

from caffe_port.errors import InputError, ShapeError
from caffe_port.methods import GradCAM, Saliency, SmoothGrad
from caffe_port.metrics.perturbation import (blurred, deletion, insertion, perturbation_curve,
                                             trapezoid_auc)
from helpers import tiny_nets

WEIGHTS = np.array([[1.0, -2.0, 0.5, 3.0, 0.0, 1.5],
                    [0.0, 1.0, -1.0, 0.5, 2.0, -0.5]])
BIAS = np.array([0.2, -0.1])


@pytest.fixture(scope="module")
def linear():
    """score = W · x + b on a (1, 2, 3) image: softmax(score) is a formula."""
    return Saliency(tiny_nets.relu_linear(WEIGHTS, BIAS, (1, 2, 3), relu=False))


def softmax_class(x, c):
    s = WEIGHTS @ x.ravel() + BIAS
    e = np.exp(s - s.max())
    return e[c] / e.sum()


def test_deletion_by_hand(linear):
    x = np.array([[[1.0, 2.0, -1.0], [0.5, 1.0, 2.0]]], dtype=np.float32)
    m = np.array([[0.1, 0.9, 0.3], [0.8, 0.2, 0.5]])     # order: pixels 1, 3, 5, 2, 4, 0
    order = [1, 3, 5, 2, 4, 0]
    # step 2: 0, 2, 4, 6 pixels zeroed
    expected = []
    for k in (0, 2, 4, 6):
        xk = x.copy().ravel()
        xk[order[:k]] = 0
        expected.append(softmax_class(xk, 0))
    curve = deletion(linear, x, m, 0, step=2)
    assert curve.fractions.tolist() == [0, 1 / 3, 2 / 3, 1]
    np.testing.assert_allclose(curve.probabilities, expected, atol=1e-6)
    by_hand = sum((expected[i] + expected[i + 1]) / 2 * (1 / 3) for i in range(3))
    assert curve.auc == pytest.approx(by_hand, abs=1e-6)


def test_insertion_by_hand_with_a_partial_last_step(linear):
    x = np.array([[[1.0, 2.0, -1.0], [0.5, 1.0, 2.0]]], dtype=np.float32)
    baseline = np.full_like(x, 0.25)
    m = np.array([[6, 5, 4], [3, 2, 1]], dtype=float)   # row-major order
    curve = insertion(linear, x, m, 1, step=4, baseline=baseline)
    first4 = baseline.copy().ravel()
    first4[:4] = x.ravel()[:4]
    expected = [softmax_class(baseline, 1), softmax_class(first4, 1), softmax_class(x, 1)]
    assert curve.fractions.tolist() == pytest.approx([0, 4 / 6, 1])
    np.testing.assert_allclose(curve.probabilities, expected, atol=1e-6)
    assert curve.auc == pytest.approx((expected[0] + expected[1]) / 2 * 4 / 6 +
                                      (expected[1] + expected[2]) / 2 * 2 / 6, abs=1e-6)


def test_ties_go_in_row_major_order_and_signed_maps_reduce(linear):
    x = np.arange(1, 7, dtype=np.float32).reshape(1, 2, 3)
    flat = deletion(linear, x, np.ones((2, 3)), 0, step=1)
    expected = [softmax_class(np.where(np.arange(6) < k, 0, x.ravel()), 0) for k in range(7)]
    np.testing.assert_allclose(flat.probabilities, expected, atol=1e-6)
    signed = np.array([[[-5.0, 1, 0], [0, 0, 2]]])       # |·| orders pixel 0 first, Σ orders it last
    by_abs = deletion(linear, x, signed, 0, step=1)
    by_sum = deletion(linear, x, signed, 0, step=1, reduction="sum")
    assert by_abs.probabilities[1] == pytest.approx(softmax_class(np.r_[0, x.ravel()[1:]], 0), abs=1e-6)
    zeroed = x.ravel().copy()
    zeroed[5] = 0
    assert by_sum.probabilities[1] == pytest.approx(softmax_class(zeroed, 0), abs=1e-6)


def test_blur_is_risés_zero_padded_gaussian():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(3, 20, 17)).astype(np.float32)
    t = np.arange(11) - 5
    g = np.exp(-t ** 2 / (2 * 5.0 ** 2))
    kernel = np.outer(g, g) / np.outer(g, g).sum()
    expected = np.stack([ndimage.convolve(c.astype(np.float64), kernel, mode="constant") for c in image])
    np.testing.assert_allclose(blurred(image), expected, atol=1e-5)


def test_default_step_is_a_row_and_defaults_baselines(linear):
    x = np.ones((1, 2, 3), np.float32)
    curve = perturbation_curve(linear, x, np.arange(6.0).reshape(2, 3), 0, "deletion")
    assert len(curve.fractions) == 3                            # 3 pixels a step: 0, 3, 6
    inserted = insertion(linear, x, np.arange(6.0).reshape(2, 3), 0)
    assert inserted.probabilities[0] == pytest.approx(softmax_class(blurred(x), 0), abs=1e-6)


def test_refusals(linear):
    x = np.ones((1, 2, 3), np.float32)
    m = np.ones((2, 3))
    with pytest.raises(InputError, match="step"):
        deletion(linear, x, m, 0, step=0)
    with pytest.raises(ShapeError, match="does not fit"):
        deletion(linear, x, np.ones((3, 2)), 0)
    with pytest.raises(InputError, match="out of range"):
        deletion(linear, x, m, 2)
    with pytest.raises(InputError, match="unknown baseline"):
        deletion(linear, x, m, 0, baseline="mean")
    with pytest.raises(ShapeError, match="broadcast"):
        deletion(linear, x, m, 0, baseline=np.zeros(5))
    with pytest.raises(InputError, match="one image"):
        deletion(linear, np.ones((2, 1, 2, 3), np.float32), m, 0)
    with pytest.raises(InputError, match="NaN"):
        deletion(linear, x, np.full((2, 3), np.nan), 0)


def test_trapezoid():
    assert trapezoid_auc([0, 0.5, 1], [1, 1, 0]) == pytest.approx(0.75)


def torch_conv_gap_fc(net):
    """tiny_nets.conv_gap_fc rebuilt in torch with the same weights (for Quantus)."""
    import torch
    c = {k: torch.tensor(np.asarray(v)) for k, v in net.graph.constants.items()}
    conv1 = torch.nn.Conv2d(c["w1"].shape[1], c["w1"].shape[0], 3, padding=1)
    conv2 = torch.nn.Conv2d(c["w2"].shape[1], c["w2"].shape[0], 3, stride=2)
    fc = torch.nn.Linear(c["fw"].shape[1], c["fw"].shape[0])
    with torch.no_grad():
        for layer, w, b in ((conv1, "w1", "b1"), (conv2, "w2", "b2"), (fc, "fw", "fb")):
            layer.weight.copy_(c[w])
            layer.bias.copy_(c[b])
    return torch.nn.Sequential(conv1, torch.nn.ReLU(), conv2, torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), fc).eval()


@pytest.mark.parametrize("step", [1, 6])
def test_deletion_and_insertion_match_quantus_pixel_flipping(step):
    quantus = pytest.importorskip("quantus")
    pytest.importorskip("torch")
    net = tiny_nets.conv_gap_fc(classes=3, seed=2, shape=(1, 7, 6))
    method = GradCAM(net)
    rng = np.random.default_rng(step)
    images = rng.normal(size=(4, 1, 7, 6)).astype(np.float32)
    maps = rng.uniform(size=(4, 1, 7, 6)).astype(np.float32)     # continuous: no ties to order
    classes = rng.integers(0, 3, 4)
    model = torch_conv_gap_fc(net)
    flipping = quantus.PixelFlipping(features_in_step=step, perturb_baseline=0.0, normalise=False,
                                     abs=False, disable_warnings=True)
    theirs = np.array(flipping(model=model, x_batch=images, y_batch=classes, a_batch=maps,
                               softmax=True, device="cpu"))
    originals = images.reshape(4, -1)

    def put_back(arr, indices, **_):          # insertion: the image's own values at the indices
        out = arr.copy()
        rows = np.arange(arr.shape[0])[:, None]
        out[rows, indices] = originals[rows, indices]
        return out

    inserting = quantus.PixelFlipping(features_in_step=step, perturb_func=put_back, normalise=False,
                                      abs=False, disable_warnings=True)
    starts = np.zeros_like(images)
    theirs_in = np.array(inserting(model=model, x_batch=starts, y_batch=classes, a_batch=maps,
                                   softmax=True, device="cpu"))
    for i in range(4):
        ours = deletion(method, images[i], maps[i, 0], int(classes[i]), step=step)
        # Quantus's curve starts after the first step; its AUC (return_auc_per_sample) is
        # np.trapz(curve, dx=1) — recomputed here with np.trapezoid, as Quantus 0.6.0's own call
        # fails on numpy 2.4, which removed np.trapz. Ours spans f ∈ [0, 1] from the unperturbed
        # image: (p₀ + p₁)/2 · 1/n + their AUC · 1/n
        np.testing.assert_allclose(ours.probabilities[1:], theirs[i], atol=1e-6)
        n = len(theirs[i])
        their_auc = np.trapezoid(theirs[i], dx=1)
        assert ours.auc == pytest.approx(((ours.probabilities[0] + theirs[i][0]) / 2 + their_auc) / n, abs=1e-6)
        ours_in = insertion(method, images[i], maps[i, 0], int(classes[i]), step=step, baseline="zeros")
        np.testing.assert_allclose(ours_in.probabilities[1:], theirs_in[i], atol=1e-6)


def test_a_wrapper_scores_through_the_method_it_wraps():
    net = tiny_nets.conv_gap_fc(classes=3, seed=2, shape=(1, 7, 6))
    x = np.random.default_rng(0).normal(size=(1, 7, 6)).astype(np.float32)
    m = np.random.default_rng(1).uniform(size=(7, 6))
    wrapped = deletion(SmoothGrad(Saliency(net), samples=2), x, m, 1, step=7)
    plain = deletion(Saliency(net), x, m, 1, step=7)
    np.testing.assert_array_equal(wrapped.probabilities, plain.probabilities)
