"""CAM, Grad-CAM and guided Grad-CAM: one family, differing in the channel weights."""
import numpy as np
import pytest
from onnx import helper

from caffe_port.errors import InputError
from caffe_port.methods import CAM, GradCAM, GuidedBackprop, GuidedGradCAM, upsample

# The hand example: data (1, 2, 2, 3) → Conv 1×1 (3 maps: x0, x1, x0 − x1) → Relu "features"
# → GAP → Flatten → Dropout → Gemm (2 classes) → Softmax.
X = np.array([[[[1, 2, 0], [-1, 3, 1]],
               [[0, 1, 2], [1, -2, 1]]]], np.float32)
CONV_W = np.array([[1, 0], [0, 1], [1, -1]], np.float32).reshape(3, 2, 1, 1)
FC_W = np.array([[1, -1, 0.5], [-1, 2, 1]], np.float32)
FC_B = np.array([0.25, -0.25], np.float32)
# A0 = relu(x0) = [[1,2,0],[0,3,1]], A1 = relu(x1) = [[0,1,2],[1,0,1]],
# A2 = relu(x0 − x1) = relu([[1,1,−2],[−2,5,0]]) = [[1,1,0],[0,5,0]]
CAM0 = np.array([[1.5, 1.5, -2], [-1, 5.5, 0]], np.float32)      # A0 − A1 + ½A2
CAM1 = np.array([[0, 1, 4], [2, 2, 1]], np.float32)              # −A0 + 2A1 + A2
# S_c = mean(CAM_c) + b_c: S0 = 5.5/6 + .25 ≈ 1.17, S1 = 10/6 − .25 ≈ 1.42 → top-1 is class 1
TOL = dict(rtol=1e-6, atol=1e-6)


@pytest.fixture
def hand(tiny):
    return tiny.gap_fc(CONV_W, np.zeros(3), FC_W, FC_B, (2, 2, 3))


def test_hand_example_cam(hand):
    cam = CAM(hand)
    assert cam.layer == "features"
    np.testing.assert_allclose(cam.class_weights, FC_W)
    out = cam.attribute(X, top_k=2)
    np.testing.assert_array_equal(cam.classes_, [[1], [0]])
    np.testing.assert_allclose(out[:, 0], [CAM1, CAM0], **TOL)
    # the map's mean plus the bias is the score
    np.testing.assert_allclose(cam.scores_[:, 0], [10 / 6 - 0.25, 5.5 / 6 + 0.25], rtol=1e-6)


def test_cam_through_a_whole_map_average_pool(tiny):
    net = tiny.gap_fc(CONV_W, np.zeros(3), FC_W, FC_B, (2, 2, 3), pool="AveragePool")
    np.testing.assert_allclose(CAM(net).attribute(X, target=0)[0], CAM0, **TOL)


def test_hand_example_gradcam(hand):
    """∂S_c/∂A_k(i,j) = w_ck / 6 everywhere, so α_ck = w_ck / 6 and Grad-CAM = ReLU(CAM) / 6."""
    g = GradCAM(hand)
    assert g.layer == "features"                       # the last blob with h·w > 1
    out = g.attribute(X, top_k=2)
    np.testing.assert_allclose(out[0, 0], CAM1 / 6, **TOL)
    np.testing.assert_allclose(out[1, 0], np.maximum(CAM0, 0) / 6, **TOL)


def test_hand_example_guided_gradcam(hand):
    """Guided backprop of class 1: the diff at each map k is w_1k/6; the guided ReLU keeps
    max(w_1k/6, 0)·[conv_k > 0] (k = 1: 2/6·[x1 > 0], k = 2: 1/6·[x0 − x1 > 0], k = 0 dropped);
    the 1×1 conv sends map 0 + map 2 to x0 and map 1 − map 2 to x1:
        x0: [[1,1,0],[0,1,0]]/6,   x1: [[−1,1,2],[2,−1,2]]/6
    times Grad-CAM_1 = CAM1/6 = [[0,1,4],[2,2,1]]/6."""
    guided = np.array([[[1, 1, 0], [0, 1, 0]], [[-1, 1, 2], [2, -1, 2]]], np.float32) / 6
    np.testing.assert_allclose(GuidedBackprop(hand).attribute(X, target=1)[0], guided, **TOL)
    want = np.array([[[0, 1, 0], [0, 2, 0]], [[0, 1, 8], [4, -2, 2]]], np.float32) / 36
    np.testing.assert_allclose(GuidedGradCAM(hand).attribute(X)[0], want, **TOL)


def test_cam_equals_gradcam_up_to_relu_and_scale(tiny):
    """On GAP → linear: Grad-CAM = ReLU(CAM) / (h·w), at the layer's resolution; upsampled,
    both are the same bilinear upsampling of those maps."""
    net = tiny.conv_gap_fc(classes=4, seed=13)
    x = np.random.default_rng(14).standard_normal((3, 3, 9, 8)).astype(np.float32)
    cam = CAM(net, upsample=None)
    grad_cam = GradCAM(net, upsample=None)
    assert cam.layer == grad_cam.layer == "features"
    low_cam = cam.attribute(x, top_k=4)
    low_grad = grad_cam.attribute(x, top_k=4)
    h, w = low_cam.shape[-2:]
    assert (h, w) == (4, 3) and np.any(low_cam < 0) and np.any(low_cam > 0)
    np.testing.assert_allclose(low_grad, np.maximum(low_cam, 0) / (h * w), rtol=1e-5, atol=1e-6)
    full_cam = CAM(net).attribute(x, top_k=4)
    full_grad = GradCAM(net).attribute(x, top_k=4)
    assert full_cam.shape == (4, 3, 9, 8)
    np.testing.assert_allclose(full_cam, upsample(low_cam, (9, 8)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(full_grad, upsample(np.maximum(low_cam, 0) / (h * w), (9, 8)),
                               rtol=1e-5, atol=1e-6)


def test_gradcam_on_a_net_without_gap_and_cam_refusing_it(tiny):
    net = tiny.conv_pool_fc(classes=5, seed=15)
    with pytest.raises(InputError, match="CAM needs GlobalAveragePool.*'fc8'.*'pool1' \\(MaxPool\\).*use GradCAM"):
        CAM(net)
    x = np.random.default_rng(16).standard_normal((2, 3, 8, 7)).astype(np.float32)
    g = GradCAM(net)
    assert g.layer == "pool1"
    stacked = g.attribute(x, top_k=3)
    classes = g.classes_.copy()
    assert stacked.shape == (3, 2, 8, 7) and np.all(stacked >= 0)
    for k in range(3):                                   # top-k in one pass = k single passes
        np.testing.assert_allclose(stacked[k], g.attribute(x, target=classes[k]), rtol=1e-6, atol=1e-7)
    conv = GradCAM(net, layer="relu1").attribute(x, target=0)      # any spatial blob on the path
    assert conv.shape == (2, 8, 7)
    with pytest.raises(InputError, match="does not lie on the path"):
        GradCAM(net, layer="prob")



def test_cam_with_a_1x1_conv_classifier_and_4d_scores(tiny):
    """NIN-style: GAP → Conv 1×1 (the classifier) = "score" of shape (N, 2, 1, 1) → Softmax."""
    nodes = [helper.make_node("Conv", ["data", "cw", "cb"], ["conv"], name="conv"),
             helper.make_node("Relu", ["conv"], ["features"], name="features"),
             helper.make_node("GlobalAveragePool", ["features"], ["gap"], name="gap"),
             helper.make_node("Conv", ["gap", "fw", "fb"], ["score"], name="score"),
             helper.make_node("Softmax", ["score"], ["prob"], name="prob", axis=1)]
    inits = {"cw": CONV_W, "cb": np.zeros(3), "fw": FC_W.reshape(2, 3, 1, 1), "fb": FC_B}
    net = tiny.net(nodes, inits, ("N", 2, 2, 3), ["prob"])
    cam = CAM(net)
    assert cam.score_blob == "score" and cam.layer == "features"
    np.testing.assert_allclose(cam.attribute(X, top_k=2)[:, 0], [CAM1, CAM0], **TOL)
    np.testing.assert_allclose(GradCAM(net).attribute(X, target=1)[0], CAM1 / 6, **TOL)


def test_cam_through_reduce_mean_and_matmul(tiny):
    """ReduceMean over (H, W) without keepdims, then MatMul by a (C, classes) constant."""
    nodes = [helper.make_node("Conv", ["data", "cw", "cb"], ["conv"], name="conv"),
             helper.make_node("Relu", ["conv"], ["features"], name="features"),
             helper.make_node("ReduceMean", ["features"], ["mean"], name="mean", axes=[2, 3], keepdims=0),
             helper.make_node("MatMul", ["mean", "fw"], ["score"], name="score")]
    inits = {"cw": CONV_W, "cb": np.zeros(3), "fw": FC_W.T}
    net = tiny.net(nodes, inits, ("N", 2, 2, 3), ["score"])
    cam = CAM(net)
    assert cam.layer == "features"
    np.testing.assert_allclose(cam.attribute(X, target=0)[0], CAM0, **TOL)
    np.testing.assert_allclose(GradCAM(net).attribute(X, target=0)[0], np.maximum(CAM0, 0) / 6, **TOL)
