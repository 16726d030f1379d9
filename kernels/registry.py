"""ONNX op type → backward kernel: one line per op, for every backend.

The kernel contract, written once. Each file in this package is one layer kind, written as Caffe
writes its layers: a pair of plain functions over numpy arrays,

    <name>_forward(bottom_data, attrs)                                   -> top_data
    <name>_backward(top_diff, bottom_data, top_data, attrs, *, controls) -> bottom_diff

* ``bottom_data`` / ``top_data``: lists indexed like Caffe's ``bottom`` / ``top`` vectors (the
  node's ONNX inputs / outputs, in order). Each entry is an array of shape ``(N, ...)``, or None
  where the runtime did not keep that tensor because the backward does not read it (``Op.bottoms``
  and ``Op.tops`` say which it reads). Constant inputs (weights, biases, shapes, clip bounds) are
  always given, as host numpy arrays.
* ``top_diff``: one entry per output, ``(K, *top_shape)`` or None where no diff reaches that
  output (read it as zeros). The leading ``K`` axis stacks K diffs that share one forward pass
  (K classes of one image): masks, switches and activations are computed once for all K.
* returns ``bottom_diff``: one entry per input, ``(K, *bottom_shape)`` or None for an input that
  takes no diff. A returned diff may be a view of ``top_diff`` only where the file says so.
* ``attrs``: what the layer *is* — the node's ONNX attributes by name (ints, floats, lists,
  strings, numpy arrays) plus three facts of the node: ``opset`` (the model's default-domain
  opset), ``node_name`` (for messages) and ``n_outputs`` (how many outputs the node names).
* keyword-only **controls**: what this *walk* asks. A kernel declares, by name, only those it
  reads; the walker passes only those (``Op.controls``):

      rule            "backprop" | "deconvnet" | "guided" (the ReLU family's three rules)
      propagate_down  tuple of bool per input: which bottoms take a diff (Caffe's vector)
      bottom_shapes   tuple of the inputs' shapes, without K (for bottoms not kept)
      top_shapes      tuple of the outputs' shapes, without K
      in_place        True when nothing else holds ``top_diff``: the kernel may write its bottom
                      diff over it, as Caffe's in-place ReLU does
      out             one entry per input: an array of that input's diff shape and dtype,
                      ``(K, *bottom_shape)``, in memory the walk owns (its buffer pool,
                      caffe_port/diff_pool.py), or None. Its contents are garbage: the kernel
                      writes the whole diff there and returns that array. A kernel declaring
                      ``out`` returns, for every input, that memory or a fresh array — a view of
                      ``top_diff`` only when it runs ``in_place`` (never given ``out`` then)
      out_overlaps_top
                      True when ``out[0]`` is laid over ``top_diff[0]``: it starts at least one
                      image's bottom diff before it, one image's bottom diff being no larger than
                      one image's top diff, and nothing else holds ``top_diff``. The walk does
                      this only for a kernel that declares it, which writes the images (the
                      K·N rows) in order, each after reading its top diff (a convolution's input
                      diff reads a window of the top diff, so it cannot run in place)

The same entry finds the kernel on the device: ``caffe_port.kernels.cuda.<module>`` holds
``<name>_backward`` with the same contract over device arrays (``Op.cuda_backward``), or has none,
and the backend then runs the CPU kernel on host copies.

Forward functions exist for checking (float64 finite differences, ONNX Runtime parity) and for
teaching; the real forward pass runs in ONNX Runtime.

An ``Op`` also says which runtime tensors its backward reads, so the runtime keeps those and only
those: ``bottoms``/``tops`` are input/output positions, or a function of ``propagate_down`` for
the bilinear ops, whose operand diffs each need the *other* operand. Constant inputs (weights,
shapes) are always at hand and cost nothing to list.
"""
from __future__ import annotations

import functools
import importlib
import inspect
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import numpy as np

Positions = Union[Sequence[int], Callable[[Sequence[bool]], Sequence[int]], str]
CONTROLS = ("rule", "propagate_down", "bottom_shapes", "top_shapes", "in_place", "out", "out_overlaps_top")


@dataclass(frozen=True)
class Op:
    module: str                   # file in kernels/, e.g. "relu"
    name: str                     # function prefix: relu -> relu_forward / relu_backward
    bottoms: Positions = ()       # inputs the backward reads ("all" = every input)
    tops: Sequence[int] = ()      # outputs the backward reads
    relu_family: bool = False     # honours the ``rule`` control (backprop / deconvnet / guided)

    def functions(self):
        return _functions(self.module, self.name)

    @property
    def forward(self):
        return self.functions()[0]

    @property
    def backward_kernel(self):
        """The CPU backward function itself."""
        return self.functions()[1]

    @property
    def controls(self) -> frozenset:
        """The walk controls (``CONTROLS``) the backward declares as keyword arguments."""
        return _controls(self.backward_kernel)

    def backward(self, top_diff, bottom_data, top_data, attrs, **controls):
        """Run the CPU backward with the controls it declares (the others are not its business)."""
        return call(self.backward_kernel, top_diff, bottom_data, top_data, attrs, **controls)

    def cuda_backward(self):
        """The device backward of this op (``caffe_port.kernels.cuda.<module>``), or None where
        only the CPU has one. Importing it imports numba.cuda."""
        return _cuda_function(self.module, self.name)

    def bottoms_read(self, propagate_down: Sequence[bool]) -> tuple:
        """Input positions whose data the backward reads, given which inputs take a diff."""
        if callable(self.bottoms):
            return tuple(self.bottoms(propagate_down))
        if self.bottoms == "all":
            return tuple(range(len(propagate_down)))
        return tuple(self.bottoms)


def call(backward, top_diff, bottom_data, top_data, attrs, **controls):
    """Call a backward function (CPU or CUDA) with the controls its signature names."""
    wanted = _controls(backward)
    return backward(top_diff, bottom_data, top_data, attrs,
                    **{k: v for k, v in controls.items() if k in wanted})


def _functions(module, name):
    # looked up on every call (a dict lookup in sys.modules): a kernel patched in its file is the one that runs
    mod = importlib.import_module(f"caffe_port.kernels.{module}")
    return getattr(mod, f"{name}_forward"), getattr(mod, f"{name}_backward")


@functools.lru_cache(maxsize=None)
def _cuda_function(module, name):
    # cached: a CUDA file that does not exist would be searched for on every layer of every walk
    try:
        mod = importlib.import_module(f"caffe_port.kernels.cuda.{module}")
    except ModuleNotFoundError as e:
        if e.name != f"caffe_port.kernels.cuda.{module}":
            raise                        # numba.cuda itself missing is the caller's to report
        return None
    return getattr(mod, f"{name}_backward", None)


def controls_of(backward) -> frozenset:
    """The walk controls a backward function (a kernel, or a backend's route) declares."""
    return _controls(backward)


def _controls(backward) -> frozenset:
    # a faster route is a bound method: its function is what is cached, not the object holding it
    return _declared(getattr(backward, "__func__", backward))


@functools.lru_cache(maxsize=None)
def _declared(backward) -> frozenset:
    parameters = inspect.signature(backward).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return frozenset(CONTROLS)       # a wrapper taking **controls passes them on
    unknown = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.name not in CONTROLS]
    if unknown:
        raise TypeError(f"{backward.__module__}.{backward.__name__} declares {unknown}, which are "
                        f"not walk controls ({', '.join(CONTROLS)})")
    return frozenset(p.name for p in parameters if p.kind is p.KEYWORD_ONLY)


def out_array(out, i, shape, dtype):
    """The memory for input ``i``'s diff: the walk's ``out[i]`` when it has this shape and dtype,
    else a new array."""
    memory = None if out is None or i >= len(out) else out[i]
    if memory is not None and memory.shape == tuple(shape) and memory.dtype == dtype:
        return memory
    return np.empty(shape, dtype)


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
    "HardSwish":          Op("rectifiers", "hard_swish", bottoms=(0,), relu_family=True),
    "Elu":                Op("rectifiers", "elu", bottoms=(0,), relu_family=True),
    "Selu":               Op("rectifiers", "selu", bottoms=(0,), relu_family=True),
    "Celu":               Op("rectifiers", "celu", bottoms=(0,), relu_family=True),
    "Gelu":               Op("rectifiers", "gelu", bottoms=(0,), relu_family=True),
    "Softplus":           Op("rectifiers", "softplus", bottoms=(0,), relu_family=True),
    "Mish":               Op("rectifiers", "mish", bottoms=(0,), relu_family=True),
    "ThresholdedRelu":    Op("rectifiers", "thresholded_relu", bottoms=(0,), relu_family=True),
    # linear layers
    "Conv":               Op("conv", "conv", bottoms=filter_and_input),
    "ConvTranspose":      Op("conv_transpose", "conv_transpose", bottoms=filter_and_input),
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
    "ReduceMax":          Op("reduce", "reduce_max", bottoms=(0,)),
    "ReduceMin":          Op("reduce", "reduce_min", bottoms=(0,)),
    "ReduceL1":           Op("reduce", "reduce_l1", bottoms=(0,)),
    "ReduceL2":           Op("reduce", "reduce_l2", bottoms=(0,)),
    "ReduceSumSquare":    Op("reduce", "reduce_sum_square", bottoms=(0,)),
    "ReduceLogSumExp":    Op("reduce", "reduce_log_sum_exp", bottoms=(0,)),
    # normalisation and smooth nonlinearities
    "LRN":                Op("lrn", "lrn", bottoms=(0,), tops=(0,)),
    "LayerNormalization": Op("normalization", "layer_normalization", bottoms=(0, 1)),
    "InstanceNormalization": Op("normalization", "instance_normalization", bottoms=(0, 1)),
    "GroupNormalization": Op("normalization", "group_normalization", bottoms=(0, 1)),
    "Softmax":            Op("softmax", "softmax", tops=(0,)),
    "LogSoftmax":         Op("softmax", "log_softmax", tops=(0,)),
    "Sigmoid":            Op("sigmoid", "sigmoid", tops=(0,)),
    "HardSigmoid":        Op("sigmoid", "hard_sigmoid", tops=(0,)),
    "Tanh":               Op("tanh", "tanh", tops=(0,)),
    # elementwise functions of one tensor
    "Erf":                Op("unary", "erf", bottoms=(0,)),
    "Exp":                Op("unary", "exp", tops=(0,)),
    "Log":                Op("unary", "log", bottoms=(0,)),
    "Neg":                Op("unary", "neg"),
    "Abs":                Op("unary", "abs", bottoms=(0,)),
    "Reciprocal":         Op("unary", "reciprocal", tops=(0,)),
    "Sqrt":               Op("unary", "sqrt", tops=(0,)),
    "Floor":              Op("unary", "floor"),
    "Ceil":               Op("unary", "ceil"),
    "Round":              Op("unary", "round"),
    "Sign":               Op("unary", "sign"),
    "Cast":               Op("cast", "cast"),
    "CastLike":           Op("cast", "cast_like"),
    # elementwise with broadcasting
    "Add":                Op("elementwise", "add"),
    "Sum":                Op("elementwise", "sum"),
    "Sub":                Op("elementwise", "sub"),
    "Mul":                Op("elementwise", "mul", bottoms=other_operands),
    "Div":                Op("elementwise", "div", bottoms=divisor_reads),
    "Max":                Op("elementwise", "max", bottoms="all", tops=(0,)),
    "Min":                Op("elementwise", "min", bottoms="all", tops=(0,)),
    "Pow":                Op("elementwise", "pow", bottoms=(0, 1), tops=(0,)),
    "Where":              Op("where", "where"),
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
    "Expand":             Op("expand", "expand"),
    "Tile":               Op("expand", "tile"),
    "Gather":             Op("gather", "gather"),
    "GatherElements":     Op("gather", "gather_elements"),
    "GatherND":           Op("gather", "gather_nd"),
    "ScatterND":          Op("gather", "scatter_nd"),
    "ScatterElements":    Op("gather", "scatter_elements"),
    "Resize":             Op("resize", "resize"),
    "Identity":           Op("identity", "identity"),
    "Dropout":            Op("identity", "dropout"),
}


def lookup(op_type: str) -> Op | None:
    return REGISTRY.get(op_type)
