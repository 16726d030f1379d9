"""Calling a kernel the way the walker does, for the kernel tests.

    a = layer(attrs, bottoms, tops, propagate_down=[True, False], rule="guided", opset=13)
    tops = op.forward(bottoms, a.attrs)
    bottom_diff = backward(op, top_diff, bottom_data, top_data, a)

``layer`` splits what the walker hands a kernel into the layer's ``attrs`` (ONNX attributes and
node facts) and the walk's ``controls`` (kernels/registry.py); ``backward`` passes the controls the
kernel declares.
"""
from __future__ import annotations

from typing import NamedTuple

from caffe_port.gradcheck import layer_attrs, walk_controls
from caffe_port.kernels import registry


class Layer(NamedTuple):
    attrs: dict
    controls: dict


def layer(attrs, bottom_data, top_data, propagate_down=None, rule="backprop", opset=17) -> Layer:
    """attrs and controls for a node with these bottoms and tops (their count and shapes)."""
    return Layer(layer_attrs(attrs, opset=opset, n_outputs=max(1, len(top_data))),
                 walk_controls(bottom_data, top_data, propagate_down, rule))


def backward(op, top_diff, bottom_data, top_data, a):
    """A backward — a registry ``Op`` (its CPU kernel) or any backward function — called with the
    controls it declares; ``a`` is a Layer, or a plain attrs dict for a kernel that reads none."""
    attrs, controls = (a.attrs, a.controls) if isinstance(a, Layer) else (a, {})
    if isinstance(op, registry.Op):
        return op.backward(top_diff, bottom_data, top_data, attrs, **controls)
    return registry.call(op, top_diff, bottom_data, top_data, attrs, **controls)
