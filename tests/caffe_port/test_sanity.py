"""Model-randomisation checks: which layers each mode randomises, the random weights' law, the
trained net untouched afterwards, and the numbers against scipy/scikit-image on maps known in
closed form (a linear net's gradient is its weight row)."""
import numpy as np
import pytest
from onnx import helper
from scipy import stats
from skimage.metrics import structural_similarity

from caffe_port import sanity
from caffe_port.errors import InputError
from caffe_port.methods import CAM, GradCAM, GuidedBackprop, Saliency
from helpers import tiny_nets


def linear_net(shape=(1, 12, 11), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    return tiny_nets.relu_linear(rng.normal(size=(classes, size)), rng.normal(size=classes) * 0.1,
                                 shape, relu=False)


def skimage_ssim(a, b):
    def unit(m):
        return (m - m.min()) / (m.max() - m.min())
    return structural_similarity(unit(a), unit(b), data_range=1.0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)


def test_block_names():
    assert sanity.block_name("blocks.3.expand") == "blocks.3"
    assert sanity.block_name("stem.conv") == "stem"
    assert sanity.block_name("inception_3a/1x1") == "inception_3a"
    assert sanity.block_name("fc8") == "fc8"
    assert sanity.block_name("/conv") == "/conv"


def test_units_top_first_grouped_by_block():
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["data", "w0", "b0"], ["s"], name="stem.conv", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["s", "w1"], ["e"], name="blocks.0.expand"),
             helper.make_node("Relu", ["e"], ["r"], name="blocks.0.relu"),
             helper.make_node("Conv", ["r", "w2"], ["p"], name="blocks.0.project"),
             helper.make_node("GlobalAveragePool", ["p"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], name="logits", transB=1)]
    inits = {"w0": rng.normal(size=(4, 3, 3, 3)), "b0": np.zeros(4), "w1": rng.normal(size=(6, 4, 1, 1)),
             "w2": rng.normal(size=(4, 6, 1, 1)), "fw": rng.normal(size=(2, 4)), "fb": np.zeros(2)}
    net = tiny_nets.net(nodes, inits, ("N", 3, 5, 5), ["logits"])
    assert [(u.name, u.layers) for u in sanity.units(net)] == [
        ("logits", ("logits",)), ("blocks.0", ("blocks.0.project", "blocks.0.expand")), ("stem", ("stem.conv",))]
    assert [u.name for u in sanity.units(net, "layer")] == ["logits", "blocks.0.project", "blocks.0.expand",
                                                            "stem.conv"]
    units = sanity.units(net)
    assert [u.name for u in sanity.choose_units(units, ["stem", "blocks.0.expand", "logits"])] == \
        ["logits", "blocks.0", "stem"]
    with pytest.raises(InputError, match="no unit or layer .* 'head'"):
        sanity.choose_units(units, ["head"])
    with pytest.raises(InputError, match="unknown unit"):
        sanity.units(net, "module")


def test_random_weights_are_a_seeded_truncated_normal_of_the_tensors_own_std():
    net = tiny_nets.conv_gap_fc(classes=4, seed=1, channels=40, shape=(30, 9, 8))
    new = sanity.reinitialised(net, ["conv2"], seed=3)
    w = net.graph.constants["w2"]
    sigma = np.std(w, dtype=np.float64)
    values = new["w2"].astype(np.float64).ravel() / sigma
    assert new["w2"].dtype == w.dtype and new["w2"].shape == w.shape
    assert np.abs(values).max() <= 2.0
    assert stats.kstest(values, stats.truncnorm(-2, 2).cdf).pvalue > 0.01
    assert set(new) == {"w2", "b2"}
    again = sanity.reinitialised(net, ["conv1", "conv2"], seed=3)
    np.testing.assert_array_equal(again["w2"], new["w2"])     # by the layer's position: the same
    assert not np.array_equal(sanity.reinitialised(net, ["conv2"], seed=4)["w2"], new["w2"])


def test_a_constant_tensor_keeps_its_values():
    net = tiny_nets.relu_linear(np.ones((2, 4)), np.full(2, 0.5), (1, 2, 2))
    new = sanity.reinitialised(net, ["score"])
    np.testing.assert_array_equal(new["w"], np.ones((2, 4)))
    np.testing.assert_array_equal(new["b"], np.full(2, 0.5))


def test_the_trained_net_comes_back_even_after_an_error():
    net = tiny_nets.conv_gap_fc(classes=4, seed=2, shape=(3, 12, 12))
    x = np.random.default_rng(0).normal(size=(1, 3, 12, 12)).astype(np.float32)
    before = np.array(net.forward(data=x)["prob"])
    arrays = {name: net.graph.constants[name] for name in ("w1", "b1", "w2", "fw")}
    copies = {name: a.copy() for name, a in arrays.items()}
    with pytest.raises(RuntimeError):
        with sanity.randomised(net, ["conv1", "conv2", "score"]):
            assert not np.allclose(net.forward(data=x)["prob"], before)
            raise RuntimeError("inside")
    for name, a in arrays.items():
        assert net.graph.constants[name] is a
        np.testing.assert_array_equal(a, copies[name])
    np.testing.assert_array_equal(net.forward(data=x)["prob"], before)


def test_numbers_on_a_linear_net_match_scipy_and_skimage():
    net = linear_net()
    w = net.graph.constants["w"]
    result = sanity.sanity_checks(net, {"saliency": Saliency, "guided": GuidedBackprop},
                                  np.ones((1, 1, 12, 11), np.float32), target=1)
    assert result.target == 1
    random_w = sanity.reinitialised(net, ["score"])["w"]
    trained, randomised = w[1].reshape(12, 11), random_w[1].reshape(12, 11)
    for mode in ("cascading", "independent"):
        s = result.results["saliency"][mode][0]
        assert s.unit == "score"
        expected = stats.spearmanr(np.abs(trained).ravel(), np.abs(randomised).ravel()).statistic
        assert s.spearman_abs == pytest.approx(expected, abs=1e-12)
        assert s.spearman == pytest.approx(expected, abs=1e-12)         # |∂S/∂x| is its own sign
        assert s.ssim == pytest.approx(skimage_ssim(np.abs(trained), np.abs(randomised)), abs=1e-6)
        g = result.results["guided"][mode][0]                           # the signed gradient itself
        assert g.spearman == pytest.approx(stats.spearmanr(trained.ravel(), randomised.ravel()).statistic, abs=1e-12)
        assert g.spearman_abs == pytest.approx(s.spearman_abs, abs=1e-12)
    np.testing.assert_array_equal(net.graph.constants["w"], w)
    assert result.results["saliency"]["cascading"][0].spearman_abs < 0.5    # the map did change


def test_cascading_randomises_everything_above_and_independent_one_unit():
    net = tiny_nets.conv_gap_fc(classes=4, seed=3, shape=(3, 12, 14))
    x = np.random.default_rng(1).normal(size=(1, 3, 12, 14)).astype(np.float32)
    methods = {"saliency": Saliency, "gradcam": GradCAM, "cam": CAM}
    result = sanity.sanity_checks(net, methods, x, seed=5)
    c = result.target
    assert [u.name for u in result.units] == ["score", "conv2", "conv1"]
    layers = {"cascading": [["score"], ["score", "conv2"], ["score", "conv2", "conv1"]],
              "independent": [["score"], ["conv2"], ["conv1"]]}
    for name, cls in methods.items():
        trained = cls(net).attribute(x, target=c)[0]
        np.testing.assert_array_equal(result.original[name], trained)
        for mode, randomised_layers in layers.items():
            for comparison, chosen in zip(result.results[name][mode], randomised_layers):
                with sanity.randomised(net, chosen, seed=5):
                    expected = cls(net).attribute(x, target=c)[0]
                np.testing.assert_allclose(comparison.saliency_map, expected, rtol=1e-6, atol=1e-7)
    for mode in layers:
        assert len(result.results["saliency"][mode]) == 3
    report = result.as_json()
    assert set(report["methods"]) == set(methods)
    assert set(report["methods"]["cam"]) == {"cascading", "independent"}
    assert set(report["methods"]["cam"]["cascading"][0]) == {"layer", "spearman_abs", "spearman", "ssim"}
    picture = sanity.figure(result, "cascading", {}, tile=40)
    assert picture.ndim == 3 and picture.shape[1] > 4 * 40 and picture.shape[0] > 3 * 40


def test_undefined_numbers_are_null():
    comparison = sanity.Comparison("fc", float("nan"), 0.5, float("nan"), np.zeros((2, 2)))
    assert comparison.as_json() == {"layer": "fc", "spearman_abs": None, "spearman": 0.5, "ssim": None}


def test_refusals():
    net = linear_net()
    x = np.ones((1, 1, 12, 11), np.float32)
    with pytest.raises(InputError, match="one image"):
        sanity.sanity_checks(net, {"saliency": Saliency}, np.ones((2, 1, 12, 11), np.float32))
    with pytest.raises(InputError, match="unknown randomisation"):
        sanity.sanity_checks(net, {"saliency": Saliency}, x, modes=("cascade",))
    with pytest.raises(InputError, match="at least one method"):
        sanity.sanity_checks(net, {}, x)
