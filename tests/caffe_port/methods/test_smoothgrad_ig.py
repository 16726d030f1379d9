"""SmoothGrad and Integrated Gradients over the gradient maps."""
import math

import numpy as np
import pytest
from onnx import helper

from caffe_port.errors import InputError
from caffe_port.methods import (GradCAM, GradientMethod, GuidedBackprop, IntegratedGradients, Saliency,
                                SmoothGrad)


def test_smoothgrad_of_a_linear_score_is_its_gradient(tiny):
    """No ReLU: ∂S/∂x is the weight row wherever x is, so noise changes nothing."""
    rng = np.random.default_rng(20)
    w = rng.standard_normal((3, 2 * 3 * 4)).astype(np.float32)
    net = tiny.relu_linear(w, np.zeros(3), (2, 3, 4), relu=False)
    x = rng.standard_normal((2, 2, 3, 4)).astype(np.float32)
    smooth = SmoothGrad(Saliency(net), samples=7, noise=0.3).attribute(x, target=1)
    np.testing.assert_allclose(smooth, Saliency(net).attribute(x, target=1), rtol=1e-6)


def test_smoothgrad_of_a_relu_is_the_gaussian_cdf(tiny):
    """S = Σ w_i relu(x_i): E[w_i [x_i + ε > 0]] = w_i Φ(x_i / σ), σ = 0.2 · (2 − (−1)) = 0.6.
    n = 4000 samples: each mean is within 5 standard errors, w_i √(p(1−p)/n)."""
    w = np.array([[2.0, -1.0, 0.5, 3.0], [1, 1, 1, 1]], np.float32)
    net = tiny.relu_linear(w, np.zeros(2), (1, 1, 4))
    x = np.array([-1.0, 0.5, 1.0, 2.0], np.float32).reshape(1, 1, 1, 4)
    n = 4000
    smooth = SmoothGrad(GradientMethod(net, batch_size=n), samples=n, noise=0.2, seed=1)
    got = smooth.attribute(x, target=0)[0].ravel()
    p = np.array([0.5 * (1 + math.erf(v / 0.6 / math.sqrt(2))) for v in x.ravel()])
    tolerance = 5 * np.abs(w[0]) * np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(got - w[0] * p) <= tolerance), (got, w[0] * p, tolerance)
    again = smooth.attribute(x, target=0)
    np.testing.assert_array_equal(again[0].ravel(), got)                 # same seed, same noise
    other = SmoothGrad(GradientMethod(net, batch_size=n), samples=n, noise=0.2, seed=2)
    assert not np.array_equal(other.attribute(x, target=0)[0].ravel(), got)


def test_smoothgrad_wraps_any_map_and_stacks_classes(tiny):
    net = tiny.conv_gap_fc(classes=4, seed=21)
    x = np.random.default_rng(22).standard_normal((2, 3, 9, 8)).astype(np.float32)
    for method in (Saliency(net), GuidedBackprop(net), GradCAM(net)):
        sg = SmoothGrad(method, samples=5, noise=0.1, seed=3)
        stacked = sg.attribute(x, top_k=2)
        classes = sg.classes_.copy()
        assert stacked.shape[:2] == (2, 2)
        for k in range(2):
            np.testing.assert_allclose(stacked[k], sg.attribute(x, target=classes[k]), rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="samples must be a positive int"):
        SmoothGrad(Saliency(net), samples=0)


def _two_relu_net(tiny):
    """data (N,1,1,1) → h = relu([x, x − 1]) → S0 = h0 + h1, S1 = h0 − h1."""
    nodes = [helper.make_node("Flatten", ["data"], ["flat"], name="flat"),
             helper.make_node("Gemm", ["flat", "w1", "b1"], ["fc1"], name="fc1", transB=1),
             helper.make_node("Relu", ["fc1"], ["relu1"], name="relu1"),
             helper.make_node("Gemm", ["relu1", "w2", "b2"], ["score"], name="score", transB=1)]
    inits = {"w1": [[1.0], [1.0]], "b1": [0.0, -1.0], "w2": [[1.0, 1.0], [1.0, -1.0]], "b2": [0.0, 0.0]}
    return tiny.net(nodes, inits, ("N", 1, 1, 1), ["score"])


def test_integrated_gradients_midpoint_sum_by_hand(tiny):
    """x = 2 from 0: on the path αx, ∂S0/∂x = [α > 0] + [2α − 1 > 0]. Midpoints α = (k + ½)/m:
    m = 4 → gradients 1, 1, 2, 2 → IG = 2 · 1.5 = 3 = S0(2) − S0(0) (completeness);
    m = 3 → α = 1/6, 1/2, 5/6 → 1, 1, 2 (relu'(0) = 0) → IG = 2 · 4/3 = 8/3.
    S1: ∂S1/∂x = 1 − [2α > 1] → m = 4 → IG = 2 · ½ = 1 = S1(2) − S1(0)."""
    net = _two_relu_net(tiny)
    x = np.full((1, 1, 1, 1), 2.0, np.float32)
    four = IntegratedGradients(net, steps=4)
    np.testing.assert_allclose(four.attribute(x, target=0).ravel(), [3.0], rtol=1e-6)
    np.testing.assert_allclose(four.attribute(x, target=1).ravel(), [1.0], rtol=1e-6)
    np.testing.assert_allclose(IntegratedGradients(net, steps=3).attribute(x, target=0).ravel(), [8 / 3],
                               rtol=1e-6)
    # from the baseline 1 instead: α ∈ (0, 1) maps to 1 + α > 1, both ReLUs open: IG0 = 2 · 1
    np.testing.assert_allclose(IntegratedGradients(net, steps=3, baseline=1.0).attribute(x, target=0).ravel(),
                               [2.0], rtol=1e-6)


def test_integrated_gradients_of_a_linear_score(tiny):
    rng = np.random.default_rng(23)
    w = rng.standard_normal((3, 2 * 3 * 4)).astype(np.float32)
    net = tiny.relu_linear(w, np.zeros(3), (2, 3, 4), relu=False)
    x = rng.standard_normal((2, 2, 3, 4)).astype(np.float32)
    baseline = rng.standard_normal((2, 3, 4)).astype(np.float32)
    ig = IntegratedGradients(net, steps=5, baseline=baseline).attribute(x, target=2)
    np.testing.assert_allclose(ig, (x - baseline) * w[2].reshape(2, 3, 4), rtol=1e-5, atol=1e-6)


def test_integrated_gradients_completeness_batching_and_stacking(tiny):
    """On a conv net the path integrand is piecewise smooth: with m = 200 midpoints Σ IG is
    within 0.2 % of S(x) − S(0) (measured: ≤ 0.04 %; m = 10 is off by 1 %). Chunks of 7 path
    points give the same numbers as one batch."""
    net = tiny.conv_pool_fc(classes=4, seed=24)
    x = np.random.default_rng(25).standard_normal((2, 3, 8, 7)).astype(np.float32)
    ig = IntegratedGradients(GradientMethod(net, batch_size=256), steps=200)
    stacked = ig.attribute(x, top_k=2)
    classes = ig.classes_.copy()
    scores = Saliency(net).scores(x)
    zero = Saliency(net).scores(np.zeros_like(x))
    for k in range(2):
        for n in range(2):
            c = classes[k, n]
            delta = scores[n, c] - zero[n, c]
            assert abs(stacked[k, n].sum() - delta) <= 0.002 * abs(delta), (stacked[k, n].sum(), delta)
    chunked = IntegratedGradients(GradientMethod(net, batch_size=7), steps=200).attribute(x, target=classes[1])
    np.testing.assert_allclose(chunked, stacked[1], rtol=1e-5, atol=1e-6)
    # the wrapped method's rule and reduction apply
    guided = IntegratedGradients(GuidedBackprop(net, reduction="max"), steps=10).attribute(x, target=0)
    assert guided.shape == (2, 8, 7) and np.all(guided >= 0)
    with pytest.raises(InputError, match="integrates input gradients"):
        IntegratedGradients(GradCAM(net))
