"""``caffe-port bench``: what the backward pass costs, against peers measured in the same run.

Every ratio is between two things timed on the same machine, in the same run, with the same thread
count: caffe_port against PyTorch autograd on the same ONNX graph and weights, one stacked
backward of the top-5 classes against five separate passes, the backward's arithmetic rate
against numpy's float32 matmul. ``measure`` says how each number is taken.

    run         the whole run: configurations, peers, ratios, start-up → one JSON-ready result
    workers     each measurement in a fresh interpreter
    measure     one configuration, the PyTorch peer, sgemm (inside a worker)
    flops       FLOPs counted from the graph; the per-layer profiled backward
    memory      resident memory and its high-water mark
    threads     one thread count for ONNX Runtime, Numba, BLAS and PyTorch
    startup     import time and `caffe-port saliency` wall time
    stats       median, range, quartiles
    torch_peer  the PyTorch peer: the ONNX graph run by torch functions (torch optional)
    report      the tables; the result as JSON, saved and read back
    plot        the bar chart (matplotlib optional)
    command     the options, and what they run

Importing the package loads only the standard library; numpy, ONNX Runtime, torch and matplotlib
load inside the functions that use them.
"""
import argparse
import sys

from caffe_port.bench.command import add_arguments, run_from_args
from caffe_port.errors import CaffePortError

__all__ = ["add_arguments", "run_from_args", "main"]


def main(argv=None) -> int:
    """``tools/bench_backward.py``: the options of ``caffe-port bench``, errors as one line."""
    parser = argparse.ArgumentParser(prog="bench_backward", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except CaffePortError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
