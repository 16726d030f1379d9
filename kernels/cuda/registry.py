"""ONNX op type → CUDA backward kernel: one line per op, mirroring kernels/registry.py.

Each entry names a file of this package and the function prefix: ("relu", "leaky_relu") is
``caffe_port.kernels.cuda.relu.leaky_relu_backward``. Which tensors a backward reads is the CPU
registry's business (the runtime keeps the same ones for both); a CUDA kernel follows the CPU
contract (kernels/__init__.py) with device arrays in place of numpy arrays — see this package's
``__init__``. An op missing here runs its CPU kernel on host copies (caffe_port/gpu.py).
"""
from __future__ import annotations

import importlib

REGISTRY: dict[str, tuple[str, str]] = {
    # ReLU family: the three rules live here
    "Relu":               ("relu", "relu"),
    "LeakyRelu":          ("relu", "leaky_relu"),
    "PRelu":              ("relu", "prelu"),
    "Clip":               ("relu", "clip"),
    # linear layers
    "Conv":               ("conv", "conv"),
    "Gemm":               ("gemm", "gemm"),
    "MatMul":             ("matmul", "matmul"),
    "BatchNormalization": ("batchnorm", "batchnorm"),
    # pooling
    "MaxPool":            ("maxpool", "maxpool"),
    "GlobalMaxPool":      ("maxpool", "global_maxpool"),
    "AveragePool":        ("avgpool", "avgpool"),
    "GlobalAveragePool":  ("avgpool", "global_avgpool"),
    "ReduceMean":         ("reduce", "reduce_mean"),
    "ReduceSum":          ("reduce", "reduce_sum"),
    # normalisation and smooth nonlinearities
    "LRN":                ("lrn", "lrn"),
    "Softmax":            ("softmax", "softmax"),
    "LogSoftmax":         ("softmax", "log_softmax"),
    "Sigmoid":            ("sigmoid", "sigmoid"),
    "Tanh":               ("tanh", "tanh"),
    # elementwise with broadcasting
    "Add":                ("elementwise", "add"),
    "Sum":                ("elementwise", "sum"),
    "Sub":                ("elementwise", "sub"),
    "Mul":                ("elementwise", "mul"),
    "Div":                ("elementwise", "div"),
    "Max":                ("elementwise", "max"),
    "Min":                ("elementwise", "min"),
    "Pow":                ("elementwise", "pow"),
    # routing and shapes
    "Concat":             ("concat", "concat"),
    "Split":              ("split", "split"),
    "Slice":              ("split", "slice"),
    "Flatten":            ("shape", "flatten"),
    "Reshape":            ("shape", "reshape"),
    "Squeeze":            ("shape", "squeeze"),
    "Unsqueeze":          ("shape", "unsqueeze"),
    "Transpose":          ("shape", "transpose"),
    "Pad":                ("pad", "pad"),
    "Identity":           ("identity", "identity"),
    "Dropout":            ("identity", "dropout"),
}


def backward(op_type: str):
    """The CUDA backward function of ``op_type``, or None when only the CPU has one."""
    entry = REGISTRY.get(op_type)
    if entry is None:
        return None
    module = importlib.import_module(f"caffe_port.kernels.cuda.{entry[0]}")
    return getattr(module, f"{entry[1]}_backward")
