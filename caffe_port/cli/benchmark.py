"""The bench command: its options and its run are caffe_port.bench's own."""
from __future__ import annotations

from caffe_port import bench


def cmd_bench(args):
    return bench.run_from_args(args)


def add_commands(sub):
    p = sub.add_parser("bench", help="time the backward against PyTorch, five passes and sgemm",
                       description=bench.__doc__.split("\n\n")[0] + " Each configuration runs in a "
                                   "fresh subprocess; see docs/benchmarks.md.")
    bench.add_arguments(p)
    p.set_defaults(func=cmd_bench)
