"""Resize: finite differences and ONNX Runtime parity over modes, coordinate transforms, scales or
sizes, antialiasing, exclude_outside, tf_crop_and_resize, axes; the backward as the transposed map."""
import numpy as np
import pytest

from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import forward_pair

SHAPE = (2, 3, 5, 4)  # N != C != H != W
EMPTY = np.zeros(0, np.float32)

TRANSFORMS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric")
SCALES = {"up": np.array([1, 1, 2.0, 1.5], np.float32), "down": np.array([1, 1, 0.6, 0.5], np.float32)}
# (name, attrs, how the output is given, opset)
CASES = [(f"{mode}-{t}-{s}", {"mode": mode, "coordinate_transformation_mode": t}, s, 19)
         for mode in ("nearest", "linear", "cubic") for t in TRANSFORMS for s in SCALES]
CASES += [
    ("nearest-floor", {"mode": "nearest", "nearest_mode": "floor"}, "up", 13),
    ("nearest-ceil", {"mode": "nearest", "nearest_mode": "ceil"}, "down", 13),
    ("nearest-round_prefer_ceil", {"mode": "nearest", "nearest_mode": "round_prefer_ceil"}, "up", 13),
    ("cubic-a-0.5-exclude", {"mode": "cubic", "cubic_coeff_a": -0.5, "exclude_outside": 1}, "up", 13),
    ("linear-antialias", {"mode": "linear", "antialias": 1}, "down", 18),
    ("cubic-antialias", {"mode": "cubic", "antialias": 1}, "down", 18),
    ("linear-sizes", {"mode": "linear"}, "sizes", 13),
    ("linear-axes", {"mode": "linear", "axes": [3, 2]}, "axes", 18),
    ("linear-not_larger", {"mode": "linear", "axes": [2, 3], "keep_aspect_ratio_policy": "not_larger"}, "policy", 18),
    ("tf_crop_and_resize", {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize",
                            "extrapolation_value": 2.5}, "roi", 13),
    ("opset10-nearest", {"mode": "nearest"}, "up", 10),
    ("opset10-linear", {"mode": "linear"}, "down", 10),
]


def bottoms(how, opset, x):
    """[X, roi, scales, sizes] (opset ≥ 11) or [X, scales] (opset 10)."""
    if opset < 11:
        return [x, SCALES[how]]
    if how in SCALES:
        return [x, EMPTY, SCALES[how], None]
    if how == "sizes":
        return [x, EMPTY, None, np.array([2, 3, 9, 7], np.int64)]
    if how == "axes":
        return [x, EMPTY, np.array([0.75, 1.6], np.float32), None]
    if how == "policy":
        return [x, EMPTY, None, np.array([8, 10], np.int64)]
    roi = np.array([0, 0, -0.2, 0.1, 1, 1, 0.9, 1.3], np.float32)      # reaches outside: extrapolates
    return [x, roi, None, np.array([2, 3, 6, 5], np.int64)]


@pytest.mark.parametrize("name,attrs,how,opset", CASES, ids=[c[0] for c in CASES])
def test_forward_matches_onnxruntime(name, attrs, how, opset):
    """Tolerance: rtol 1e-5, atol 2e-6: weights and source coordinates in float64 here, float32 in
    ONNX Runtime, whose rounded coordinate moves a cubic weight (slope up to 1.5) by ~1e-6."""
    x = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    got, expected = forward_pair("Resize", bottoms(how, opset, x), attrs, opset=opset)
    assert got[0].shape == expected[0].shape and got[0].dtype == np.float32
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("name,attrs,how,opset", CASES, ids=[c[0] for c in CASES])
def test_finite_differences(name, attrs, how, opset):
    x = np.random.default_rng(2).standard_normal(SHAPE)
    b = bottoms(how, opset, x)
    result = check_op("Resize", b, attrs | {"opset": opset}, propagate_down=[True] + [False] * (len(b) - 1),
                      k=2, max_points=80)
    assert result.ok, result


def test_backward_is_the_transposed_map():
    """⟨dy, R x⟩ = ⟨Rᵀ dy, x⟩ for a random x and dy (float64, to 1e-12)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(SHAPE)
    b = bottoms("down", 18, x)
    attrs = {"mode": "cubic", "antialias": 1, "opset": 18}
    y = REGISTRY["Resize"].forward(b, attrs)[0]
    dy = rng.standard_normal((1,) + y.shape)
    dx = backward(REGISTRY["Resize"], [dy], [None] + b[1:], [None], layer(attrs, b, [y], opset=18,
                                                                          propagate_down=[True, False, False, False]))[0]
    assert np.isclose(np.sum(dy[0] * y), np.sum(dx[0] * x), rtol=1e-12)
