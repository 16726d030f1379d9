"""What to do about an op that has no backward kernel: the nearest supported alternative.

An unsupported op is refused in one line naming it, its node and this advice (errors.py's
``UnsupportedOpError``). The table holds what is known about the ops people meet in exported
classifiers; any other op gets the closest registered name, or the way to add a kernel.
"""
from __future__ import annotations

import difflib

from caffe_port.kernels import REGISTRY

ORT_OPTIMISED = ("the graph was saved after ONNX Runtime's graph optimisations, which fuse standard ops "
                 "into com.microsoft ones: use the file as the exporter wrote it")
QUANTISED = "a quantised model has no useful input gradient: use the float model it was quantised from"
ADVICE = {
    "Upsample": "Resize (re-export at opset ≥ 10, where Upsample became Resize)",
    "Einsum": "MatMul with Transpose/Reshape (write the einsum as matmul before export)",
    "MeanVarianceNormalization": "InstanceNormalization or LayerNormalization",
    "LpNormalization": "ReduceL2 and Div (normalise with x / x.norm(dim) before export)",
    "Softsign": "Tanh or Softplus",
    "TopK": "ReduceMax (a top-1), or GatherElements with indices computed outside the graph",
    "DepthToSpace": "Reshape and Transpose (write pixel_shuffle as view/permute before export)",
    "SpaceToDepth": "Reshape and Transpose (write the space-to-depth as view/permute before export)",
    "Trilu": "Where or Mul with a constant mask",
    "CumSum": "MatMul with a constant triangular matrix",
    "Loop": "a graph without control flow (export at a fixed input size, so the exporter unrolls it)",
    "If": "a graph without control flow (export at a fixed input size, so the branch folds away)",
    "Scan": "a graph without control flow (export at a fixed input size, so the exporter unrolls it)",
    "LSTM": "none: recurrent layers are outside this library's CNN layers",
    "GRU": "none: recurrent layers are outside this library's CNN layers",
    "RNN": "none: recurrent layers are outside this library's CNN layers",
    "QuantizeLinear": QUANTISED, "DequantizeLinear": QUANTISED, "QLinearConv": QUANTISED,
    "QLinearMatMul": QUANTISED, "ConvInteger": QUANTISED, "MatMulInteger": QUANTISED,
    "DynamicQuantizeLinear": QUANTISED,
    "RandomNormalLike": "none: export in eval mode, where no random op is left",
    "RandomUniformLike": "none: export in eval mode, where no random op is left",
}


def advice(op_type: str, domain: str = "") -> str:
    """One phrase: the nearest supported alternative to ``op_type`` (in ``domain``)."""
    if domain not in ("", "ai.onnx"):
        if domain == "com.microsoft":
            return ORT_OPTIMISED
        return f"an op of the custom domain {domain!r}, which only its own runtime knows: export with standard ONNX ops"
    if op_type in ADVICE:
        return ADVICE[op_type]
    close = difflib.get_close_matches(op_type, list(REGISTRY), n=1, cutoff=0.6)
    if close:
        return close[0]
    return "none close: a backward for it is one file in kernels/ and one line in kernels/registry.py"
