"""The diff-flow trace: its numbers against the blobs' own statistics, its figure.

Tolerances: mean |diff| and pass fractions equal what numpy computes from the Net's blobs after
an independent backward with the same rule, to rel 1e-6 (float32 means summed in another order);
maps equal max over channels of |input diff| / its max, to rel 1e-6.
"""
import json
import sys

import numpy as np
import pytest

from caffe_port import Net
from caffe_port.errors import BlobError, InputError
from caffe_port.models import builders
from caffe_port.trace import RULES, format_trace, plot_trace, trace_json, trace_picture, trace_rules

REL = 1e-6


def small_image(size, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((3, size, size)) * 50).astype(np.float32)


@pytest.fixture(scope="module")
def caffenet():
    return builders.caffenet(width=0.125, input_size=67, num_classes=10)


def independent_backward(model, image, score_blob, c, rule):
    """A second Net (keep='all'), walked by hand: the blobs' own diffs."""
    net = Net(model, device="cpu", keep="all")
    net.forward(data=image[None])
    onehot = np.zeros(net.blobs[score_blob].shape, np.float32)
    onehot[0, c] = 1
    net.backward(start=score_blob, rule=rule, **{score_blob: onehot})
    return net


@pytest.mark.parametrize("keep", ["backward", "all"])
def test_numbers_equal_the_blobs_statistics(caffenet, keep):
    image = small_image(67)
    result = trace_rules(Net(caffenet, device="cpu", keep=keep), image, class_index=3)
    assert result["class"] == 3 and result["score_blob"] == "fc8" and result["rules"] == list(RULES)
    for rule in RULES:
        net = independent_backward(caffenet, image, "fc8", 3, rule)
        # a chain: each layer's record is its bottom blob's whole diff
        for row in result["layers"]:
            expected = float(np.abs(net.blobs[row["blob"]].diff).mean())
            assert row["mean_abs"][rule] == pytest.approx(expected, rel=REL), (rule, row["layer"])
            if row["type"] == "Relu":
                top, bottom = net.blobs[row["layer"]].diff, net.blobs[row["blob"]].diff
                assert row["pass_fraction"][rule] == pytest.approx(
                    np.count_nonzero(bottom) / np.count_nonzero(top), rel=REL)
        for blob, value in result["blobs"][rule].items():
            assert value == pytest.approx(float(np.abs(net.blobs[blob].diff).mean()), rel=REL), blob
        grad = np.abs(net.blobs["data"].diff[0]).max(axis=0)
        np.testing.assert_allclose(result["maps"][rule], grad / grad.max(), rtol=REL, atol=1e-7)
        assert result["map_max"][rule] == pytest.approx(float(grad.max()), rel=REL)


def test_layers_in_backward_order_and_the_rules_part_only_at_relus(caffenet):
    result = trace_rules(Net(caffenet, device="cpu"), small_image(67, seed=1))
    layers = [row["layer"] for row in result["layers"]]
    assert layers == ["fc8", "drop7", "relu7", "fc7", "drop6", "relu6", "fc6", "pool5_flat", "pool5",
                      "relu5", "conv5", "relu4", "conv4", "relu3", "conv3", "norm2", "pool2", "relu2",
                      "conv2", "norm1", "pool1", "relu1", "conv1"]
    first = result["layers"][0]["mean_abs"]
    assert first["backprop"] == first["deconvnet"] == first["guided"]   # fc8 is linear: same diff
    relu7 = result["layers"][2]
    assert relu7["mean_abs"]["backprop"] != relu7["mean_abs"]["deconvnet"]
    assert {row["layer"] for row in result["layers"] if "pass_fraction" in row} == \
        {f"relu{i}" for i in range(1, 8)}
    # at the first ReLU the same diff arrives under all three rules, and guided passes only what
    # both others pass (deeper down the arriving diffs differ, and so do the fractions' bases)
    f = relu7["pass_fraction"]
    assert 0 < f["guided"] <= min(f["backprop"], f["deconvnet"]) < 1
    assert result["class"] == int(np.argmax(Net(caffenet, device="cpu").forward(data=small_image(67, 1)[None],
                                                                                blobs=["fc8"])["fc8"]))


def test_branching_net_blob_diffs_are_sums(tmp_path):
    """Inception: a blob read by four branches gets the sum of their diffs."""
    model = builders.inception_block(width=0.25, input_size=19, num_classes=10)
    image = small_image(19, seed=2)
    result = trace_rules(Net(model, device="cpu"), image, class_index=7, rules=("guided",))
    net = independent_backward(model, image, "fc8", 7, "guided")
    assert "pool1" in result["blobs"]["guided"]
    for blob, value in result["blobs"]["guided"].items():
        assert value == pytest.approx(float(np.abs(net.blobs[blob].diff).mean()), rel=REL), blob
    assert sum(row["blob"] == "pool1" for row in result["layers"]) == 4   # four consumers, four records
    assert plot_trace(result, tmp_path / "one_rule.png", percentile=100) == tmp_path / "one_rule.png"


def test_debug_info_restored_and_json(caffenet):
    net = Net(caffenet, device="cpu")
    result = trace_rules(net, small_image(67)[None], class_index="4")
    assert net.debug_info is False and result["class"] == 4
    numbers = trace_json(result)
    text = json.dumps(numbers)
    assert "maps" not in numbers and "image" not in numbers and numbers["map_shape"] == [67, 67]
    assert json.loads(text)["layers"][0]["layer"] == "fc8"
    assert numbers["score_diff_mean_abs"] == pytest.approx(0.1)


def test_format_trace(caffenet):
    result = trace_rules(Net(caffenet, device="cpu"), small_image(67), class_index=2)
    lines = format_trace(result).splitlines()
    assert lines[0].startswith("caffenet: class 2 (score ") and "one-hot at 'fc8'" in lines[0]
    assert len(lines) == 2 + len(result["layers"]) + 1
    relu7 = next(line for line in lines if line.startswith("relu7 "))
    f = result["layers"][2]["pass_fraction"]
    assert relu7.split()[-3:] == [f"{f[r]:.2f}" for r in RULES]
    assert lines[-1].startswith("input map max |diff|: backprop ")


def test_bad_inputs(caffenet):
    net = Net(caffenet, device="cpu")
    with pytest.raises(InputError, match="out of range"):
        trace_rules(net, small_image(67), class_index=10)
    with pytest.raises(InputError, match="not ImageNet's 1000"):
        trace_rules(net, small_image(67), class_index="tabby cat")
    with pytest.raises(InputError, match="one image"):
        trace_rules(net, np.zeros((2, 3, 67, 67), np.float32))
    with pytest.raises(InputError, match="unknown rule 'guidedd'"):
        trace_rules(net, small_image(67), rules=("guidedd",))
    with pytest.raises(BlobError, match="fc9"):
        trace_rules(net, small_image(67), score_blob="fc9")


def test_plot_trace_writes_a_png(caffenet, tmp_path):
    result = trace_rules(Net(caffenet, device="cpu"), small_image(67))
    path = plot_trace(result, tmp_path / "sub" / "trace.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 500 and pixels.shape[1] > 1000
    assert pixels[..., :3].std() > 0.05                      # not a blank canvas
    picture = trace_picture(result)                          # the same figure as an array
    assert picture.dtype == np.uint8 and picture.shape == pixels.shape[:2] + (3,)


def test_plot_trace_without_matplotlib(caffenet, tmp_path, monkeypatch):
    result = trace_rules(Net(caffenet, device="cpu"), small_image(67), rules=("backprop",))
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import matplotlib → ImportError
    with pytest.raises(InputError, match=r"matplotlib is needed .*pip install 'caffe_port\[plot\]'"):
        plot_trace(result, tmp_path / "t.png")
    with pytest.raises(InputError, match="matplotlib is needed"):
        trace_picture(result)
    assert not (tmp_path / "t.png").exists()
