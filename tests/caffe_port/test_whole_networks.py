"""Acceptance: whole networks through ``caffe_port.Net`` against a float64 PyTorch oracle.

For CaffeNet, VGG16, GoogLeNet's inception block, a residual block and GoogLeNet (small widths
and odd input sizes, so Caffe's ceil pooling is exercised; N = 2: a photograph, whose smooth
regions put ReLU inputs near 0 and pooling windows near ties, and Gaussian noise):

* logits: ONNX Runtime's float32 forward vs the oracle's float64 one,
  max |Δ| ≤ 1e-5 · max(1, max |logit|);
* input diffs of the logits for a random top diff, for each rule (backprop, deconvnet, guided),
  vs the float64 oracle whose ReLU masks and max-pool switches come from our forward:
  relative L2 error ≤ 1e-4 (1e-7…1e-6 is what float32 accumulation gives);
* a stacked (K = 3, N, classes) top diff equals three separate backward calls.

And Simonyan et al. §4 as tests: without ReLUs, deconvnet and backprop input diffs are identical;
with ReLUs, Zeiler & Fergus's reconstruction (unpool by switches, rectify, transposed filters)
equals back-propagation with only the ReLU step changed.
"""
import functools

import numpy as np
import pytest

from caffe_port import Net
from caffe_port.models import builders
from caffe_port.models.builders import logits_blob
from caffe_port.bench.torch_peer import TorchNet
from helpers.onnx_models import one_node_model, run_onnxruntime
from helpers.torch_reference import reference_forward, reference_input_grad

torch = pytest.importorskip("torch")
pytest.importorskip("skimage")

RULES = ("backprop", "deconvnet", "guided")
GRAD_TOL = 1e-4       # relative L2 of the input diff vs the float64 oracle
LOGIT_TOL = 1e-5      # max |Δlogit| ≤ LOGIT_TOL · max(1, max |logit|)
STACK_TOL = 1e-6      # stacked vs separate: relative L2 (float32 sums taken in another order)

NETWORKS = {
    "caffenet": (builders.caffenet, dict(width=0.25, input_size=95)),
    "vgg16": (builders.vgg16, dict(width=0.125, input_size=45)),
    "inception_block": (builders.inception_block, dict(width=0.5, input_size=23)),
    "residual_block": (builders.residual_block, dict(width=0.5, input_size=15)),
    "googlenet": (builders.googlenet, dict(width=0.125, input_size=99)),
}
FULL_SIZE = {
    "caffenet": (builders.caffenet, dict(), 2, RULES),
    "vgg16": (builders.vgg16, dict(), 1, ("backprop",)),
}


def rel_l2(got, expected):
    return float(np.linalg.norm(got - expected) / np.linalg.norm(expected))


def photo(size):
    """scikit-image's astronaut as Caffe feeds it: size × size, BGR, ImageNet mean subtracted."""
    from skimage import data, transform
    rgb = transform.resize(data.astronaut(), (size, size), preserve_range=True)
    return (rgb[..., ::-1] - [104.0, 117.0, 123.0]).transpose(2, 0, 1).astype(np.float32)


def image_batch(n, size, seed=0):
    """A photograph, then n − 1 Gaussian images at the scale of mean-subtracted pixels."""
    noise = np.random.default_rng(seed).standard_normal((n - 1, 3, size, size)) * 50
    return np.concatenate([photo(size)[None], noise]).astype(np.float32)


class Case:
    """One network with its batch, forward run once and shared by the tests."""

    def __init__(self, build, kwargs, n=2):
        self.model = build(**kwargs)
        size = kwargs.get("input_size") or self.model.graph.input[0].type.tensor_type.shape.dim[2].dim_value
        self.x = image_batch(n, size)
        self.logits = logits_blob(self.model)
        self.net = Net(self.model, device="cpu")
        self.outputs = self.net.forward(data=self.x)
        classes = self.net.blobs[self.logits].data.shape[1]
        self.top_diff = np.random.default_rng(1).standard_normal((n, classes)).astype(np.float32)

    def diff(self, rule, top_diff=None):
        top_diff = self.top_diff if top_diff is None else top_diff
        # a copy: the data blob's diff is the Net's memory, rewritten by the next backward
        return self.net.backward(rule=rule, **{self.logits: top_diff})["data"].copy()

    def oracle(self, rule, top_diff=None):
        top_diff = self.top_diff if top_diff is None else top_diff
        return reference_input_grad(self.model, self.x, self.logits, top_diff, rule, kept=self.net.blobs)


@functools.lru_cache(maxsize=None)
def case(name):
    build, kwargs = NETWORKS[name]
    return Case(build, kwargs)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_logits(name):
    c = case(name)
    ours = c.net.blobs[c.logits].data
    reference = TorchNet(c.model, dtype="float64")
    reference.forward(data=c.x)
    expected = reference.blob(c.logits)
    assert ours.dtype == np.float32 and ours.shape == expected.shape
    assert np.abs(ours - expected).max() <= LOGIT_TOL * max(1.0, np.abs(expected).max())
    # softmax: |Δp_i| ≤ 2 p_i max|Δz| ≤ 2 max|Δz|
    assert np.abs(c.outputs["prob"] - reference.blob("prob")).max() <= \
        2 * LOGIT_TOL * max(1.0, np.abs(expected).max())


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("name", list(NETWORKS))
def test_input_diff_matches_oracle(name, rule):
    c = case(name)
    got = c.diff(rule)
    expected = c.oracle(rule)
    assert got.shape == c.x.shape and got.dtype == np.float32
    error = rel_l2(got, expected)
    assert error <= GRAD_TOL, f"{name} {rule}: relative L2 {error:.2e}"


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("name", list(NETWORKS))
def test_stacked_diffs_equal_separate_calls(name, rule):
    c = case(name)
    stacked_top = np.random.default_rng(2).standard_normal((3,) + c.top_diff.shape).astype(np.float32)
    stacked = c.diff(rule, stacked_top)
    separate = np.stack([c.diff(rule, stacked_top[k]) for k in range(3)])
    assert stacked.shape == (3,) + c.x.shape
    for k in range(3):
        assert rel_l2(stacked[k], separate[k]) <= STACK_TOL


def test_masks_and_switches_from_our_forward_matter():
    """Why the oracle takes ReLU masks and max-pool switches from our forward: on the photograph, a
    float64 forward of its own flips a few near-zero ReLUs and near-tied windows, and that alone
    moves GoogLeNet's input gradient by far more than the tolerance (8e-3 measured)."""
    c = case("googlenet")
    got = c.diff("backprop")
    own = reference_input_grad(c.model, c.x[:1], c.logits, c.top_diff[:1], "backprop")
    assert rel_l2(got[:1], own) > 10 * GRAD_TOL
    assert rel_l2(got, c.oracle("backprop")) <= GRAD_TOL


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FULL_SIZE))
def test_full_size(name):
    build, kwargs, n, rules = FULL_SIZE[name]
    c = Case(build, kwargs, n=n)
    for rule in rules:
        oracle_blobs = {}
        expected = reference_input_grad(c.model, c.x, c.logits, c.top_diff, rule, kept=c.net.blobs,
                                        forward_blobs=oracle_blobs)
        error = rel_l2(c.diff(rule), expected)
        assert error <= GRAD_TOL, f"{name} {rule}: relative L2 {error:.2e}"
    # the oracle's forward, with our masks and switches, is the float64 forward up to ReLU inputs
    # within float32 rounding of 0 (and those pass ~1e-7 either way)
    expected_logits = oracle_blobs[c.logits]
    assert np.abs(c.net.blobs[c.logits].data - expected_logits).max() <= \
        LOGIT_TOL * max(1.0, np.abs(expected_logits).max())


# --- the oracle itself -------------------------------------------------------------------------------

def test_oracle_without_kept_is_autograd():
    """With masks and switches from its own forward, the oracle's switch-gather max pool and gated
    ReLUs give exactly torch autograd's float64 gradient."""
    model = builders.caffenet(width=0.125, input_size=67)
    x = image_batch(2, 67, seed=4)
    g = np.random.default_rng(3).standard_normal((2, 1000))
    autograd = TorchNet(model, dtype="float64").input_grad(x, "fc8", g)
    assert rel_l2(reference_input_grad(model, x, "fc8", g), autograd) <= 1e-12


def test_oracle_switch_is_first_maximum_in_scan_order():
    # 3×3 map, 3×3 windows, stride 2, pad 1: four 2×2 windows of real pixels; ties go to the first
    # in row-major order, and the last window is all negative, so a padded 0 would win if counted
    x = np.array([[[[1, 5, 5], [5, -2, -4], [-3, -1, -2]]]], dtype=np.float32)
    model = one_node_model("MaxPool", [("data", x)], dict(kernel_shape=[3, 3], strides=[2, 2],
                                                          pads=[1, 1, 1, 1]), opset=13)
    top_diff = np.array([[[[1.0, 10.0], [100.0, 1000.0]]]])
    got = reference_input_grad(model, x, "y0", top_diff)
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 0, 1] = 1 + 10      # rows 0:2 × cols 0:2 and rows 0:2 × cols 1:3: the 5 at (0, 1)
    expected[0, 0, 1, 0] = 100         # rows 1:3 × cols 0:2: the 5 at (1, 0)
    expected[0, 0, 2, 1] = 1000        # rows 1:3 × cols 1:3: −1 at (2, 1), not the padding
    np.testing.assert_array_equal(got, expected)


def test_oracle_takes_masks_and_switches_from_kept():
    """Where the kept float32 forward and the float64 one disagree, the kept one decides."""
    x = np.array([[[[1e-9, -1e-9, 3.0, 3.0 + 1e-9]]]])
    model = one_node_model("Relu", [("data", x.astype(np.float32))], opset=13)
    g = np.ones((1, 1, 1, 4))
    own = reference_input_grad(model, x, "y0", g)
    kept = reference_input_grad(model, x, "y0", g, kept={"y0": np.array([[[[0, 1, 3, 3]]]], np.float32)})
    np.testing.assert_array_equal(own, [[[[1, 0, 1, 1]]]])
    np.testing.assert_array_equal(kept, [[[[0, 1, 1, 1]]]])
    pool = one_node_model("MaxPool", [("data", x.astype(np.float32))], dict(kernel_shape=[1, 2], strides=[1, 2]),
                          opset=13)
    g2 = np.ones((1, 1, 1, 2))
    own = reference_input_grad(pool, x, "y0", g2)
    tied = reference_input_grad(pool, x, "y0", g2, kept={"data": x.astype(np.float32)})   # 3 == 3 + 1e-9 in float32
    np.testing.assert_array_equal(own, [[[[1, 0, 0, 1]]]])
    np.testing.assert_array_equal(tied, [[[[1, 0, 1, 0]]]])


W = np.random.default_rng(8).standard_normal((4, 3, 3, 2)).astype(np.float32)
OP_CASES = [  # (op, attrs, constant inputs, opset): what the interpreter claims beyond the builders' ops
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), [], 13),
    ("AveragePool", dict(kernel_shape=[3, 2], strides=[2, 2], ceil_mode=1, pads=[1, 0, 1, 0],
                         count_include_pad=1), [], 19),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1, pads=[1, 1, 1, 1]), [], 13),
    ("MaxPool", dict(kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 0, 1, 1]), [], 13),
    ("MaxPool", dict(kernel_shape=[2, 3], strides=[2, 2], auto_pad="SAME_LOWER"), [], 13),
    ("GlobalMaxPool", {}, [], 13),
    ("LRN", dict(size=3, alpha=0.1, beta=0.6, bias=2.0), [], 13),
    ("LeakyRelu", dict(alpha=0.2), [], 13),
    ("PRelu", {}, [np.array([0.1, -0.2, 0.3], np.float32).reshape(3, 1, 1)], 13),
    ("Clip", {}, [np.array(-0.5, np.float32), np.array(0.7, np.float32)], 13),
    ("Pad", dict(mode="reflect"), [np.array([0, 0, 1, 2, 0, 0, 2, 1])], 13),
    ("Pad", dict(mode="edge"), [np.array([0, 0, 1, 2, 0, 0, 2, 1])], 13),
    ("Slice", {}, [np.array([5, -1]), np.array([0, -100]), np.array([2, 3]), np.array([-2, -2])], 13),
    ("Softmax", dict(axis=1), [], 11),
    ("ReduceSum", dict(keepdims=1), [np.array([2])], 13),
    ("Conv", dict(kernel_shape=[3, 2], strides=[2, 1], auto_pad="SAME_UPPER"), [W], 13),
    ("Gather", dict(axis=2), [np.array([[0, -1], [2, 3]])], 13),
]


@pytest.mark.parametrize("op,attrs,constants,opset", OP_CASES, ids=[f"{c[0]}{i}" for i, c in enumerate(OP_CASES)])
def test_oracle_ops_match_onnxruntime(op, attrs, constants, opset):
    x = np.random.default_rng(9).standard_normal((2, 3, 7, 6)).astype(np.float32)
    names = [f"c{i}" for i in range(len(constants))]
    model = one_node_model(op, [("data", x)] + list(zip(names, constants)), attrs, constants=names, opset=opset)
    expected = run_onnxruntime(model, {"data": x})[0]
    for got in (TorchNet(model, dtype="float64").forward(data=x)["y0"], reference_forward(model, x)["y0"]):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rule,expected", [("backprop", [0, 0, -5, 6]), ("deconvnet", [0, 4, 0, 6]),
                                           ("guided", [0, 0, 0, 6])])
def test_oracle_rules_by_hand(rule, expected):
    x = np.array([[-2.0, -1.0, 1.0, 2.0]])
    model = one_node_model("Relu", [("data", x.astype(np.float32))], opset=13)
    got = reference_input_grad(model, x, "y0", np.array([[-3.0, 4.0, -5.0, 6.0]]), rule)
    np.testing.assert_array_equal(got, [expected])


# --- Simonyan et al. §4: deconvnet = backprop with another ReLU step -----------------------------------

def zeiler_fergus(model, blobs, top_name, top_diff, relu_step):
    """Walk a conv / max-pool / fc / ReLU chain from ``top_name`` down to ``data`` as a deconvnet
    does (Zeiler & Fergus 2013, §2.1): fc and conv layers apply their transposed filters, a max pool
    unpools through its switches (first maximum of each 2×2 window of the forward's bottom), and a
    ReLU applies ``relu_step(signal, forward_bottom)``. float64 throughout."""
    import torch.nn.functional as F
    weights = {t.name: onnx_array(t) for t in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type != "Softmax"]
    signal = np.asarray(top_diff, dtype=np.float64)
    for node in reversed(nodes[:[n.output[0] for n in nodes].index(top_name) + 1]):
        bottom = np.asarray(blobs[node.input[0]].data, dtype=np.float64)
        if node.op_type == "Gemm":
            signal = signal @ weights[node.input[1]]
        elif node.op_type == "Flatten":
            signal = signal.reshape(bottom.shape)
        elif node.op_type == "Conv":
            signal = F.conv_transpose2d(torch.from_numpy(signal), torch.from_numpy(
                weights[node.input[1]].astype(np.float64))).numpy()
        elif node.op_type == "MaxPool":
            n, c, h, w = bottom.shape
            windows = bottom.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(
                n, c, h // 2, w // 2, 4)
            switches = windows.argmax(axis=-1)
            unpooled = np.zeros((n, c, h // 2, w // 2, 4))
            np.put_along_axis(unpooled, switches[..., None], signal[..., None], axis=-1)
            signal = unpooled.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)
        elif node.op_type == "Relu":
            signal = relu_step(signal, bottom)
        else:
            raise AssertionError(f"no deconvnet step for {node.op_type}")
    return signal


def onnx_array(tensor):
    from onnx import numpy_helper
    return numpy_helper.to_array(tensor)


def rectify(signal, bottom):          # Zeiler & Fergus: the reconstruction passes through a ReLU
    return np.maximum(signal, 0)


def relu_gradient(signal, bottom):    # back-propagation: the forward's mask [x > 0]
    return signal * (bottom > 0)


def section4_net(relu):
    model = builders.lenet(channels=3, input_size=28, seed=5, relu=relu)
    x = np.random.default_rng(6).standard_normal((2, 3, 28, 28)).astype(np.float32)
    net = Net(model, device="cpu", keep="all")
    net.forward(data=x)
    top_diff = np.random.default_rng(7).standard_normal((2, 10)).astype(np.float32)
    return model, x, net, top_diff


def test_without_relus_deconvnet_is_backprop():
    model, x, net, top_diff = section4_net(relu=False)
    diffs = {rule: net.backward(rule=rule, fc8=top_diff)["data"] for rule in RULES}
    np.testing.assert_array_equal(diffs["deconvnet"], diffs["backprop"])
    np.testing.assert_array_equal(diffs["guided"], diffs["backprop"])
    reconstruction = zeiler_fergus(model, net.blobs, "fc8", top_diff, relu_step=None)
    assert rel_l2(diffs["deconvnet"], reconstruction) <= GRAD_TOL


def test_with_relus_only_the_relu_step_differs():
    model, x, net, top_diff = section4_net(relu=True)
    deconvnet = net.backward(rule="deconvnet", fc8=top_diff)["data"].copy()
    backprop = net.backward(rule="backprop", fc8=top_diff)["data"]
    assert rel_l2(deconvnet, backprop) > 0.1                 # the ReLUs make them differ …
    assert rel_l2(deconvnet, zeiler_fergus(model, net.blobs, "fc8", top_diff, rectify)) <= GRAD_TOL
    # … and swapping only the ReLU step of the same reconstruction gives back-propagation
    assert rel_l2(backprop, zeiler_fergus(model, net.blobs, "fc8", top_diff, relu_gradient)) <= GRAD_TOL
    kept = reference_forward(model, x, kept=net.blobs)
    assert np.abs(kept["fc8"] - net.blobs["fc8"].data).max() <= LOGIT_TOL * max(1.0, np.abs(kept["fc8"]).max())
