"""The convolution input diff through ONNX Runtime (caffe_port/ort_conv.py) equals the library
kernel (kernels/conv.py) it stands in for, in both of its forms and both batchings; it forgets a
weight written in place (the CPU backend's choice of routes: tests/caffe_port/test_ort_linear.py)."""
import numpy as np
import pytest

from caffe_port import ort_conv
from caffe_port.kernels import conv
from helpers.kernel_calls import backward, layer

CASES = [  # (N, C, H, W), (M, C/G, kh, kw), attrs
    ((2, 6, 11, 9), (4, 6, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((2, 6, 11, 9), (4, 3, 3, 3), {"pads": [1, 0, 2, 1], "group": 2}),
    ((1, 3, 23, 21), (5, 3, 11, 11), {"strides": [4, 4]}),
    ((2, 5, 12, 10), (5, 1, 3, 3), {"pads": [1, 1, 1, 1], "group": 5}),
    ((2, 5, 12, 10), (10, 1, 5, 5), {"strides": [2, 2], "auto_pad": "SAME_UPPER", "group": 5}),
    ((2, 4, 13, 12), (3, 4, 3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    ((2, 4, 13, 12), (3, 4, 1, 1), {"strides": [2, 3]}),
    ((2, 4, 14, 11), (6, 4, 3, 2), {"strides": [2, 1], "pads": [0, 1, 1, 0]}),
    # depthwise, as EfficientNet's: the flipped Conv over the top diff spread to stride 1
    ((2, 6, 13, 12), (6, 1, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1], "group": 6}),
    ((2, 6, 14, 11), (6, 1, 5, 5), {"strides": [2, 3], "pads": [2, 1, 1, 2], "group": 6}),
    ((1, 4, 15, 15), (4, 1, 3, 3), {"strides": [2, 2], "dilations": [2, 2], "pads": [2, 2, 2, 2], "group": 4}),
    ((2, 5, 12, 10), (5, 1, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER", "group": 5}),
]


def conv_layer(x, w, attrs, propagate_down=(True, False)):
    top = conv.conv_forward([x, w], layer(attrs, [x, w], [None]).attrs)[0]
    return top, layer(attrs, [x, w], [top], propagate_down=list(propagate_down))


@pytest.mark.parametrize("chunk", ["whole batch", "one image per call"])
@pytest.mark.parametrize("form", ["flipped where possible", "transpose"])
@pytest.mark.parametrize("x_shape,w_shape,attrs", CASES)
def test_route_equals_the_library_kernel(x_shape, w_shape, attrs, form, chunk, monkeypatch):
    """float32 input diffs as ConvTranspose or as the flipped Conv, the K·N images in one call or
    one at a time, against matmul + col2im: to float32 rounding, |route − kernel| ≤ 1e-5 · max|kernel|."""
    monkeypatch.setattr(ort_conv, "prefers_flipped", lambda *args, **kw: form != "transpose")
    monkeypatch.setattr(ort_conv, "CHUNK_BYTES", 1 if chunk == "one image per call" else 1 << 30)
    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    top, a = conv_layer(x, w, attrs)
    dy = rng.standard_normal((3,) + top.shape).astype(np.float32)
    route = backward(ort_conv.ConvInputDiff().backward, [dy], [None, w], [None], a)[0]
    kernel = backward(conv.conv_backward, [dy], [None, w], [None], a)[0]
    np.testing.assert_allclose(route, kernel, rtol=0, atol=1e-5 * np.abs(kernel).max())


def test_weight_and_bias_diffs_come_from_the_kernel():
    """Asked for dW and db too, the route returns the kernel's own (bit for bit)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    attrs = {"pads": [1, 1, 1, 1]}
    top = conv.conv_forward([x, w, b], layer(attrs, [x, w, b], [None]).attrs)[0]
    a = layer(attrs, [x, w, b], [top], propagate_down=[True, True, True])
    dy = rng.standard_normal((2,) + top.shape).astype(np.float32)
    route = backward(ort_conv.ConvInputDiff().backward, [dy], [x, w, b], [None], a)
    kernel = backward(conv.conv_backward, [dy], [x, w, b], [None], a)
    np.testing.assert_array_equal(route[1], kernel[1])
    np.testing.assert_array_equal(route[2], kernel[2])
    np.testing.assert_allclose(route[0], kernel[0], rtol=0, atol=1e-5 * np.abs(kernel[0]).max())


def test_float64_takes_the_kernel():
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((1, 2, 6, 5)), rng.standard_normal((3, 2, 3, 3))
    top, a = conv_layer(x, w, {"pads": [1, 1, 1, 1]})
    dy = rng.standard_normal((1,) + top.shape)
    route = ort_conv.ConvInputDiff()
    got = backward(route.backward, [dy], [None, w], [None], a)[0]
    np.testing.assert_array_equal(got, backward(conv.conv_backward, [dy], [None, w], [None], a)[0])
    assert not len(route.sessions)               # no session was built for it


def test_forgets_a_weight_written_in_place():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    _, a = conv_layer(x, w, {"pads": [1, 1, 1, 1]})
    dy = rng.standard_normal((1, 1, 4, 9, 9)).astype(np.float32)
    route = ort_conv.ConvInputDiff()
    before = backward(route.backward, [dy], [None, w], [None], a)[0]
    w *= 2
    stale = backward(route.backward, [dy], [None, w], [None], a)[0]
    np.testing.assert_array_equal(stale, before)   # the session holds its own copy: why forget exists
    route.forget(w)
    after = backward(route.backward, [dy], [None, w], [None], a)[0]
    np.testing.assert_allclose(after, 2 * before, rtol=1e-5, atol=1e-6)


def test_a_dead_weight_takes_its_sessions_with_it():
    import gc
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    _, a = conv_layer(x, w, {"pads": [1, 1, 1, 1]})
    route = ort_conv.ConvInputDiff()
    backward(route.backward, [np.ones((1, 1, 4, 9, 9), np.float32)], [None, w], [None], a)
    assert len(route.sessions) == 1 and route.sessions.weights() == 1
    del w
    gc.collect()
    assert len(route.sessions) == 0 and route.sessions.weights() == 0



@pytest.mark.parametrize("chunk", ["whole batch", "one image per call"])
def test_the_input_diff_goes_into_the_walks_memory(chunk, monkeypatch):
    """Given ``out`` memory (NaN garbage), every image's dX is written there and that array returned,
    the same bits as into memory of its own."""
    monkeypatch.setattr(ort_conv, "CHUNK_BYTES", 1 if chunk == "one image per call" else 1 << 30)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 5, 12, 10)).astype(np.float32)
    w = rng.standard_normal((4, 5, 3, 3)).astype(np.float32)
    top, a = conv_layer(x, w, {"pads": [1, 1, 1, 1]})
    dy = rng.standard_normal((2,) + top.shape).astype(np.float32)
    route = ort_conv.ConvInputDiff()
    own = backward(route.backward, [dy], [None, w], [None], a)[0]
    memory = np.full((2,) + x.shape, np.nan, np.float32)
    a.controls["out"] = (memory, None)
    got = backward(route.backward, [dy], [None, w], [None], a)[0]
    assert got.__array_interface__["data"][0] == memory.__array_interface__["data"][0]
    np.testing.assert_array_equal(got, own)


@pytest.mark.parametrize("laid_over", [True, False])
def test_the_input_diff_written_over_its_top_diff(laid_over):
    """out laid over top_diff from one image before it (out_overlaps_top): every image is read
    before its bytes are written, so dX is the same as into memory of its own. Without the
    control the same layout is not written over: dX goes to a new array and dy stays."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 4, 10, 9)).astype(np.float32)
    w = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)       # C = M: dX as large as dY
    top, a = conv_layer(x, w, {"pads": [1, 1, 1, 1]})
    k, image = 2, x[0].size
    buffer = np.full((k * x.shape[0] + 1) * image, np.nan, np.float32)
    dy = buffer[image:].reshape((k,) + top.shape)
    dy[...] = rng.standard_normal(dy.shape)
    route = ort_conv.ConvInputDiff()
    own = backward(route.backward, [dy.copy()], [None, w], [None], a)[0]
    before = dy.copy()
    a.controls.update(out=(buffer[:-image].reshape((k,) + x.shape), None), out_overlaps_top=laid_over)
    got = backward(route.backward, [dy], [None, w], [None], a)[0]
    np.testing.assert_array_equal(got, own)
    assert np.shares_memory(got, buffer) == laid_over
    if not laid_over:
        np.testing.assert_array_equal(dy, before)


def test_the_fixed_rule_for_the_flipped_form():
    """Depthwise at any size and stride, else stride 1 on maps of FLIPPED_MIN_PIXELS or more."""
    big = ort_conv.FLIPPED_MIN_PIXELS
    assert ort_conv.prefers_flipped(1, big, depthwise=False)
    assert not ort_conv.prefers_flipped(1, big - 1, depthwise=False)
    assert not ort_conv.prefers_flipped(4, big, depthwise=False)
    assert ort_conv.prefers_flipped(1, 49, depthwise=True) and ort_conv.prefers_flipped(4, 49, depthwise=True)


def test_depthwise_stride_two_runs_the_spread_conv(monkeypatch):
    """A depthwise stride-2 input diff goes through the Conv of the spread top diff (one session,
    a Conv node), a few images a call, equal to the library kernel."""
    monkeypatch.setattr(ort_conv, "CHUNK_BYTES", 1)        # one image a call: the buffer is reused
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 6, 13, 12)).astype(np.float32)
    w = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    top, a = conv_layer(x, w, {"strides": [2, 2], "pads": [1, 1, 1, 1], "group": 6})
    dy = rng.standard_normal((2,) + top.shape).astype(np.float32)
    route = ort_conv.ConvInputDiff()
    got = backward(route.backward, [dy], [None, w], [None], a)[0]
    kernel = backward(conv.conv_backward, [dy], [None, w], [None], a)[0]
    np.testing.assert_allclose(got, kernel, rtol=0, atol=1e-5 * np.abs(kernel).max())
    ((_, (_, flipped)),) = route.sessions._sessions       # one session: (weight, (geometry, form))
    assert flipped
