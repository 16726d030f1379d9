"""Identity and Dropout at inference: y = x, so bottom_diff = top_diff (Caffe's Dropout in TEST
phase passes data and diff through unchanged).

Dropout's forms: ``ratio`` (and before opset 7 ``is_test``) attributes, optional ``ratio`` and
``training_mode`` inputs from opset 12, and an optional second output, the mask, which is all
ones at inference and never carries a diff. A constant ``training_mode`` of True would make ONNX
Runtime drop units at random, which this inference-only backward cannot follow: it is refused.

Shapes: x (N, …); top_diff[0] (K, *x.shape); bottom_diff (K, *x.shape), a fresh array (never
top_diff itself), so the walker may accumulate into it in place.
"""
import numpy as np

from caffe_port.errors import ModelError


def _pass_through(top_diff, pd):
    return [top_diff[0].copy() if pd[0] else None] + [None] * (len(pd) - 1)


# --- Identity: y = x ------------------------------------------------------------------------------

def identity_forward(bottom_data, attrs):
    return [bottom_data[0].copy()]


def identity_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down):
    return _pass_through(top_diff, propagate_down)


# --- Dropout (inference): y = x, mask = 1 ---------------------------------------------------------

def refuse_training(bottom_data):
    training = bottom_data[2] if len(bottom_data) > 2 else None
    if training is not None and bool(np.asarray(training).reshape(-1)[0]):
        raise ModelError("Dropout: training_mode is True; only inference-mode Dropout "
                         "(an identity) has a backward here")


def dropout_forward(bottom_data, attrs):
    """Returns the mask as a second top when the node has two (attrs["n_outputs"] == 2):
    all ones as the spec and its reference implementation have it at inference, bool from opset
    10, the input's type before. (ONNX Runtime 1.31 fills it with zeros for opsets 7–11; nothing
    reads it.)"""
    refuse_training(bottom_data)
    x = bottom_data[0]
    top = [x.copy()]
    if int(attrs.get("n_outputs", 1)) > 1:
        mask_type = bool if attrs.get("opset", 17) >= 10 else x.dtype
        top.append(np.ones(x.shape, dtype=mask_type))
    return top


def dropout_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down):
    refuse_training(bottom_data)
    return _pass_through(top_diff, propagate_down)
