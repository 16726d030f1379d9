"""A float64 Caffe for the converter's tests: Caffe's Forward_cpu loops written in numpy
(``ref_forward``), the prototxt snippets the tests are made of (``net_text``, ``layer``), and the
comparison of a converted model run in ONNX Runtime with that reference
(``check_against_reference``).

Tolerance: ONNX Runtime computes in float32, the reference in float64 from the same float32
weights and inputs; every compared blob must satisfy max|ort − ref| ≤ REL · max(1, max|ref|)
with REL = 2e-6 (``REL_LAYER``) for the single-layer nets and 5e-6 (``REL_NET``) for the 8-layer
CaffeNet-shaped net (float32 rounds at 6e-8 per operation; the longest sums here have about 1200
terms; measured worst cases were 1.5e-7 and 4.8e-7).
"""
import numpy as np
import onnx
from onnx import helper

from caffe_port.graph import Graph
from caffe_port.kernels import REGISTRY
from caffe_port.models import caffe_io, caffe_proto
from caffe_port.models.caffe_net import caffe_to_onnx, metadata
from helpers.caffe_weights import caffemodel, seeded_weights
from helpers.onnx_models import run_onnxruntime

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


def _ref_normalizer(mode, outer, inner, valid):
    """Caffe's get_normalizer: FULL outer·inner, VALID the counted labels, BATCH_SIZE outer,
    NONE 1; at least 1."""
    value = {"FULL": outer * inner, "VALID": valid, "BATCH_SIZE": outer, "NONE": 1}[mode]
    return max(1.0, float(value))


def _ref_mode(layer, default):
    p = layer.loss_param
    if p.HasField("normalization"):
        return caffe_proto.LossParameter.NormalizationMode.Name(p.normalization)
    if p.HasField("normalize"):
        return "VALID" if p.normalize else "BATCH_SIZE"
    return default


def ref_softmax_with_loss(x, label, layer):
    """SoftmaxWithLossLayer::Forward_cpu's loops: −Σ log max(p[label], FLT_MIN) / normalizer."""
    axis = layer.softmax_param.axis % x.ndim
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    prob = e / e.sum(axis=axis, keepdims=True)
    outer, channels = int(np.prod(x.shape[:axis])), x.shape[axis]
    inner = int(np.prod(x.shape[axis + 1:]))
    prob = prob.reshape(outer, channels, inner)
    labels = label.reshape(outer, inner)
    has_ignore = layer.loss_param.HasField("ignore_label")
    loss, count = 0.0, 0
    for i in range(outer):
        for j in range(inner):
            value = int(labels[i, j])
            if has_ignore and value == layer.loss_param.ignore_label:
                continue
            loss -= np.log(max(prob[i, value, j], np.finfo(np.float32).tiny))
            count += 1
    return np.float64(loss / _ref_normalizer(_ref_mode(layer, "VALID"), outer, inner, count))


def ref_sigmoid_cross_entropy_loss(x, target, layer):
    """SigmoidCrossEntropyLossLayer::Forward_cpu's stable loop."""
    x, t = x.reshape(-1), target.reshape(-1)
    has_ignore = layer.loss_param.HasField("ignore_label")
    loss, count = 0.0, 0
    for xi, ti in zip(x, t):
        if has_ignore and int(ti) == layer.loss_param.ignore_label:
            continue
        positive = float(xi >= 0)
        loss -= xi * (ti - positive) - np.log(1 + np.exp(xi - 2 * xi * positive))
        count += 1
    outer = target.shape[0] if target.ndim else 1
    return np.float64(loss / _ref_normalizer(_ref_mode(layer, "BATCH_SIZE"), outer,
                                             x.size // outer, count))


def ref_accuracy(x, label, layer):
    """AccuracyLayer::Forward_cpu: a hit when fewer than top_k other classes score ≥ the
    label's."""
    p = layer.accuracy_param
    axis = p.axis % x.ndim
    outer, channels = int(np.prod(x.shape[:axis])), x.shape[axis]
    inner = int(np.prod(x.shape[axis + 1:]))
    scores = x.reshape(outer, channels, inner)
    labels = label.reshape(outer, inner)
    hits, count = 0, 0
    for i in range(outer):
        for j in range(inner):
            value = int(labels[i, j])
            if p.HasField("ignore_label") and value == p.ignore_label:
                continue
            better = int(np.sum(scores[i, :, j] >= scores[i, value, j])) - 1
            hits += better < p.top_k
            count += 1
    return np.float64(0.0 if count == 0 else hits / count)


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
        elif t == "SoftmaxWithLoss":
            ys = [ref_softmax_with_loss(x, xs[1], layer)]
            if len(layer.top) == 2:
                axis = layer.softmax_param.axis
                e = np.exp(x - x.max(axis=axis, keepdims=True))
                ys.append(e / e.sum(axis=axis, keepdims=True))
        elif t == "EuclideanLoss":
            ys = [np.float64(np.sum((x - xs[1].reshape(x.shape)) ** 2) / x.shape[0] / 2)]
        elif t == "SigmoidCrossEntropyLoss":
            ys = [ref_sigmoid_cross_entropy_loss(x, xs[1], layer)]
        elif t == "Accuracy":
            ys = [ref_accuracy(x, xs[1], layer)]
        elif t == "Silence":
            ys = []
        else:
            raise NotImplementedError(t)
        for top, y in zip(layer.top, ys):
            blobs[top] = y
    return blobs


# --- running a converted net and comparing ---------------------------------------------------

def run_blobs(model, inputs):
    """ONNX Runtime on ``model`` fed {Caffe input blob: array}, returning every Caffe blob's
    final value: {blob: array}."""
    meta = metadata(model)
    feeds = {tensor: inputs[blob] for blob, tensor in zip(meta["inputs"], meta["input_tensors"])}
    feeds.update({source["tensor"]: inputs[source["blob"]] for source in meta["sources"]})
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
    """Every blob of ``ref`` in ``got``, of its shape, within rel · max(1, max|ref|)."""
    for blob, expected in ref.items():
        actual = got[blob]
        assert actual.shape == expected.shape, (blob, actual.shape, expected.shape)
        error = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
        scale = max(1.0, float(np.max(np.abs(expected))))
        assert error <= rel * scale, f"blob {blob!r}: max error {error:.3g} > {rel} · {scale:.3g}"


def check_against_reference(text, rng, rel=REL_LAYER, overrides=None, inputs=None):
    """Convert the net ``text`` with seeded weights (``overrides`` per layer), check the model,
    that every op a diff can reach has a backward, and every blob against ``ref_forward``;
    returns (model, blobs)."""
    net = caffe_io.parse_prototxt(text)
    weights = seeded_weights(net, rng, overrides)
    model = caffe_to_onnx(net, caffemodel(net, weights))
    onnx.checker.check_model(model, full_check=True)
    meta = metadata(model)
    if inputs is None:
        inputs = {blob: rng.standard_normal(meta["blobs"][blob]["shape"]).astype(np.float32)
                  for blob in meta["inputs"]}
    graph = Graph(model)   # ops a diff reaches have a backward (labels, counts take none)
    assert {node.op_type for node in graph.nodes if graph.needs_backward(node)} <= set(REGISTRY)
    got = run_blobs(model, inputs)
    assert_blobs_close(got, ref_forward(net, weights, inputs), rel)
    return model, got


# --- prototxt snippets ---------------------------------------------------------------------

def net_text(layers, shapes=((2, 3, 5, 4),), tops=("data",)):
    """A net named "t": an Input layer with ``tops`` of ``shapes``, then ``layers``."""
    shape_text = " ".join("shape { " + " ".join(f"dim: {d}" for d in s) + " }" for s in shapes)
    top_text = " ".join(f'top: "{t}"' for t in tops)
    return (f'name: "t"\nlayer {{ name: "data" type: "Input" {top_text} '
            f"input_param {{ {shape_text} }} }}\n{layers}")


def layer(name, type_, bottoms, tops, params=""):
    """One ``layer { ... }`` block; ``params`` is its ``*_param`` text."""
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in tops)
    return f'layer {{ name: "{name}" type: "{type_}" {b} {t} {params} }}\n'
