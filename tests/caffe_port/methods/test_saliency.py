"""Image-specific class saliency (Simonyan §3), the score blob, classes and batching."""
import numpy as np
import pytest
from onnx import helper

from caffe_port import Net
from caffe_port.errors import BlobError, InputError
from caffe_port.onnx_util import initializer, make_model, tensor_value_info
from caffe_port.methods import Saliency, find_score_blob

# The hand example: data (1, 2, 2, 2) → Relu → Flatten → Gemm (2 classes) → Softmax.
X = np.array([[[[1, -1], [2, 0.5]],
               [[-2, 3], [0.5, -1]]]], np.float32)
W = np.array([[1, 2, -3, 0, 0.5, -1, 2, 4],        # class 0, in (c, h, w) order
              [0, -1, 1, 1, -2, 0, 0, 3]], np.float32)
B = np.array([0.1, -0.2], np.float32)
# relu(X) = [[1, 0], [2, .5]], [[0, 3], [.5, 0]]; S0 = 1 − 6 − 3 + 1 + .1 = −6.9, S1 = 2 + .5 − .2 = 2.3
SCORES = np.array([[-6.9, 2.3]], np.float32)
# ∂S_c/∂x = W_c · [x > 0]; mask [x > 0] = [[1, 0], [1, 1]], [[0, 1], [1, 0]]
GRAD0 = np.array([[[1, 0], [-3, 0]], [[0, -1], [2, 0]]], np.float32)
GRAD1 = np.array([[[0, 0], [1, 1]], [[0, 0], [0, 0]]], np.float32)
TOL = dict(rtol=1e-6, atol=1e-6)   # float32 arithmetic on small integers and halves


@pytest.fixture
def hand(tiny):
    return tiny.relu_linear(W, B, (2, 2, 2))


def test_hand_example_scores_and_default_top1(hand):
    s = Saliency(hand)
    assert s.score_blob == "score" and s.input_blob == "data"
    np.testing.assert_allclose(s.scores(X), SCORES, **TOL)
    m = s.attribute(X)                                   # top-1 is class 1
    assert m.shape == (1, 2, 2)
    np.testing.assert_array_equal(s.classes_, [[1]])
    # max over channels of |GRAD1|
    np.testing.assert_allclose(m[0], [[0, 0], [1, 1]], **TOL)


def test_hand_example_class0_every_reduction(hand):
    expected = {"max": [[1, 1], [3, 0]],                  # max(|1|,|0|), max(|0|,|−1|), max(|−3|,|2|), 0
                "abs": [[1, 1], [5, 0]],
                "l2": [[1, 1], [np.sqrt(13), 0]],
                "sum": [[1, -1], [-1, 0]],
                "signed": GRAD0}
    for reduction, want in expected.items():
        m = Saliency(hand, reduction=reduction).attribute(X, target=0)
        np.testing.assert_allclose(m[0], np.asarray(want, np.float32), **TOL, err_msg=reduction)
    with pytest.raises(InputError, match="unknown reduction 'mean'"):
        Saliency(hand, reduction="mean")


def test_hand_example_both_classes_in_one_pass(hand):
    s = Saliency(hand, reduction="signed")
    both = s.attribute(X, top_k=2)
    assert both.shape == (2, 1, 2, 2, 2)
    np.testing.assert_array_equal(s.classes_, [[1], [0]])
    np.testing.assert_allclose(s.scores_, [[2.3], [-6.9]], rtol=1e-6)
    np.testing.assert_allclose(both[0, 0], GRAD1, **TOL)
    np.testing.assert_allclose(both[1, 0], GRAD0, **TOL)


def test_saliency_is_zero_outside_the_receptive_field(tiny):
    """Class 0 reads only pooled units (row 1, col 2) and (row 3, col 0) of channel 0. A pooled
    unit (i, j) takes conv rows 2i…2i+1, cols 2j…2j+1; the 3×3 pad-1 conv there sees input rows
    2i−1…2i+2 and cols 2j−1…2j+2. So: rows 1…4 × cols 3…6 (the image has 7 columns) and rows
    5…7 × cols 0…2 (both clipped to the image)."""
    rng = np.random.default_rng(3)
    fc_w = rng.standard_normal((3, 4 * 4 * 3))
    fc_w[0] = 0
    fc_w[0, 0 * 12 + 1 * 3 + 2] = 1.5
    fc_w[0, 0 * 12 + 3 * 3 + 0] = -0.7
    net = tiny.conv_pool_fc(classes=3, seed=1, fc_w=fc_w, conv_bias=3.0)   # bias keeps the ReLUs open
    x = rng.standard_normal((2, 3, 8, 7)).astype(np.float32)
    m = Saliency(net).attribute(x, target=0)
    field = np.zeros((8, 7), bool)
    field[1:5, 3:7] = True
    field[5:8, 0:3] = True
    assert np.all(m[:, ~field] == 0)
    for n in range(2):                                    # and the field itself is not blank
        assert np.count_nonzero(m[n, 1:5, 3:7]) >= 4 and np.count_nonzero(m[n, 5:8, 0:3]) >= 2


def test_top_k_in_one_pass_equals_k_single_passes(tiny):
    net = tiny.conv_pool_fc(classes=6, seed=2)
    x = np.random.default_rng(4).standard_normal((3, 3, 8, 7)).astype(np.float32)
    s = Saliency(net, reduction="signed")
    stacked = s.attribute(x, top_k=4)
    classes = s.classes_.copy()
    assert stacked.shape == (4, 3, 3, 8, 7) and classes.shape == (4, 3)
    scores = s.scores(x)
    np.testing.assert_array_equal(classes, np.argsort(-scores, axis=1)[:, :4].T)
    for k in range(4):
        single = s.attribute(x, target=classes[k])      # one class per image
        np.testing.assert_allclose(stacked[k], single, rtol=1e-6, atol=1e-7)


def test_batches_match_single_images_and_chunking(tiny):
    net = tiny.conv_pool_fc(classes=5, seed=5)
    x = np.random.default_rng(6).standard_normal((5, 3, 8, 7)).astype(np.float32)
    whole = Saliency(net).attribute(x, target=2)
    chunked = Saliency(net, batch_size=2).attribute(x, target=2)
    np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-7)
    for n in range(5):
        one = Saliency(net).attribute(x[n:n + 1], target=2)
        np.testing.assert_allclose(one[0], whole[n], rtol=1e-6, atol=1e-7)


def test_explicit_k_by_n_targets(tiny):
    net = tiny.conv_pool_fc(classes=5, seed=5)
    x = np.random.default_rng(7).standard_normal((2, 3, 8, 7)).astype(np.float32)
    s = Saliency(net)
    grid = np.array([[0, 4], [3, 3]])
    both = s.attribute(x, target=grid)
    assert both.shape == (2, 2, 8, 7)
    np.testing.assert_allclose(both[1], s.attribute(x, target=3), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(both[0, 1], s.attribute(x[1:], target=4)[0], rtol=1e-6, atol=1e-7)


def test_score_blob_found_and_overridden(tiny):
    with_softmax = tiny.relu_linear(W, B, (2, 2, 2))
    assert find_score_blob(with_softmax) == "score"
    without = tiny.relu_linear(W, B, (2, 2, 2), softmax=False)
    assert find_score_blob(without) == "score"
    assert find_score_blob(with_softmax, "flat") == "flat"
    with pytest.raises(BlobError, match="unknown blob 'fc8'"):
        Saliency(with_softmax, score_blob="fc8")
    # a score blob given by hand: the flattened relu output, "class" 3 is relu(x)[0, 1, 1] = 0.5
    m = Saliency(with_softmax, score_blob="flat", reduction="signed").attribute(X, target=1)
    expected = np.zeros((2, 2, 2), np.float32)            # d relu(x)[0,0,1] / dx: x = −1 → 0
    np.testing.assert_array_equal(m[0], expected)
    m = Saliency(with_softmax, score_blob="flat", reduction="signed").attribute(X, target=2)
    expected[0, 1, 0] = 1                                  # x = 2 > 0
    np.testing.assert_array_equal(m[0], expected)


def test_bad_classes_fail_clearly(hand):
    s = Saliency(hand)
    with pytest.raises(InputError, match="class index 2 is out of range: the net has 2 classes"):
        s.attribute(X, target=2)
    with pytest.raises(InputError, match="out of range"):
        s.attribute(X, target=-1)
    with pytest.raises(InputError, match="top_k must be an int in 1…2"):
        s.attribute(X, top_k=3)
    with pytest.raises(InputError, match="either target= or top_k="):
        s.attribute(X, target=0, top_k=1)
    with pytest.raises(InputError, match="3 classes for 1 images"):
        s.attribute(X, target=[0, 1, 1])
    with pytest.raises(InputError, match="no class names"):
        s.attribute(X, target="goose")
    named = Saliency(hand, labels=["tabby, tabby cat", "goose"])
    np.testing.assert_array_equal(named.attribute(X, target="tabby cat"), s.attribute(X, target=0))
    with pytest.raises(InputError, match="unknown class name 'gose'; did you mean 'goose'"):
        named.attribute(X, target="gose")


def test_imagenet_names_on_a_1000_class_net(tiny):
    rng = np.random.default_rng(8)
    net = tiny.relu_linear(rng.standard_normal((1000, 8)), np.zeros(1000), (2, 2, 2))
    s = Saliency(net)
    if s.labels is None:
        pytest.skip("caffe_port/data/imagenet_classes.txt is not there")
    s.attribute(X, target="tabby cat")
    assert s.classes_[0, 0] == 281 and s.class_name(281) == "tabby, tabby cat"
    s.attribute(X, target="Goose")
    assert s.classes_[0, 0] == 99


def test_a_net_with_a_fixed_batch_size_runs_in_padded_chunks(tiny):
    """A deploy with input_dim 1 (or 10) takes exactly that many images: N = 3 images go through
    in padded chunks, with the same maps as a net whose batch is free."""
    fixed = tiny.relu_linear(W, B, (2, 2, 2))
    x = np.random.default_rng(17).standard_normal((3, 2, 2, 2)).astype(np.float32)
    nodes = [helper.make_node("Relu", ["data"], ["relu"]), helper.make_node("Flatten", ["relu"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w", "b"], ["score"], transB=1)]
    for batch in (1, 2):
        graph = helper.make_graph(nodes, "fixed", [tensor_value_info("data", (batch, 2, 2, 2))],
                                  [helper.make_empty_tensor_value_info("score")],
                                  initializer=[initializer("w", W), initializer("b", B)])
        net = Net(make_model(graph, 13), device="cpu")
        s = Saliency(net)
        assert s.batch_size == batch
        np.testing.assert_allclose(s.attribute(x, top_k=2), Saliency(fixed).attribute(x, top_k=2), rtol=1e-6)
