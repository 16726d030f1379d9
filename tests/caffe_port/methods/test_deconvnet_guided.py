"""Deconvnet and guided backprop: the ReLU rule is the only difference from the gradient."""
import numpy as np
import pytest

from caffe_port.methods import Deconvnet, GuidedBackprop, Saliency

# The hand example of test_saliency: data (1, 2, 2, 2) → Relu → Flatten → Gemm (2 classes).
X = np.array([[[[1, -1], [2, 0.5]],
               [[-2, 3], [0.5, -1]]]], np.float32)
W = np.array([[1, 2, -3, 0, 0.5, -1, 2, 4],
              [0, -1, 1, 1, -2, 0, 0, 3]], np.float32)
B = np.array([0.1, -0.2], np.float32)
# The diff reaching the ReLU's top is W_c. backprop gates it by [x > 0]; deconvnet rectifies it,
# max(W_c, 0); guided does both.
DECONV0 = np.array([[[1, 2], [0, 0]], [[0.5, 0], [2, 4]]], np.float32)
GUIDED0 = np.array([[[1, 0], [0, 0]], [[0, 0], [2, 0]]], np.float32)      # mask [[1,0],[1,1]],[[0,1],[1,0]]
DECONV1 = np.array([[[0, 0], [1, 1]], [[0, 0], [0, 3]]], np.float32)
GUIDED1 = np.array([[[0, 0], [1, 1]], [[0, 0], [0, 0]]], np.float32)


@pytest.fixture
def hand(tiny):
    return tiny.relu_linear(W, B, (2, 2, 2))


def test_hand_example_deconvnet(hand):
    d = Deconvnet(hand)
    assert d.reduction == "signed"
    out = d.attribute(X, top_k=2)                         # classes 1 then 0
    np.testing.assert_array_equal(d.classes_, [[1], [0]])
    np.testing.assert_array_equal(out[0, 0], DECONV1)
    np.testing.assert_array_equal(out[1, 0], DECONV0)


def test_hand_example_guided(hand):
    g = GuidedBackprop(hand)
    np.testing.assert_array_equal(g.attribute(X, target=0)[0], GUIDED0)
    np.testing.assert_array_equal(g.attribute(X, target=1)[0], GUIDED1)
    # a reduction applies as for saliency: max over channels of |guided|
    np.testing.assert_array_equal(GuidedBackprop(hand, reduction="max").attribute(X, target=0)[0],
                                  [[1, 0], [2, 0]])


def test_without_relu_the_three_rules_agree(tiny):
    """Simonyan §4: apart from the ReLU, a deconvnet is back-propagation (max pooling through the
    same switches) — so on a net without ReLU all three give the gradient, and with one they part."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3 * 6 * 5)).astype(np.float32)
    linear = tiny.relu_linear(w, np.zeros(4), (3, 6, 5), relu=False)
    grad = Saliency(linear, reduction="signed").attribute(x, target=2)
    np.testing.assert_array_equal(Deconvnet(linear).attribute(x, target=2), grad)
    np.testing.assert_array_equal(GuidedBackprop(linear).attribute(x, target=2), grad)
    # the gradient of a linear score is its weight row, whatever the image
    np.testing.assert_allclose(grad, np.broadcast_to(w[2].reshape(3, 6, 5), x.shape), rtol=1e-6)
    rectified = tiny.relu_linear(w, np.zeros(4), (3, 6, 5))
    grad = Saliency(rectified, reduction="signed").attribute(x, target=2)
    deconv = Deconvnet(rectified).attribute(x, target=2)
    guided = GuidedBackprop(rectified).attribute(x, target=2)
    row = w[2].reshape(3, 6, 5)
    np.testing.assert_array_equal(grad, row * (x > 0))
    np.testing.assert_array_equal(deconv, np.broadcast_to(np.maximum(row, 0), x.shape))
    np.testing.assert_array_equal(guided, np.maximum(row, 0) * (x > 0))


def test_stacked_rules_equal_single_passes(tiny):
    net = tiny.conv_pool_fc(classes=5, seed=11)
    x = np.random.default_rng(12).standard_normal((2, 3, 8, 7)).astype(np.float32)
    for cls in (Deconvnet, GuidedBackprop):
        m = cls(net)
        stacked = m.attribute(x, top_k=3)
        classes = m.classes_.copy()
        for k in range(3):
            np.testing.assert_allclose(stacked[k], m.attribute(x, target=classes[k]), rtol=1e-6, atol=1e-7)
