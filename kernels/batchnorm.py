"""BatchNormalization in inference mode (ONNX opsets 1–15): a per-channel affine map.

With x (N, C, *S) and constant parameters scale, B, mean, var along axis 1 (shape (C,); with
``spatial=0``, opset < 9, one per activation: (C, *S), or C·prod(S) flat):

    y = scale · (x − mean) / sqrt(var + epsilon) + B

so the backward is a per-channel (per-activation) scaling of the stacked top diff dY (K, N, C, *S):

    dX = dY · scale / sqrt(var + epsilon)                        (K, N, C, *S)

and, only if ``propagate_down`` asks, dscale = Σ dY · (x − mean)/sqrt(var + epsilon) and dB = Σ dY,
summed over the axes the parameter was broadcast along. Training-mode batch normalization
normalises by batch statistics, a different function, and is refused with a ModelError: opset ≥ 14
``training_mode=1``; opsets 7–13 with more than the one output Y (the spec's training case, and
what ONNX Runtime then computes); opset < 7 ``is_test=0`` (the default); mean/var computed in the
graph. Extra outputs of opset < 7 test mode (running and saved statistics) take no diff.
"""
import numpy as np

from caffe_port.errors import ModelError

from .elementwise import reduce_to


def node_label(attrs):
    return attrs.get("node_name") or "BatchNormalization"


def check_mode(attrs):
    opset = int(attrs.get("opset", 15))
    if int(attrs.get("training_mode", 0)):
        raise ModelError(f"BatchNormalization node {node_label(attrs)!r}: training_mode=1 (batch "
                         "statistics) is not supported; export the model in inference mode")
    if opset < 7 and not int(attrs.get("is_test", 0)):
        raise ModelError(f"BatchNormalization node {node_label(attrs)!r}: opset {opset} with "
                         "is_test=0 means training mode (batch statistics); export with is_test=1")
    outputs = int(attrs.get("n_outputs", 1))
    if 7 <= opset < 14 and outputs > 1:
        # Opsets 7–13 choose the mode by the outputs: with the statistics outputs present, ONNX
        # Runtime normalises by the batch's own mean and variance.
        raise ModelError(f"BatchNormalization node {node_label(attrs)!r}: {outputs} outputs at opset "
                         f"{opset} mean training mode (batch statistics); keep only output Y")


def check_constant_statistics(bottom_data, attrs, propagate_down):
    propagate_down = list(propagate_down) + [False] * 5
    if any(bottom_data[i] is None or propagate_down[i] for i in (3, 4)):
        raise ModelError(f"BatchNormalization node {node_label(attrs)!r}: mean and variance must be "
                         "constants (inference mode), not tensors computed in the graph")


def broadcastable(param, x_shape, attrs):
    """A parameter as an array broadcasting against x (N, C, *S) along axis 1, or per activation."""
    param = np.asarray(param)
    C, rest = x_shape[1], tuple(x_shape[2:])
    if param.size == C:
        return param.reshape((C,) + (1,) * len(rest))
    if not int(attrs.get("spatial", 1)) and param.size == C * int(np.prod(rest, dtype=np.int64)):
        return param.reshape((C,) + rest)
    raise ModelError(f"BatchNormalization node {node_label(attrs)!r}: parameter of shape {param.shape} "
                     f"does not fit input {tuple(x_shape)} "
                     f"(spatial={int(attrs.get('spatial', 1))})")


def inverse_std(bottom_data, x_shape, attrs, dtype):
    """1 / sqrt(var + epsilon), broadcastable against x, in x's dtype."""
    var = broadcastable(bottom_data[4], x_shape, attrs).astype(dtype, copy=False)
    return dtype.type(1) / np.sqrt(var + dtype.type(attrs.get("epsilon", 1e-5)))


def batchnorm_forward(bottom_data, attrs):
    """bottom_data = [x (N, C, *S), scale, B, mean, var] → [y (N, C, *S)]."""
    check_mode(attrs)
    x = bottom_data[0]
    dtype = x.dtype
    scale, bias, mean = (broadcastable(p, x.shape, attrs).astype(dtype, copy=False)
                         for p in bottom_data[1:4])
    return [(x - mean) * (scale * inverse_std(bottom_data, x.shape, attrs, dtype)) + bias]


def batchnorm_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    """top_diff [dY (K, N, C, *S), ...]
    → [dX (K, N, C, *S), dscale or None, dB or None, None, None]."""
    check_mode(attrs)
    check_constant_statistics(bottom_data, attrs, propagate_down)
    dy = top_diff[0]
    bottom_diff = [None] * len(bottom_data)
    if dy is None:
        return bottom_diff
    propagate_down = list(propagate_down) + [False] * 5
    dtype = dy.dtype
    x_shape = tuple(bottom_shapes[0]) if bottom_data[0] is None else bottom_data[0].shape
    inv_std = inverse_std(bottom_data, x_shape, attrs, dtype)
    shapes = [bottom_shapes[i] if bottom_data[i] is None else np.shape(bottom_data[i])
              for i in (1, 2)]
    if propagate_down[0]:
        scale = broadcastable(bottom_data[1], x_shape, attrs).astype(dtype, copy=False)
        bottom_diff[0] = dy * (scale * inv_std)
    if propagate_down[1]:
        if bottom_data[0] is None:
            raise ValueError(f"BatchNormalization node {node_label(attrs)!r}: the scale diff needs the "
                             "input x, which the runtime did not keep")
        mean = broadcastable(bottom_data[3], x_shape, attrs).astype(dtype, copy=False)
        x_hat = (bottom_data[0].astype(dtype, copy=False) - mean) * inv_std
        bottom_diff[1] = reduce_to(dy * x_hat, inv_std.shape).reshape((-1,) + tuple(shapes[0]))
    if propagate_down[2]:
        bottom_diff[2] = reduce_to(dy, inv_std.shape).reshape((-1,) + tuple(shapes[1]))
    return bottom_diff
