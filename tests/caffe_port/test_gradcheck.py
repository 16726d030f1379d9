"""Model-level gradient checking (``caffe_port.gradcheck.gradcheck``) and check_op's precision.

Tolerances: the checker's own, |analytic − numeric| ≤ 1e-6 · max(1, |analytic|, |numeric|) per
point (float64, h = 1e-6); deconvnet/guided ReLU layers against their formulas with the same bound.
A deliberately wrong backward must fail with its layer named.
"""
import time

import numpy as np
import pytest

import caffe_port.kernels.maxpool as maxpool_kernel
from caffe_port import Net
from caffe_port.errors import BlobError, InputError
from caffe_port.gradcheck import check_op, gradcheck
from caffe_port.kernels import REGISTRY
from caffe_port.models import builders

TOL = 1e-6

# small widths and odd sizes: Caffe's ceil pooling, grouped convs, every kernel type of the builders
SMALL = {
    "caffenet": dict(width=0.125, input_size=67, num_classes=10),
    "alexnet": dict(width=0.125, input_size=67, num_classes=10),
    "zfnet": dict(width=0.125, input_size=71, num_classes=10),
    "vgg16": dict(width=0.0625, input_size=37, num_classes=10),
    "inception_block": dict(width=0.25, input_size=19, num_classes=10),
    "googlenet": dict(width=0.125, input_size=67, num_classes=10),
    "residual_block": dict(width=0.25, input_size=13, num_classes=10),
    "lenet": dict(width=0.5),
}


@pytest.fixture(scope="module")
def small_caffenet():
    return builders.caffenet(**SMALL["caffenet"])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_layer_of_every_builder_passes(name):
    model = builders.BUILDERS[name](**SMALL[name])
    report = gradcheck(model, points=8)
    assert report.ok, report
    on_path = {n.op_type for n in model.graph.node}
    assert {c.op_type for c in report.layers} == on_path     # every layer kind was checked
    assert all(c.method == "finite diff" and c.result.max_error <= TOL for c in report.layers)


def test_kernel_types_of_the_builders_are_all_covered():
    """The union over SMALL is every op type the builders emit (so the test above covers them)."""
    kinds = set()
    for name, kwargs in SMALL.items():
        kinds |= {n.op_type for n in builders.BUILDERS[name](**kwargs).graph.node}
    assert kinds == {"Conv", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "LRN", "Gemm",
                     "Flatten", "Dropout", "Softmax", "Concat", "Add", "BatchNormalization"}


@pytest.mark.parametrize("rule", ["deconvnet", "guided"])
def test_relu_rules_are_checked_against_their_formulas(small_caffenet, rule):
    report = gradcheck(small_caffenet, rule=rule, points=8)
    assert report.ok, report
    relus = [c for c in report.layers if c.op_type == "Relu"]
    assert len(relus) == 7
    formula = {"deconvnet": "formula max(g,0)", "guided": "formula max(g,0)·f'(x)"}[rule]
    assert all(c.method == formula for c in relus)
    # the formula is checked at every element of the stacked diffs, not at samples
    relu1 = next(c for c in relus if c.layer == "relu1")
    assert relu1.result.points + relu1.result.kinks == 2 * int(np.prod(relu1.bottom_shape))
    assert all(c.method == "finite diff" for c in report.layers if c.op_type != "Relu")
    assert formula in str(report)


def test_embedded_model_at_reduced_size(capsys):
    started = time.perf_counter()
    report = gradcheck("efficientnet-lite0", input_size=48, points=8)
    seconds = time.perf_counter() - started
    assert report.ok, report
    assert report.input_shapes == {"data": (2, 3, 48, 48)}
    kinds = {c.op_type for c in report.layers}
    assert kinds == {"Conv", "Clip", "Add", "GlobalAveragePool", "Flatten", "Gemm", "Softmax"}
    assert len(report.layers) == 95
    with capsys.disabled():
        print(f"\n[gradcheck] efficientnet-lite0 at 48×48: {len(report.layers)} layers in {seconds:.1f} s")


def test_embedded_model_guided_clip_formula():
    report = gradcheck("efficientnet-lite0", input_size=32, rule="guided", points=4)
    assert report.ok, report
    assert {c.method for c in report.layers if c.op_type == "Clip"} == {"formula max(g,0)·f'(x)"}


def test_wrong_relu_backward_fails_with_the_layers_named(small_caffenet):
    def no_mask(top_diff, bottom_data, top_data, attrs):      # forgets f'(x) = [x > 0]
        return [top_diff[0].copy()]

    report = gradcheck(small_caffenet, points=8, backward_overrides={"Relu": no_mask})
    assert not report.ok
    failed = [c.layer for c in report.failures]
    assert failed == ["relu1", "relu2", "relu3", "relu4", "relu5", "relu6", "relu7"]
    assert all(c.result.max_error > 0.1 for c in report.failures)
    text = str(report)
    assert "7 failed (relu1, relu2, relu3, relu4, relu5, …)" in text
    assert any(line.startswith("relu3 ") and line.endswith("FAIL") for line in text.splitlines())


def test_monkeypatched_registry_kernel_is_caught(small_caffenet, monkeypatch):
    """A max-pool backward that is 1 % off: the registry's entry is what gradcheck calls."""
    right = maxpool_kernel.maxpool_backward

    def one_percent_off(top_diff, bottom_data, top_data, attrs, **controls):
        return [d * 1.01 if d is not None else None
                for d in right(top_diff, bottom_data, top_data, attrs, **controls)]

    monkeypatch.setattr(maxpool_kernel, "maxpool_backward", one_percent_off)
    assert REGISTRY["MaxPool"].backward_kernel is one_percent_off
    report = gradcheck(small_caffenet, points=8)
    assert [c.layer for c in report.failures] == ["pool1", "pool2", "pool5"]


def test_one_layer_overridden_by_name(small_caffenet):
    right = REGISTRY["Conv"].backward

    def transposed_wrongly(top_diff, bottom_data, top_data, attrs, **controls):
        diff = right(top_diff, bottom_data, top_data, attrs, **controls)
        diff[0] = diff[0][..., ::-1].copy()                   # mirrored columns
        return diff

    report = gradcheck(small_caffenet, points=8, backward_overrides={"conv3": transposed_wrongly})
    assert [c.layer for c in report.failures] == ["conv3"]


def test_a_backward_that_raises_or_misshapes_is_a_failure_not_a_crash(small_caffenet):
    def raises(top_diff, bottom_data, top_data, attrs):
        raise ValueError("boom")

    def misshapen(top_diff, bottom_data, top_data, attrs):
        return [top_diff[0][:, :1]]

    report = gradcheck(small_caffenet, points=4, backward_overrides={"norm1": raises, "Dropout": misshapen})
    verdicts = {c.layer: c.verdict for c in report.failures}
    assert verdicts["norm1"] == "FAIL: ValueError: boom"
    assert set(verdicts) == {"norm1", "drop6", "drop7"}
    assert "bottom_diff[0] has shape (2, 1, 512), expected (2, 2, 512)" in verdicts["drop6"]


def test_wrong_guided_rule_fails(small_caffenet):
    right = REGISTRY["Relu"].backward

    def backprop_instead(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False):
        return right(top_diff, bottom_data, top_data, attrs, rule="backprop", in_place=in_place)

    report = gradcheck(small_caffenet, rule="guided", layer="relu5", backward_overrides={"Relu": backprop_instead})
    assert [c.layer for c in report.layers] == ["relu5"] and not report.ok


def test_one_layer_and_bad_arguments(small_caffenet):
    report = gradcheck(small_caffenet, layer="pool2")
    assert [(c.layer, c.op_type) for c in report.layers] == [("pool2", "MaxPool")] and report.ok
    assert report.layers[0].bottom_shape == (2, 32, 7, 7)
    with pytest.raises(BlobError, match="'pool9'"):
        gradcheck(small_caffenet, layer="pool9")
    with pytest.raises(InputError, match="rule"):
        gradcheck(small_caffenet, rule="guidedd")
    with pytest.raises(InputError, match="'Elu'"):
        gradcheck(small_caffenet, backward_overrides={"Elu": None})
    with pytest.raises(InputError, match="input size 20"):
        gradcheck(builders.lenet(), input_size=20)                  # fc7 was sized for 28×28


def test_reduced_size_of_a_net_and_of_a_builder_name():
    net = Net(builders.residual_block(width=0.25, input_size=15, num_classes=10), device="cpu")
    report = gradcheck(net, input_size=11, points=4)
    assert report.ok, report
    assert report.input_shapes == {"data": (2, 3, 11, 11)}
    assert report.layers[0].top_shape == (2, 16, 11, 11)
    report = gradcheck("lenet", input_size=32, layer="pool2", batch=3, k=1)
    assert report.model == "lenet" and report.layers[0].bottom_shape == (3, 50, 10, 10) and report.ok


def test_report_as_dict(small_caffenet):
    report = gradcheck(small_caffenet, layer="fc8", points=5, k=3)
    d = report.as_dict()
    assert d["ok"] and d["stacked_diffs"] == 3 and d["rule"] == "backprop"
    row = d["layers"][0]
    assert row["layer"] == "fc8" and row["points"] == 15 and row["kinks"] == 0
    assert row["max_rel_error"] <= TOL


def test_check_op_is_precise_on_large_tops():
    """Differences are summed top by top: a conv with 65 536 outputs at activation scale 100 is
    still checked to 1e-6 (summing L(x±h) whole leaves rounding noise: 4.6e-6 measured here)."""
    rng = np.random.default_rng(4)
    x = 100 * rng.standard_normal((1, 16, 64, 64))
    w = rng.standard_normal((16, 16, 3, 3)) / 12
    result = check_op("Conv", [x, w], {"pads": [1, 1, 1, 1]}, propagate_down=[True, False], max_points=20)
    assert result.ok, result
