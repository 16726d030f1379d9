"""Caffe net -> ONNX: each layer type, Caffe's pooling arithmetic, a CaffeNet-shaped net and the
five real BVLC deploy prototxts, run in ONNX Runtime against a float64 numpy rendering of Caffe's
Forward_cpu loops written here; plus names, metadata, batch handling, phase rules and errors.

Tolerance: ONNX Runtime computes in float32, the reference in float64 from the same float32
weights and inputs; every compared blob must satisfy max|ort − ref| ≤ REL · max(1, max|ref|)
with REL = 2e-6 for the single-layer nets and 5e-6 for the 8-layer CaffeNet-shaped net (float32
rounds at 6e-8 per operation; the longest sums here have about 1200 terms; measured worst cases
were 1.5e-7 and 4.8e-7).
"""
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from caffe_port.errors import ModelError
from caffe_port.kernels import REGISTRY
from caffe_port.models import caffe_io, caffe_proto
from caffe_port.models.caffe_import import (caffe_param_shapes, caffe_to_onnx, metadata,
                                            pooled_shape)
from helpers.onnx_models import run_onnxruntime

DATA = Path(__file__).resolve().parents[1] / "data" / "caffe"
REL_LAYER = 2e-6
REL_NET = 5e-6


# --- float64 reference: Caffe's Forward_cpu, layer by layer ------------------------------------

def ref_conv(x, w, b, pad, stride, dilation, group):
    """Caffe's im2col + GEMM as a sum over kernel taps: out[n, o, i, j] =
    Σ_c,ki,kj w[o, c, ki, kj] · x_padded[n, g·C/G + c, i·s + ki·d, j·s + kj·d] + b[o]."""
    n, c, h, w_ = x.shape
    o, cg, kh, kw = w.shape
    oh = (h + 2 * pad[0] - (dilation[0] * (kh - 1) + 1)) // stride[0] + 1
    ow = (w_ + 2 * pad[1] - (dilation[1] * (kw - 1) + 1)) // stride[1] + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    out = np.zeros((n, o, oh, ow))
    og = o // group
    for g in range(group):
        xs, ws = xp[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og]
        for i in range(kh):
            for j in range(kw):
                top, left = i * dilation[0], j * dilation[1]
                patch = xs[:, :, top:top + stride[0] * (oh - 1) + 1:stride[0],
                           left:left + stride[1] * (ow - 1) + 1:stride[1]]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    return out if b is None else out + b.reshape(1, -1, 1, 1)


def ref_pool(x, kernel, pad, stride, method, ceil=True):
    """Caffe's PoolingLayer::Forward_cpu loops (vectorised over N and C)."""
    n, c, h, w = x.shape
    sizes = []
    for size, k, p, s in zip((h, w), kernel, pad, stride):
        span = size + 2 * p - k
        pooled = (-(-span // s) if ceil else span // s) + 1
        sizes.append(pooled)
    if pad[0] or pad[1]:
        sizes = [q - 1 if (q - 1) * s >= size + p else q
                 for q, size, p, s in zip(sizes, (h, w), pad, stride)]
    out = np.zeros((n, c, *sizes))
    for ph in range(sizes[0]):
        for pw in range(sizes[1]):
            hstart, wstart = ph * stride[0] - pad[0], pw * stride[1] - pad[1]
            if method == "MAX":
                hend, wend = min(hstart + kernel[0], h), min(wstart + kernel[1], w)
                hstart, wstart = max(hstart, 0), max(wstart, 0)
                out[:, :, ph, pw] = x[:, :, hstart:hend, wstart:wend].max(axis=(2, 3))
            else:
                hend = min(hstart + kernel[0], h + pad[0])
                wend = min(wstart + kernel[1], w + pad[1])
                pool_size = (hend - hstart) * (wend - wstart)
                hstart, wstart = max(hstart, 0), max(wstart, 0)
                hend, wend = min(hend, h), min(wend, w)
                out[:, :, ph, pw] = x[:, :, hstart:hend, wstart:wend].sum(axis=(2, 3)) / pool_size
    return out


def ref_lrn(x, p):
    """Caffe's LRN: ACROSS_CHANNELS scale = k + α/n·Σ x² over n channels, y = x·scale^−β;
    WITHIN_CHANNEL y = x·(1 + α·AVE-pool_n×n(x²))^−β with pad (n−1)/2."""
    n, half = p.local_size, (p.local_size - 1) // 2
    if p.norm_region == caffe_proto.LRNParameter.WITHIN_CHANNEL:
        average = ref_pool(x * x, (n, n), (half, half), (1, 1), "AVE")
        return x * (1 + p.alpha * average) ** -p.beta
    channels = x.shape[1]
    scale = np.empty_like(x)
    for c in range(channels):
        lo, hi = max(0, c - half), min(channels, c + half + 1)
        scale[:, c] = p.k + p.alpha / n * (x[:, lo:hi] ** 2).sum(axis=1)
    return x * scale ** -p.beta


def ref_reshape(shape, p):
    start = p.axis if p.axis >= 0 else len(shape) + p.axis + 1
    end = len(shape) if p.num_axes == -1 else start + p.num_axes
    dims = [shape[start + i] if d == 0 else d for i, d in enumerate(p.shape.dim)]
    new = list(shape[:start]) + dims + list(shape[end:])
    if -1 in new:
        new[new.index(-1)] = int(np.prod(shape)) // -int(np.prod(new))
    return new


def ref_broadcast_operand(operand, x_ndim, axis):
    return operand.reshape(operand.shape + (1,) * (x_ndim - axis - operand.ndim))


def ref_forward(net, weights, inputs):
    """A float64 Caffe: runs the (upgraded, TEST-phase) layers in order on ``inputs``;
    returns {blob: final value}."""
    blobs = {name: value.astype(np.float64) for name, value in inputs.items()}
    for layer in caffe_io.upgrade_net(net).layer:
        if any(rule.phase == 0 for rule in layer.include):
            continue
        t = layer.type
        xs = [blobs[b] for b in layer.bottom]
        ws = [w.astype(np.float64) for w in weights.get(layer.name, [])]
        x = xs[0] if xs else None
        if t == "Input":
            continue
        if t == "Convolution":
            p = layer.convolution_param

            def per_axis(values, h, w, default):
                if h is not None:
                    return [h, w]
                values = list(values) or [default]
                return values * 2 if len(values) == 1 else values
            kernel_h = p.kernel_h if p.HasField("kernel_h") else None
            pad_h = p.pad_h if p.HasField("pad_h") else None
            stride_h = p.stride_h if p.HasField("stride_h") else None
            ys = [ref_conv(x, ws[0], ws[1] if p.bias_term else None,
                           per_axis(p.pad, pad_h, p.pad_w, 0),
                           per_axis(p.stride, stride_h, p.stride_w, 1),
                           per_axis(p.dilation, None, None, 1), p.group)]
        elif t == "Pooling":
            p = layer.pooling_param
            method = "MAX" if p.pool == p.MAX else "AVE"
            if p.global_pooling:
                ys = [x.max(axis=(2, 3), keepdims=True) if method == "MAX"
                      else x.mean(axis=(2, 3), keepdims=True)]
            else:
                kernel = [p.kernel_h, p.kernel_w] if p.HasField("kernel_h") else [p.kernel_size] * 2
                pad = [p.pad_h, p.pad_w] if p.HasField("pad_h") else [p.pad] * 2
                stride = [p.stride_h, p.stride_w] if p.HasField("stride_h") else [p.stride] * 2
                ceil = p.round_mode == p.CEIL if p.HasField("round_mode") else p.ceil_mode
                ys = [ref_pool(x, kernel, pad, stride, method, ceil)]
        elif t == "LRN":
            ys = [ref_lrn(x, layer.lrn_param)]
        elif t == "InnerProduct":
            p = layer.inner_product_param
            axis = p.axis % x.ndim
            rows = x.reshape(int(np.prod(x.shape[:axis])), -1)
            y = rows @ (ws[0] if p.transpose else ws[0].T)
            if p.bias_term:
                y = y + ws[1]
            ys = [y.reshape(*x.shape[:axis], -1)]
        elif t == "ReLU":
            ys = [np.maximum(x, 0) + layer.relu_param.negative_slope * np.minimum(x, 0)]
        elif t == "PReLU":
            slope = ws[0] if ws[0].ndim == 0 else ref_broadcast_operand(ws[0], x.ndim, 1)
            ys = [np.maximum(x, 0) + slope * np.minimum(x, 0)]
        elif t in ("Dropout", "Split"):
            ys = [x] * len(layer.top)
        elif t == "Softmax":
            axis = layer.softmax_param.axis
            e = np.exp(x - x.max(axis=axis, keepdims=True))
            ys = [e / e.sum(axis=axis, keepdims=True)]
        elif t == "Concat":
            p = layer.concat_param
            ys = [np.concatenate(xs, axis=p.axis if p.HasField("axis") else p.concat_dim)]
        elif t == "Eltwise":
            p = layer.eltwise_param
            if p.operation == p.SUM:
                coeff = list(p.coeff) or [1.0] * len(xs)
                ys = [sum(c * v for c, v in zip(coeff, xs))]
            elif p.operation == p.PROD:
                ys = [np.prod(np.stack(xs), axis=0)]
            else:
                ys = [np.max(np.stack(xs), axis=0)]
        elif t == "BatchNorm":
            s = ws[2][0]
            f = 0.0 if s == 0 else 1.0 / s
            shape = (1, -1) + (1,) * (x.ndim - 2)
            mean, var = (ws[0] * f).reshape(shape), (ws[1] * f).reshape(shape)
            ys = [(x - mean) / np.sqrt(var + layer.batch_norm_param.eps)]
        elif t in ("Scale", "Bias"):
            p = layer.scale_param if t == "Scale" else layer.bias_param
            axis = p.axis % x.ndim
            operands = xs[1:] + ws
            y = x * ref_broadcast_operand(operands[0], x.ndim, axis) if t == "Scale" else x
            if t == "Bias":
                y = y + ref_broadcast_operand(operands[0], x.ndim, axis)
            elif p.bias_term:
                y = y + ref_broadcast_operand(operands[1], x.ndim, axis)
            ys = [y]
        elif t == "Flatten":
            p = layer.flatten_param
            start, end = p.axis % x.ndim, p.end_axis % x.ndim
            ys = [x.reshape(*x.shape[:start], -1, *x.shape[end + 1:])]
        elif t == "Reshape":
            ys = [x.reshape(ref_reshape(x.shape, layer.reshape_param))]
        elif t == "Slice":
            p = layer.slice_param
            axis = p.axis if p.HasField("axis") else p.slice_dim
            points = list(p.slice_point) or len(layer.top)
            ys = np.split(x, points, axis=axis)
        elif t == "Sigmoid":
            ys = [1 / (1 + np.exp(-x))]
        elif t == "TanH":
            ys = [np.tanh(x)]
        elif t == "Power":
            p = layer.power_param
            ys = [(p.shift + p.scale * x) ** p.power]
        else:
            raise NotImplementedError(t)
        for top, y in zip(layer.top, ys):
            blobs[top] = y
    return blobs


# --- helpers ------------------------------------------------------------------------------------

def seeded_weights(prototxt, rng, overrides=None):
    """{layer: [float32 arrays]} in the shapes the prototxt asks for, He-scaled normal values
    (BatchNorm: a mean sum, a positive variance sum and a scale factor 1.7)."""
    net = prototxt if hasattr(prototxt, "DESCRIPTOR") else caffe_io.read_prototxt(prototxt)
    types = {layer.name: layer.type for layer in caffe_io.upgrade_net(net).layer}
    weights = {}
    for name, shapes in caffe_param_shapes(net).items():
        if types[name] == "BatchNorm":
            weights[name] = [rng.standard_normal(shapes[0]).astype(np.float32),
                             rng.uniform(0.5, 2.0, shapes[1]).astype(np.float32),
                             np.float32([1.7])]
            continue
        arrays = []
        for shape in shapes:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            arrays.append((rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32))
        weights[name] = arrays
    weights.update(overrides or {})
    return weights


def caffemodel(net, weights, *, v1=False):
    """A caffemodel NetParameter: the net with each layer's blobs filled in."""
    model = caffe_io.upgrade_net(net)
    for layer in model.layer:
        for array in weights.get(layer.name, []):
            layer.blobs.append(caffe_io.array_to_blob(array))
    return caffe_io.downgrade_to_v1(model) if v1 else model


def run_blobs(model, inputs):
    """ONNX Runtime on ``model`` fed {Caffe input blob: array}, returning every Caffe blob's
    final value: {blob: array}."""
    meta = metadata(model)
    feeds = {tensor: inputs[blob] for blob, tensor in zip(meta["inputs"], meta["input_tensors"])}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output} | {i.name for i in probe.graph.input}
    tensors = {blob: info["data"] for blob, info in meta["blobs"].items()}
    for tensor in tensors.values():
        if tensor not in present:
            probe.graph.output.append(helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT,
                                                                    None))
    names = [o.name for o in probe.graph.output]
    values = dict(feeds)
    values.update(zip(names, run_onnxruntime(probe, feeds)))
    return {blob: values[tensor] for blob, tensor in tensors.items()}


def assert_blobs_close(got, ref, rel):
    for blob, expected in ref.items():
        actual = got[blob]
        assert actual.shape == expected.shape, (blob, actual.shape, expected.shape)
        error = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
        scale = max(1.0, float(np.max(np.abs(expected))))
        assert error <= rel * scale, f"blob {blob!r}: max error {error:.3g} > {rel} · {scale:.3g}"


def net_text(layers, shapes=((2, 3, 5, 4),), tops=("data",)):
    shape_text = " ".join("shape { " + " ".join(f"dim: {d}" for d in s) + " }" for s in shapes)
    top_text = " ".join(f'top: "{t}"' for t in tops)
    return (f'name: "t"\nlayer {{ name: "data" type: "Input" {top_text} '
            f"input_param {{ {shape_text} }} }}\n{layers}")


def check_against_reference(text, rng, rel=REL_LAYER, overrides=None, inputs=None):
    net = caffe_io.parse_prototxt(text)
    weights = seeded_weights(net, rng, overrides)
    model = caffe_to_onnx(net, caffemodel(net, weights))
    onnx.checker.check_model(model, full_check=True)
    meta = metadata(model)
    if inputs is None:
        inputs = {blob: rng.standard_normal(meta["blobs"][blob]["shape"]).astype(np.float32)
                  for blob in meta["inputs"]}
    assert {node.op_type for node in model.graph.node} <= set(REGISTRY)  # ops with a backward
    got = run_blobs(model, inputs)
    assert_blobs_close(got, ref_forward(net, weights, inputs), rel)
    return model, got


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

def layer(name, type_, bottoms, tops, params=""):
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in tops)
    return f'layer {{ name: "{name}" type: "{type_}" {b} {t} {params} }}\n'


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


# --- a CaffeNet-shaped net: 227×227, group-2 convs, LRN, ceil pooling -----------------------

def scaled_caffenet(batch=2):
    """BVLC CaffeNet's deploy.prototxt with the channel counts scaled down (group-2 convs kept)."""
    net = caffe_io.read_prototxt(DATA / "bvlc_reference_caffenet" / "deploy.prototxt")
    widths = {"conv1": 8, "conv2": 12, "conv3": 16, "conv4": 16, "conv5": 12,
              "fc6": 32, "fc7": 24, "fc8": 10}
    for layer_param in net.layer:
        if layer_param.name in widths:
            param = (layer_param.convolution_param if layer_param.type == "Convolution"
                     else layer_param.inner_product_param)
            param.num_output = widths[layer_param.name]
    net.layer[0].input_param.shape[0].dim[0] = batch
    return net


def test_caffenet_shaped_net_matches_reference(tmp_path):
    rng = np.random.default_rng(8)
    net = scaled_caffenet()
    weights = seeded_weights(net, rng)
    weights["fc8"][0] *= 0.02    # logits of a few units: a softmax far from one-hot
    caffe_io.write_prototxt(net, tmp_path / "deploy.prototxt")
    caffe_io.write_caffemodel(caffemodel(net, weights), tmp_path / "net.caffemodel")
    model = caffe_to_onnx(tmp_path / "deploy.prototxt", tmp_path / "net.caffemodel")
    # mean-subtracted 0..255 pixels, as CaffeNet sees them: LRN's α·Σx² then matters
    image = rng.uniform(-120, 120, (2, 3, 227, 227)).astype(np.float32)
    got = run_blobs(model, {"data": image})
    ref = ref_forward(net, weights, {"data": image})
    shapes = {b: got[b].shape for b in ("conv1", "pool1", "norm1", "conv2", "pool2", "pool5", "prob")}
    assert shapes == {"conv1": (2, 8, 55, 55), "pool1": (2, 8, 27, 27), "norm1": (2, 8, 27, 27),
                      "conv2": (2, 12, 27, 27), "pool2": (2, 12, 13, 13), "pool5": (2, 12, 6, 6),
                      "prob": (2, 10)}
    lrn_effect = np.max(np.abs(ref["norm1"] - ref["pool1"])) / np.max(np.abs(ref["pool1"]))
    assert lrn_effect > 0.1   # the test would notice an LRN that did nothing
    assert 0.2 < ref["prob"].max() < 0.99
    assert_blobs_close(got, ref, REL_NET)


def test_symbolic_batch_serves_any_batch():
    rng = np.random.default_rng(9)
    net = scaled_caffenet(batch=10)
    weights = seeded_weights(net, rng)
    model = caffe_to_onnx(net, caffemodel(net, weights))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 3, 227, 227]
    assert metadata(model)["batch"] == {"declared": 10, "symbolic": True, "dim_param": "N",
                                        "fixed_by": None}
    images = rng.uniform(-120, 120, (3, 3, 227, 227)).astype(np.float32)
    together = run_onnxruntime(model, {"data": images})[0]
    alone = np.concatenate([run_onnxruntime(model, {"data": images[i:i + 1]})[0] for i in range(3)])
    assert together.shape == (3, 10)
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-7)


def test_reshape_of_the_batch_axis_fixes_the_batch():
    text = net_text(layer("re", "Reshape", ["data"], ["re"],
                          "reshape_param { shape { dim: 1 dim: -1 } }"))
    model = caffe_to_onnx(caffe_io.parse_prototxt(text))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [2, 3, 5, 4]
    assert metadata(model)["batch"]["symbolic"] is False
    assert "re" in metadata(model)["batch"]["fixed_by"]


# --- names and metadata -----------------------------------------------------------------------

IN_PLACE_NET = net_text(
    layer("conv1", "Convolution", ["data"], ["conv1"],
          "convolution_param { num_output: 4 kernel_size: 3 }") +
    layer("relu1", "ReLU", ["conv1"], ["conv1"]) +
    layer("bn1", "BatchNorm", ["conv1"], ["conv1"]) +
    layer("drop1", "Dropout", ["conv1"], ["conv1"]) +
    layer("pool1", "Pooling", ["conv1"], ["pool1"], "pooling_param { kernel_size: 2 stride: 2 }") +
    layer("fc", "InnerProduct", ["pool1"], ["fc"], "inner_product_param { num_output: 5 }") +
    layer("zeta", "Softmax", ["fc"], ["zeta"]) +
    layer("alpha", "Sigmoid", ["fc"], ["alpha"]),
    shapes=[(2, 3, 7, 6)]).replace('name: "t"', 'name: "names"\nforce_backward: true')


def test_in_place_versions_and_metadata():
    rng = np.random.default_rng(10)
    model, _ = check_against_reference(IN_PLACE_NET, rng, overrides={
        "bn1": [np.zeros(4, np.float32), np.ones(4, np.float32), np.ones(1, np.float32)]})
    nodes = {n.name: n for n in model.graph.node}
    assert list(nodes) == ["conv1", "relu1", "bn1", "drop1", "pool1", "fc/flatten", "fc", "zeta",
                           "alpha"]
    assert list(nodes["conv1"].input) == ["data", "conv1#0", "conv1#1"]
    assert list(nodes["conv1"].output) == ["conv1@conv1"]
    assert list(nodes["relu1"].output) == ["conv1@relu1"]
    assert list(nodes["bn1"].input)[0] == "conv1@relu1"
    assert list(nodes["bn1"].output) == ["conv1@bn1"]
    assert list(nodes["drop1"].output) == ["conv1"]
    assert list(nodes["pool1"].input) == ["conv1"]
    assert list(nodes["fc"].input) == ["fc/flatten", "fc#0", "fc#1"]
    assert {a.name: a.i for a in nodes["fc"].attribute}["transB"] == 1
    inits = {t.name: tuple(t.dims) for t in model.graph.initializer}
    assert inits["conv1#0"] == (4, 3, 3, 3) and inits["fc#0"] == (5, 24)
    assert inits["bn1#2"] == (1,) and inits["bn1#0/mean"] == (4,)
    assert [o.name for o in model.graph.output] == ["alpha", "zeta"]   # Caffe's sorted outputs

    meta = metadata(model)
    assert (meta["name"], meta["inputs"], meta["outputs"]) == ("names", ["data"], ["alpha", "zeta"])
    assert meta["force_backward"] is True and meta["debug_info"] is False
    assert meta["blobs"]["conv1"] == {"data": "conv1", "diff": "conv1@conv1", "shape": [2, 4, 5, 4]}
    assert meta["blobs"]["data"]["data"] == meta["blobs"]["data"]["diff"] == "data"
    assert list(meta["blobs"]) == ["data", "conv1", "pool1", "fc", "zeta", "alpha"]
    by_name = {entry["name"]: entry for entry in meta["layers"]}
    assert by_name["data"]["type"] == "Input" and by_name["data"]["nodes"] == []
    assert by_name["fc"]["nodes"] == ["fc/flatten", "fc"]
    assert by_name["fc"]["params"] == ["fc#0", "fc#1"]
    assert by_name["fc"]["param_shapes"] == [[5, 24], [5]]
    assert by_name["bn1"]["params"] == ["bn1#0", "bn1#1", "bn1#2"]
    assert set(by_name["bn1"]["derived"]) == {"bn1#0/mean", "bn1#1/var"}
    assert by_name["relu1"]["bottoms"] == by_name["relu1"]["tops"] == ["conv1"]
    assert by_name["conv1"]["lr_mult"] == [1.0, 1.0]


def test_params_keep_caffe_shapes_and_values(tmp_path):
    rng = np.random.default_rng(11)
    net = caffe_io.parse_prototxt(IN_PLACE_NET)
    weights = seeded_weights(net, rng, {"bn1": [np.zeros(4, np.float32), np.ones(4, np.float32),
                                                np.ones(1, np.float32)]})
    model = caffe_to_onnx(net, caffemodel(net, weights))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    for entry in metadata(model)["layers"]:
        for i, name in enumerate(entry["params"]):
            np.testing.assert_array_equal(inits[name], weights[entry["name"]][i])
            assert list(inits[name].shape) == entry["param_shapes"][i]


def test_input_rewritten_in_place_keeps_caffe_names():
    text = net_text(layer("scale_in", "Power", ["data"], ["data"], "power_param { scale: 2 }") +
                    layer("out", "TanH", ["data"], ["out"]))
    model = caffe_to_onnx(caffe_io.parse_prototxt(text))
    meta = metadata(model)
    assert model.graph.input[0].name == "data@data" == meta["input_tensors"][0]
    assert meta["inputs"] == ["data"]
    assert meta["blobs"]["data"] == {"data": "data", "diff": "data@data", "shape": [2, 3, 5, 4]}
    x = np.ones((2, 3, 5, 4), np.float32)
    np.testing.assert_allclose(run_onnxruntime(model, {"data@data": x})[0], np.tanh(2.0), rtol=1e-6)


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


def test_v1_prototxt_with_v1_caffemodel_of_legacy_blobs(tmp_path):
    rng = np.random.default_rng(12)
    text = Path(__file__).with_name("test_caffe_io.py").read_text().split('V1_PROTOTXT = """\\\n')[1]
    net = caffe_io.parse_prototxt(text.split('"""')[0])
    weights = seeded_weights(net, rng)
    legacy = caffemodel(net, weights, v1=True)
    assert caffe_io.blob_shape(legacy.layers[3].blobs[0]) == (1, 1, 5, 16)
    caffe_io.write_caffemodel(legacy, tmp_path / "old.caffemodel")
    model = caffe_to_onnx(net, tmp_path / "old.caffemodel")
    x = {"data": rng.standard_normal((2, 3, 8, 7)).astype(np.float32)}
    assert_blobs_close(run_blobs(model, x), ref_forward(net, weights, x), REL_LAYER)
    assert metadata(model)["layers"][0]["name"] == "input"


# --- phase, level and stage rules ---------------------------------------------------------

RULES_NET = net_text(
    layer("train_only", "Dropout", ["data"], ["data"], "include { phase: TRAIN }") +
    layer("not_in_test", "TanH", ["data"], ["data"], "exclude { phase: TEST }") +
    layer("deploy_stage", "Sigmoid", ["data"], ["data"], 'include { stage: "deploy" }') +
    layer("level_2", "TanH", ["data"], ["data"], "include { min_level: 2 }") +
    layer("out", "ReLU", ["data"], ["out"]))


@pytest.mark.parametrize("phase,level,stages,expected", [
    ("TEST", 0, (), ["data", "out"]),
    ("TRAIN", 0, (), ["data", "train_only", "not_in_test", "out"]),
    (0, 0, ("deploy",), ["data", "train_only", "not_in_test", "deploy_stage", "out"]),
    ("TEST", 2, ("deploy",), ["data", "deploy_stage", "level_2", "out"]),
])
def test_layers_filtered_like_caffe(phase, level, stages, expected, recwarn):
    model = caffe_to_onnx(caffe_io.parse_prototxt(RULES_NET), phase=phase, level=level,
                          stages=stages)
    assert [entry["name"] for entry in metadata(model)["layers"]] == expected


def test_train_phase_warns_about_dropout():
    with pytest.warns(UserWarning, match="drops units at random"):
        caffe_to_onnx(caffe_io.parse_prototxt(RULES_NET), phase="TRAIN")


# --- errors: one clear ModelError each -----------------------------------------------------------

def test_unconvertible_layers_are_named_together():
    text = net_text(layer("up", "Deconvolution", ["data"], ["up"]) +
                    layer("crop", "Crop", ["up", "data"], ["crop"]))
    with pytest.raises(ModelError, match=r"'up' \(Deconvolution\), 'crop' \(Crop\); supported"):
        caffe_to_onnx(caffe_io.parse_prototxt(text))


def test_training_layers_suggest_the_deploy_prototxt():
    # seed 000: SoftmaxWithLoss put in place of Softmax in a deploy prototxt
    text = net_text(layer("fc8", "InnerProduct", ["data"], ["fc8"],
                          "inner_product_param { num_output: 4 }") +
                    layer("loss", "SoftmaxWithLoss", ["fc8", "label"], ["prob"]))
    with pytest.raises(ModelError, match=r"'loss' \(SoftmaxWithLoss\).*use the deploy prototxt"):
        caffe_to_onnx(caffe_io.parse_prototxt(text))


def test_blob_shape_mismatch_names_layer_and_shapes(tmp_path):
    net = caffe_io.parse_prototxt(IN_PLACE_NET)
    weights = seeded_weights(net, np.random.default_rng(13))
    weights["conv1"][0] = np.zeros((4, 3, 5, 5), np.float32)
    caffe_io.write_caffemodel(caffemodel(net, weights), tmp_path / "w.caffemodel")
    with pytest.raises(ModelError, match=r"w\.caffemodel: cannot copy param 0 of layer 'conv1': "
                                         r"shape mismatch.*\(4, 3, 5, 5\).*\(4, 3, 3, 3\)"):
        caffe_to_onnx(net, tmp_path / "w.caffemodel")


def test_blob_count_mismatch():
    net = caffe_io.parse_prototxt(IN_PLACE_NET)
    weights = seeded_weights(net, np.random.default_rng(14))
    weights["fc"] = weights["fc"][:1]
    with pytest.raises(ModelError, match=r"layer 'fc' \(InnerProduct\) holds 1 param blobs.*needs 2"):
        caffe_to_onnx(net, caffemodel(net, weights))
    weights["fc"] = []    # the layer is there, without blobs
    with pytest.raises(ModelError, match=r"layer 'fc' \(InnerProduct\) holds 0 param blobs"):
        caffe_to_onnx(net, caffemodel(net, weights))


def test_missing_weights_are_an_error_unless_filling_is_asked_for():
    net = caffe_io.parse_prototxt(IN_PLACE_NET.replace(
        "num_output: 5 }", "num_output: 5 weight_filler { type: 'gaussian' std: 0.1 } }"))
    trained = caffemodel(net, seeded_weights(net, np.random.default_rng(15)))
    # seed 004's net surgery: the prototxt renamed a layer, so the caffemodel lacks it
    trained.layer[[layer.name for layer in trained.layer].index("fc")].name = "fc_old"
    with pytest.raises(ModelError, match=r"layer 'fc' \(InnerProduct\) needs weights but "
                                         r"<caffemodel> has no layer named 'fc'.*fill_missing"):
        caffe_to_onnx(net, trained)
    with pytest.raises(ModelError, match="layer 'conv1' .*no caffemodel was given"):
        caffe_to_onnx(net)
    with pytest.warns(UserWarning, match=r"1 layer\(s\) \(fc\).*random filler \(fc\)"):
        model = caffe_to_onnx(net, trained, fill_missing=True)
    fc_weight = [t for t in model.graph.initializer if t.name == "fc#0"][0]
    assert not onnx.numpy_helper.to_array(fc_weight).any()


def test_fill_missing_uses_caffes_constant_fillers():
    text = net_text(layer("sc", "Scale", ["data"], ["sc"], "scale_param { bias_term: true }") +
                    layer("pr", "PReLU", ["sc"], ["pr"]) +
                    layer("conv", "Convolution", ["pr"], ["conv"],
                          "convolution_param { num_output: 2 kernel_size: 1 "
                          "bias_filler { type: 'constant' value: 0.5 } }"))
    with pytest.warns(UserWarning, match="constant fillers"):
        model = caffe_to_onnx(caffe_io.parse_prototxt(text), fill_missing=True)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert (inits["sc#0"] == 1).all() and (inits["sc#1"] == 0).all()
    assert (inits["pr#0"] == 0.25).all() and (inits["conv#1"] == 0.5).all()


@pytest.mark.parametrize("cut_fraction", [0.1, 0.35, 0.6, 0.8, 0.97, 0.999])
def test_truncated_caffemodel_is_one_model_error(tmp_path, cut_fraction):
    net = caffe_io.parse_prototxt(IN_PLACE_NET)
    data = caffemodel(net, seeded_weights(net, np.random.default_rng(16))).SerializeToString()
    (tmp_path / "cut.caffemodel").write_bytes(data[:int(len(data) * cut_fraction)])
    with pytest.raises(ModelError, match="cut.caffemodel"):
        caffe_to_onnx(net, tmp_path / "cut.caffemodel")


def test_prototxt_syntax_error_and_missing_files(tmp_path):
    (tmp_path / "deploy.prototxt").write_text(IN_PLACE_NET.replace('top: "pool1"', 'top "pool1"'))
    line = next(i for i, text in enumerate(IN_PLACE_NET.splitlines(), 1) if '"pool1" pool' in text
                or 'top: "pool1"' in text)
    with pytest.raises(ModelError, match=rf"deploy\.prototxt: line {line}, column"):
        caffe_to_onnx(tmp_path / "deploy.prototxt")
    with pytest.raises(ModelError, match="prototxt not found"):
        caffe_to_onnx(tmp_path / "absent.prototxt")
    net = caffe_io.parse_prototxt(IN_PLACE_NET)
    with pytest.raises(ModelError, match="caffemodel not found"):
        caffe_to_onnx(net, tmp_path / "absent.caffemodel")


@pytest.mark.parametrize("layers,message", [
    (layer("t", "TanH", ["nothing"], ["t"]), r"unknown bottom blob 'nothing'"),
    (layer("a", "TanH", ["data"], ["t"]) + layer("b", "Sigmoid", ["data"], ["t"]),
     r"top blob 't' of layer 'b' is produced by multiple sources"),
    (layer("a", "TanH", ["data"], ["t"]) + layer("a", "Sigmoid", ["t"], ["u"]),
     r"layer name 'a' is used more than once"),
    (layer("a", "TanH", ["data"], ["t"], "include { phase: TEST } exclude { phase: TRAIN }"),
     r"both include and exclude"),
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
def test_inconsistent_nets(layers, message):
    with pytest.raises(ModelError, match=message):
        caffe_to_onnx(caffe_io.parse_prototxt(net_text(layers)), fill_missing=True)


# --- the five real BVLC deploy prototxts ----------------------------------------------------------

ZOO = {  # model: (output blob, classes)
    "bvlc_reference_caffenet": ("prob", 1000),
    "bvlc_alexnet": ("prob", 1000),
    "bvlc_googlenet": ("prob", 1000),
    "bvlc_reference_rcnn_ilsvrc13": ("fc-rcnn", 200),
    "finetune_flickr_style": ("prob", 20),
}


def test_caffenet_param_shapes_are_caffes():
    shapes = caffe_param_shapes(DATA / "bvlc_reference_caffenet" / "deploy.prototxt")
    assert shapes == {
        "conv1": [(96, 3, 11, 11), (96,)], "conv2": [(256, 48, 5, 5), (256,)],
        "conv3": [(384, 256, 3, 3), (384,)], "conv4": [(384, 192, 3, 3), (384,)],
        "conv5": [(256, 192, 3, 3), (256,)], "fc6": [(4096, 9216), (4096,)],
        "fc7": [(4096, 4096), (4096,)], "fc8": [(1000, 4096), (1000,)]}


@pytest.mark.slow
@pytest.mark.parametrize("model_name", [m for m in ZOO if m != "bvlc_googlenet"])
def test_real_deploy_converts_and_runs(model_name):
    output, classes = ZOO[model_name]
    with pytest.warns(UserWarning, match="constant fillers"):
        model = caffe_to_onnx(DATA / model_name / "deploy.prototxt", fill_missing=True)
    meta = metadata(model)
    assert meta["outputs"] == [output] and meta["batch"]["symbolic"]
    assert meta["blobs"]["pool5"]["shape"] == [10, 256, 6, 6]
    assert [n.op_type for n in model.graph.node].count("LRN") == 2
    image = np.random.default_rng(17).uniform(-120, 120, (1, 3, 227, 227)).astype(np.float32)
    (y,) = run_onnxruntime(model, {"data": image})
    assert y.shape == (1, classes)
    if output == "prob":   # zero weights: equal logits, a uniform softmax
        np.testing.assert_allclose(y, 1.0 / classes, rtol=1e-5)


@pytest.mark.slow
def test_googlenet_with_a_seeded_caffemodel(tmp_path):
    rng = np.random.default_rng(18)
    prototxt = DATA / "bvlc_googlenet" / "deploy.prototxt"
    weights = seeded_weights(prototxt, rng)
    assert sum(w.size for ws in weights.values() for w in ws) == 6_998_552
    net = caffe_io.read_prototxt(prototxt)
    caffe_io.write_caffemodel(caffemodel(net, weights), tmp_path / "googlenet.caffemodel")
    model = caffe_to_onnx(prototxt, tmp_path / "googlenet.caffemodel")
    meta = metadata(model)
    node_names = [n.name for n in model.graph.node]
    assert len(set(node_names)) == len(node_names)
    assert meta["blobs"]["inception_5b/output"]["shape"] == [10, 1024, 7, 7]
    assert meta["blobs"]["pool1/3x3_s2"]["shape"] == [10, 64, 56, 56]   # ceil: 112 -> 56
    images = rng.uniform(-120, 120, (2, 3, 224, 224)).astype(np.float32)
    got = run_blobs(model, {"data": images})
    for blob, info in meta["blobs"].items():
        assert list(got[blob].shape) == [2] + info["shape"][1:], blob
    np.testing.assert_allclose(got["prob"].sum(axis=1), 1.0, rtol=1e-5)
    # the last layers against the reference, from ORT's own pool5 input
    fc = ref_forward(caffe_io.parse_prototxt(
        net_text(layer("pool5/7x7_s1", "Pooling", ["data"], ["pool5/7x7_s1"],
                       "pooling_param { pool: AVE kernel_size: 7 stride: 1 }") +
                 layer("loss3/classifier", "InnerProduct", ["pool5/7x7_s1"], ["fc"],
                       "inner_product_param { num_output: 1000 }") +
                 layer("prob", "Softmax", ["fc"], ["prob"]), shapes=[(2, 1024, 7, 7)])),
        weights, {"data": got["inception_5b/output"]})
    assert_blobs_close({"prob": got["prob"]}, {"prob": fc["prob"]}, REL_LAYER)
