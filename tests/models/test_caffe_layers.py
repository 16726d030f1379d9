"""Caffe's layer factory (``models/caffe_layers.py``): every layer type and Caffe's pooling
arithmetic, each converted net run in ONNX Runtime against the float64 rendering of Caffe's
Forward_cpu loops in ``helpers/caffe_reference.py`` (tolerances there); helper names, the
fillers a layer starts from, and the layers' own consistency errors.
"""
import numpy as np
import onnx
import pytest

from caffe_port.errors import ModelError
from caffe_port.models import caffe_io
from caffe_port.models.caffe_layers import LAYER_CONVERTERS, pooled_shape
from caffe_port.models.caffe_net import caffe_to_onnx, metadata
from helpers.caffe_reference import check_against_reference, layer, net_text, run_blobs
from helpers.onnx_models import run_onnxruntime


# --- Caffe's pooling arithmetic ----------------------------------------------------------------

@pytest.mark.parametrize("size,kernel,pad,stride,ceil,expected", [
    ((6, 6), (3, 3), (0, 0), (2, 2), True, (3, 3)),     # ceil(3/2)+1: one more than floor
    ((6, 6), (3, 3), (0, 0), (2, 2), False, (2, 2)),
    ((7, 7), (3, 3), (0, 0), (2, 2), True, (3, 3)),     # even span: ceil = floor
    ((112, 112), (3, 3), (0, 0), (2, 2), True, (56, 56)),   # GoogLeNet pool1
    ((55, 55), (3, 3), (0, 0), (2, 2), True, (27, 27)),     # CaffeNet pool1
    ((5, 5), (3, 3), (1, 1), (3, 3), True, (2, 2)),     # ceil gives 3; Caffe's clip: 6 >= 5+1
    ((5, 5), (3, 3), (1, 1), (3, 3), False, (2, 2)),
    ((4, 4), (3, 3), (2, 2), (3, 3), True, (2, 2)),     # ceil gives 3; clip: 6 >= 4+2
    ((6, 6), (2, 2), (1, 1), (2, 2), True, (4, 4)),     # last window starts at 5 < 6+1: kept
    ((6, 6), (2, 2), (0, 1), (3, 3), True, (2, 3)),     # a pad on W alone clips H too
    ((14, 9), (3, 2), (1, 0), (2, 2), True, (8, 5)),     # ceil(13/2)+1; 7·2 < 14+1: kept
])
def test_pooled_shape_hand_computed(size, kernel, pad, stride, ceil, expected):
    assert pooled_shape(size, kernel, pad, stride, ceil) == expected


def pool_net(size, kernel, pad, stride, method, ceil, ceil_spelling="round_mode"):
    rounding = (f"round_mode: {'CEIL' if ceil else 'FLOOR'}" if ceil_spelling == "round_mode"
                else f"ceil_mode: {'true' if ceil else 'false'}")
    return net_text(
        f'layer {{ name: "pool" type: "Pooling" bottom: "data" top: "pool" pooling_param {{ '
        f"pool: {method} kernel_h: {kernel[0]} kernel_w: {kernel[1]} pad_h: {pad[0]} "
        f"pad_w: {pad[1]} stride_h: {stride[0]} stride_w: {stride[1]} {rounding} }} }}",
        shapes=[(2, 3, *size)])


POOL_CASES = [  # odd sizes where ceil and floor differ, pads, non-square settings
    ((7, 9), (3, 3), (0, 0), (2, 2)), ((6, 8), (3, 3), (0, 0), (2, 2)),
    ((7, 9), (3, 3), (1, 1), (2, 2)), ((6, 5), (3, 2), (1, 1), (2, 2)),
    ((5, 7), (3, 3), (1, 1), (3, 3)), ((8, 5), (2, 3), (1, 0), (2, 3)),
    ((9, 11), (5, 3), (2, 1), (3, 2)), ((13, 13), (3, 3), (1, 1), (2, 2)),
    ((4, 7), (3, 3), (2, 2), (3, 3)), ((5, 5), (2, 2), (0, 0), (1, 1)),
]


@pytest.mark.parametrize("ceil", [True, False], ids=["ceil", "floor"])
@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("size,kernel,pad,stride", POOL_CASES)
def test_pooling_matches_caffe_loops(size, kernel, pad, stride, method, ceil):
    rng = np.random.default_rng(hash((size, kernel, pad, stride)) % 2**32)
    model, got = check_against_reference(pool_net(size, kernel, pad, stride, method, ceil), rng)
    assert got["pool"].shape[2:] == pooled_shape(size, kernel, pad, stride, ceil)
    assert metadata(model)["blobs"]["pool"]["shape"][2:] == list(got["pool"].shape[2:])


def test_fork_ceil_mode_false_means_floor():
    rng = np.random.default_rng(5)
    _, got = check_against_reference(
        pool_net((7, 9), (3, 3), (0, 0), (2, 2), "AVE", False, ceil_spelling="ceil_mode"), rng)
    assert got["pool"].shape == (2, 3, 3, 4)


def test_ave_divisor_counts_padding_up_to_the_padded_edge_only():
    # 1×1 input of value 9, kernel 3, pad 1, stride 1: Caffe's window covers [−1, 2) clipped to
    # the padded image [−1, 2): area 9, one real pixel, so the output is 9 / 9 = 1.
    # Kernel 2, pad 1, stride 2 on a 3-wide row of ones: windows [−1,1) and [1,3): areas 2·2
    # and 2·2 (both inside [−1, 4)), real pixels 1·1 and 2·2 -> 1/4 and 4/4.
    text = net_text('layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" '
                    "pooling_param { pool: AVE kernel_size: 3 pad: 1 stride: 1 } }",
                    shapes=[(1, 1, 1, 1)])
    model = caffe_to_onnx(caffe_io.parse_prototxt(text))
    assert run_onnxruntime(model, {"data": np.full((1, 1, 1, 1), 9, np.float32)})[0].item() == 1.0
    text = net_text('layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" '
                    "pooling_param { pool: AVE kernel_size: 2 pad: 1 stride: 2 } }",
                    shapes=[(1, 1, 3, 3)])
    model = caffe_to_onnx(caffe_io.parse_prototxt(text))
    out = run_onnxruntime(model, {"data": np.ones((1, 1, 3, 3), np.float32)})[0]
    np.testing.assert_array_equal(out[0, 0], [[0.25, 0.5], [0.5, 1.0]])


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_global_pooling(method):
    rng = np.random.default_rng(6)
    text = net_text(f'layer {{ name: "gp" type: "Pooling" bottom: "data" top: "gp" '
                    f"pooling_param {{ pool: {method} global_pooling: true }} }}",
                    shapes=[(2, 3, 5, 7)])
    model, got = check_against_reference(text, rng)
    assert got["gp"].shape == (2, 3, 1, 1)
    assert [n.op_type for n in model.graph.node] == [f"Global{'Max' if method == 'MAX' else 'Average'}Pool"]


# --- every layer type against the reference -------------------------------------------------

TWO_INPUTS = dict(shapes=[(2, 3, 5, 4), (2, 3)], tops=("data", "s"))
LAYER_CASES = {
    "conv_group_hw": (layer("conv", "Convolution", ["data"], ["conv"],
                            "convolution_param { num_output: 6 group: 3 kernel_h: 3 kernel_w: 2 "
                            "pad_h: 1 pad_w: 0 stride_h: 2 stride_w: 1 }"), {}),
    "conv_dilated_no_bias": (layer("conv", "Convolution", ["data"], ["conv"],
                                   "convolution_param { num_output: 4 kernel_size: 2 dilation: 2 "
                                   "pad: 1 bias_term: false }"), {}),
    "conv_per_axis_lists": (layer("conv", "Convolution", ["data"], ["conv"],
                                  "convolution_param { num_output: 5 kernel_size: 3 kernel_size: 1 "
                                  "stride: 1 stride: 2 pad: 1 pad: 0 }"), {}),
    "ip_4d": (layer("fc", "InnerProduct", ["data"], ["fc"], "inner_product_param { num_output: 7 }"),
              {}),
    "ip_transpose_no_bias": (layer("fc", "InnerProduct", ["data"], ["fc"],
                                   "inner_product_param { num_output: 7 transpose: true "
                                   "bias_term: false }"), {}),
    "ip_axis2": (layer("fc", "InnerProduct", ["data"], ["fc"],
                       "inner_product_param { num_output: 6 axis: 2 }"), {}),
    "relu_leaky": (layer("relu", "ReLU", ["data"], ["data"], "relu_param { negative_slope: 0.1 }"),
                   {}),
    "prelu": (layer("prelu", "PReLU", ["data"], ["p"]), {}),
    "prelu_shared": (layer("prelu", "PReLU", ["data"], ["p"], "prelu_param { channel_shared: true }"),
                     {}),
    "softmax_axis1": (layer("prob", "Softmax", ["data"], ["prob"]), {}),
    "softmax_last_axis": (layer("prob", "Softmax", ["data"], ["prob"],
                                "softmax_param { axis: -1 }"), {}),
    "dropout_in_place": (layer("drop", "Dropout", ["data"], ["data"]), {}),
    "concat_axis1": (layer("a", "TanH", ["data"], ["a"]) +
                     layer("cat", "Concat", ["data", "a", "data"], ["cat"]), {}),
    "concat_dim_legacy": (layer("a", "Sigmoid", ["data"], ["a"]) +
                          layer("cat", "Concat", ["data", "a"], ["cat"],
                                "concat_param { concat_dim: 2 }"), {}),
    "eltwise_sum_coeff": (layer("a", "TanH", ["data"], ["a"]) + layer("b", "Sigmoid", ["data"], ["b"])
                          + layer("sum", "Eltwise", ["data", "a", "b"], ["sum"],
                                  "eltwise_param { operation: SUM coeff: 1 coeff: -0.5 coeff: 2 }"),
                          {}),
    "eltwise_prod3": (layer("a", "TanH", ["data"], ["a"]) + layer("b", "Sigmoid", ["data"], ["b"])
                      + layer("prod", "Eltwise", ["data", "a", "b"], ["prod"],
                              "eltwise_param { operation: PROD }"), {}),
    "eltwise_max": (layer("a", "TanH", ["data"], ["a"]) +
                    layer("max", "Eltwise", ["data", "a"], ["max"],
                          "eltwise_param { operation: MAX }"), {}),
    "batchnorm_scale_in_place": (layer("bn", "BatchNorm", ["data"], ["data"]) +
                                 layer("sc", "Scale", ["data"], ["data"],
                                       "scale_param { bias_term: true }"), {}),
    "scale_two_axes": (layer("sc", "Scale", ["data"], ["sc"],
                             "scale_param { axis: 1 num_axes: 2 }"), {}),
    "scale_scalar": (layer("sc", "Scale", ["data"], ["sc"], "scale_param { num_axes: 0 }"), {}),
    "scale_last_axes": (layer("sc", "Scale", ["data"], ["sc"],
                              "scale_param { axis: -2 num_axes: -1 bias_term: true }"), {}),
    "scale_two_bottoms": (layer("sc", "Scale", ["data", "s"], ["sc"],
                                "scale_param { axis: 0 bias_term: true }"), TWO_INPUTS),
    "bias_blob": (layer("bi", "Bias", ["data"], ["bi"]), {}),
    "bias_two_bottoms": (layer("bi", "Bias", ["data", "s"], ["bi"], "bias_param { axis: 0 }"),
                         TWO_INPUTS),
    "flatten": (layer("fl", "Flatten", ["data"], ["fl"]), {}),
    "flatten_middle": (layer("fl", "Flatten", ["data"], ["fl"],
                             "flatten_param { axis: 1 end_axis: 2 }"), {}),
    "reshape_copy_infer": (layer("re", "Reshape", ["data"], ["re"],
                                 "reshape_param { shape { dim: 0 dim: -1 dim: 2 } }"), {}),
    "reshape_axis_num_axes": (layer("re", "Reshape", ["data"], ["re"],
                                    "reshape_param { axis: 1 num_axes: 2 shape { dim: 5 dim: 3 } }"),
                              {}),
    "split": (layer("sp", "Split", ["data"], ["x1", "x2"]) +
              layer("t", "TanH", ["x2"], ["t"]), {}),
    "slice_points": (layer("sl", "Slice", ["data"], ["s1", "s2"],
                           "slice_param { axis: 1 slice_point: 1 }"), {}),
    "slice_equal_legacy_dim": (layer("sl", "Slice", ["data"], ["s1", "s2"],
                                     "slice_param { slice_dim: 3 }"), {}),
    "sigmoid_tanh": (layer("sg", "Sigmoid", ["data"], ["sg"]) + layer("th", "TanH", ["sg"], ["th"]),
                     {}),
    "power_square": (layer("pw", "Power", ["data"], ["pw"],
                           "power_param { power: 2 scale: 0.5 shift: 1 }"), {}),
    "power_root": (layer("pw", "Power", ["data"], ["pw"],
                         "power_param { power: 0.5 scale: 0.1 shift: 3 }"), {}),
    "power_identity": (layer("pw", "Power", ["data"], ["pw"]), {}),
    "lrn_across": (layer("lrn", "LRN", ["data"], ["lrn"],
                         "lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 }"), {}),
    "lrn_within": (layer("lrn", "LRN", ["data"], ["lrn"],
                         "lrn_param { local_size: 3 alpha: 0.3 beta: 0.6 norm_region: WITHIN_CHANNEL }"),
                   {}),
}


def test_every_converter_has_a_reference_case():
    # a type added to LAYER_CONVERTERS needs a case here (Pooling and Input have their own tests,
    # the data, test and loss layers theirs in test_caffe_loss_layers.py)
    covered = {"Input", "Pooling", "DummyData", "Silence", "Accuracy", "SoftmaxWithLoss",
               "EuclideanLoss", "SigmoidCrossEntropyLoss"}
    for layers, shapes in LAYER_CASES.values():
        covered |= {entry.type for entry in caffe_io.parse_prototxt(net_text(layers)).layer}
    assert covered == set(LAYER_CONVERTERS)


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_matches_reference(case):
    layers, shapes = LAYER_CASES[case]
    text = net_text(layers, **shapes) if shapes else net_text(layers)
    check_against_reference(text, np.random.default_rng(sorted(LAYER_CASES).index(case)))


@pytest.mark.parametrize("scale_factor", [2.5, 0.0])
def test_batchnorm_divides_statistics_by_the_third_blob(scale_factor):
    rng = np.random.default_rng(7)
    stats = [rng.standard_normal(3).astype(np.float32),
             (rng.uniform(0.5, 2.0, 3) * max(scale_factor, 1)).astype(np.float32),
             np.float32([scale_factor])]
    text = net_text(layer("bn", "BatchNorm", ["data"], ["bn"]))
    model, got = check_against_reference(text, rng, overrides={"bn": stats})
    x = run_blobs(model, {"data": np.ones((2, 3, 5, 4), np.float32)})
    if scale_factor == 0:  # mean = var = 0: y = x / sqrt(eps)
        np.testing.assert_allclose(x["bn"], 1 / np.sqrt(1e-5), rtol=1e-6)


# --- helper names and fillers ------------------------------------------------------------------

def test_helper_names_never_take_a_caffe_name():
    # layer "fc" needs a helper "fc/flatten", which here is already a layer's and a blob's name
    text = net_text(layer("fc", "InnerProduct", ["data"], ["fc"],
                          "inner_product_param { num_output: 3 }") +
                    layer("fc/flatten", "TanH", ["fc"], ["fc/flatten"]))
    model, _ = check_against_reference(text, np.random.default_rng(19))
    names = [n.name for n in model.graph.node]
    assert names == ["fc/flatten~1", "fc", "fc/flatten"]
    assert list(model.graph.node[1].input)[0] == "fc/flatten~1"
    assert metadata(model)["layers"][1]["nodes"] == ["fc/flatten~1", "fc"]



def test_fill_missing_uses_caffes_constant_fillers():
    text = net_text(layer("sc", "Scale", ["data"], ["sc"], "scale_param { bias_term: true }") +
                    layer("pr", "PReLU", ["sc"], ["pr"]) +
                    layer("conv", "Convolution", ["pr"], ["conv"],
                          "convolution_param { num_output: 2 kernel_size: 1 "
                          "bias_filler { type: 'constant' value: 0.5 } }"))
    with pytest.warns(UserWarning, match="started from Caffe's fillers"):
        model = caffe_to_onnx(caffe_io.parse_prototxt(text), fill_missing=True)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert (inits["sc#0"] == 1).all() and (inits["sc#1"] == 0).all()
    assert (inits["pr#0"] == 0.25).all() and (inits["conv#1"] == 0.5).all()


# --- errors: one clear ModelError each -----------------------------------------------------------

@pytest.mark.parametrize("layers,message", [
    (layer("p", "Pooling", ["data"], ["p"], "pooling_param { kernel_size: 2 pad: 2 }"),
     r"pad \[2, 2\] must be smaller than kernel"),
    (layer("p", "Pooling", ["data"], ["p"], "pooling_param { pool: STOCHASTIC kernel_size: 2 }"),
     r"STOCHASTIC pooling is not supported"),
    (layer("p", "Pooling", ["data"], ["p"], "pooling_param { global_pooling: true kernel_size: 2 }"),
     r"kernel size cannot be given"),
    (layer("p", "Pooling", ["data"], ["p"], "pooling_param { kernel_size: 1 stride: 3 }"),
     r"wholly outside the input"),
    (layer("n", "LRN", ["data"], ["n"], "lrn_param { local_size: 4 }"), r"must be odd"),
    (layer("c", "Convolution", ["data"], ["c"], "convolution_param { num_output: 4 group: 2 "
                                                "kernel_size: 1 }"), r"group 2 must divide"),
    (layer("s", "Slice", ["data"], ["a", "b"], "slice_param { axis: 2 }"),
     r"size 5 does not split into 2 equal parts"),
    (layer("r", "Reshape", ["data"], ["r"], "reshape_param { shape { dim: 7 dim: -1 } }"),
     r"cannot reshape"),
])
def test_inconsistent_layer_settings(layers, message):
    net = caffe_io.parse_prototxt(net_text(layers))
    refused = net.layer[-1]   # one line that names the layer, its type and what is wrong
    with pytest.raises(ModelError, match=rf"^<prototxt>: layer '{refused.name}' \({refused.type}\): "
                                         rf".*{message}"):
        caffe_to_onnx(net, fill_missing=True)
