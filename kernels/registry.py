"""ONNX op type → backward kernel: one line per op.

Each kernel file in this package is one layer kind, written as Caffe writes its layers: a pair of
plain functions over numpy arrays,

    <name>_forward(bottom_data, attrs)                      -> top_data
    <name>_backward(top_diff, bottom_data, top_data, attrs) -> bottom_diff

where ``bottom_data``/``top_data`` are lists indexed like Caffe's ``bottom``/``top`` vectors (ONNX
input/output order) and ``top_diff``/``bottom_diff`` likewise. See ``kernels/__init__.py`` for the
full contract (shapes, the stacked ``K`` axis, ``propagate_down``, ``rule``).

An ``Op`` also says which runtime tensors its backward reads, so the runtime keeps those and only
those: ``bottoms``/``tops`` are input/output positions, or a function of ``propagate_down`` for
the bilinear ops, whose operand diffs each need the *other* operand. Constant inputs (weights,
shapes) are always at hand and cost nothing to list.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Sequence, Union

Positions = Union[Sequence[int], Callable[[Sequence[bool]], Sequence[int]], str]


@dataclass(frozen=True)
class Op:
    module: str                   # file in kernels/, e.g. "relu"
    name: str                     # function prefix: relu -> relu_forward / relu_backward
    bottoms: Positions = ()       # inputs the backward reads ("all" = every input)
    tops: Sequence[int] = ()      # outputs the backward reads
    relu_family: bool = False     # honours attrs["rule"] (backprop / deconvnet / guided)

    def functions(self):
        mod = importlib.import_module(f"caffe_port.kernels.{self.module}")
        return getattr(mod, f"{self.name}_forward"), getattr(mod, f"{self.name}_backward")

    @property
    def forward(self):
        return self.functions()[0]

    @property
    def backward(self):
        return self.functions()[1]

    def bottoms_read(self, propagate_down: Sequence[bool]) -> tuple:
        """Input positions whose data the backward reads, given which inputs take a diff."""
        if callable(self.bottoms):
            return tuple(self.bottoms(propagate_down))
        if self.bottoms == "all":
            return tuple(range(len(propagate_down)))
        return tuple(self.bottoms)


def other_operands(propagate_down):
    """Bilinear ops (Gemm, MatMul, Mul): the diff of one operand needs the other one."""
    a, b = (list(propagate_down) + [False, False])[:2]
    return ((1,) if a else ()) + ((0,) if b else ())


def divisor_reads(propagate_down):
    """Div: d/dA needs B; d/dB = -A/B² needs A and B."""
    a, b = (list(propagate_down) + [False, False])[:2]
    return (0, 1) if b else ((1,) if a else ())


def filter_and_input(propagate_down):
    """Conv: dX needs the weights; dW (only when the weights are not constants) needs X."""
    x, w = (list(propagate_down) + [False, False])[:2]
    return ((1,) if x else ()) + ((0,) if w else ())


def scale_reads(propagate_down):
    """BatchNormalization: dX needs scale and var; a scale diff (non-constant scale) also needs x."""
    return (1, 4) + ((0,) if len(propagate_down) > 1 and propagate_down[1] else ())


REGISTRY: dict[str, Op] = {
    # ReLU family: the three rules live here
    "Relu":               Op("relu", "relu", tops=(0,), relu_family=True),
    "LeakyRelu":          Op("relu", "leaky_relu", bottoms=(0,), relu_family=True),
    "PRelu":              Op("relu", "prelu", bottoms=(0, 1), relu_family=True),
    "Clip":               Op("relu", "clip", tops=(0,), relu_family=True),
    # linear layers
    "Conv":               Op("conv", "conv", bottoms=filter_and_input),
    "Gemm":               Op("gemm", "gemm", bottoms=other_operands),
    "MatMul":             Op("matmul", "matmul", bottoms=other_operands),
    "BatchNormalization": Op("batchnorm", "batchnorm", bottoms=scale_reads),
    # pooling
    "MaxPool":            Op("maxpool", "maxpool", bottoms=(0,)),
    "GlobalMaxPool":      Op("maxpool", "global_maxpool", bottoms=(0,)),
    "AveragePool":        Op("avgpool", "avgpool"),
    "GlobalAveragePool":  Op("avgpool", "global_avgpool"),
    "ReduceMean":         Op("reduce", "reduce_mean"),
    "ReduceSum":          Op("reduce", "reduce_sum"),
    # normalisation and smooth nonlinearities
    "LRN":                Op("lrn", "lrn", bottoms=(0,), tops=(0,)),
    "Softmax":            Op("softmax", "softmax", tops=(0,)),
    "LogSoftmax":         Op("softmax", "log_softmax", tops=(0,)),
    "Sigmoid":            Op("sigmoid", "sigmoid", tops=(0,)),
    "Tanh":               Op("tanh", "tanh", tops=(0,)),
    # elementwise with broadcasting
    "Add":                Op("elementwise", "add"),
    "Sum":                Op("elementwise", "sum"),
    "Sub":                Op("elementwise", "sub"),
    "Mul":                Op("elementwise", "mul", bottoms=other_operands),
    "Div":                Op("elementwise", "div", bottoms=divisor_reads),
    "Max":                Op("elementwise", "max", bottoms="all", tops=(0,)),
    "Min":                Op("elementwise", "min", bottoms="all", tops=(0,)),
    "Pow":                Op("elementwise", "pow", bottoms=(0, 1), tops=(0,)),
    # routing and shapes
    "Concat":             Op("concat", "concat"),
    "Split":              Op("split", "split"),
    "Slice":              Op("split", "slice"),
    "Flatten":            Op("shape", "flatten"),
    "Reshape":            Op("shape", "reshape"),
    "Squeeze":            Op("shape", "squeeze"),
    "Unsqueeze":          Op("shape", "unsqueeze"),
    "Transpose":          Op("shape", "transpose"),
    "Pad":                Op("pad", "pad"),
    "Identity":           Op("identity", "identity"),
    "Dropout":            Op("identity", "dropout"),
}


def lookup(op_type: str) -> Op | None:
    return REGISTRY.get(op_type)
