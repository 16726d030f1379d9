"""One-node ONNX models and an ONNX Runtime runner: the kernel tests' forward oracle."""
from __future__ import annotations

import numpy as np
from onnx import helper

from caffe_port.gradcheck import layer_attrs
from caffe_port.kernels import REGISTRY
from caffe_port.onnx_util import initializer, make_model, tensor_value_info


def one_node_model(op_type, inputs, attrs=None, *, n_outputs=1, opset=17, constants=(), domain=""):
    """A model of one node. ``inputs``: list of (name, array); names in ``constants`` become
    initializers, the rest graph inputs. Outputs are named y0, y1, …"""
    ins, inits = [], []
    for name, arr in inputs:
        if name == "":
            continue
        arr = np.asarray(arr)
        if name in constants:
            inits.append(initializer(name, arr))
        else:
            ins.append(tensor_value_info(name, arr.shape, arr.dtype))
    outs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, [n for n, _ in inputs], outs, domain=domain, **(attrs or {}))
    out_info = [helper.make_empty_tensor_value_info(o) for o in outs]
    graph = helper.make_graph([node], f"one_{op_type}", ins, out_info, initializer=inits)
    return make_model(graph, opset)


def run_onnxruntime(model, feeds):
    """Run a model on ONNX Runtime's CPU provider; returns the list of outputs."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def forward_pair(op_type, bottoms, attrs=None, *, constant=None, opset=17, n_outputs=1):
    """(ours, ONNX Runtime's) forward of one node on ``bottoms`` (inputs x0, x1, …; None for an
    omitted optional input). ``constant``: which positions are initializers (default: all but
    the first)."""
    constant = set(range(1, len(bottoms)) if constant is None else constant)
    names = ["" if b is None else f"x{i}" for i, b in enumerate(bottoms)]
    inputs = [(name, b) for name, b in zip(names, bottoms)]
    model = one_node_model(op_type, inputs, attrs, n_outputs=n_outputs, opset=opset,
                           constants=[names[i] for i in constant])
    feeds = {names[i]: b for i, b in enumerate(bottoms) if b is not None and i not in constant}
    expected = run_onnxruntime(model, feeds)
    got = REGISTRY[op_type].forward(list(bottoms), layer_attrs(attrs, opset=opset, n_outputs=n_outputs))
    return got, expected
