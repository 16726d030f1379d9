"""Caffe's ``debug_info``: per layer, the mean |data| of each top in forward and the mean |diff| of
each bottom in backward, logged in Caffe's words and kept as records (``Net.trace``).

    [Forward] Layer conv1, top blob conv1 data: 0.0382
    [Backward] Layer relu7, bottom blob fc7 diff: 0.00114        (+ pass_fraction for ReLUs)

Records are dicts: phase, layer, type, blob, what ("data" / "diff"), mean_abs, and for backward
the rule and, at ReLU-family layers, the fraction of arriving non-zero diffs that passed.
"""
from __future__ import annotations

import logging
import sys

import numpy as np

from caffe_port.kernels import REGISTRY

log = logging.getLogger("caffe_port.debug_info")


def forward_records(graph, nodes, data):
    """Records (and log lines) of the tops of ``nodes`` whose data ``data`` holds."""
    records = []
    for node in nodes:
        for top in node.outputs:
            if top and top in data and graph.is_float(top):
                value = float(np.mean(np.abs(data[top]))) if data[top].size else 0.0
                records.append({"phase": "forward", "layer": node.name, "type": node.op_type,
                                "blob": top, "what": "data", "mean_abs": value})
                log.info("    [Forward] Layer %s, top blob %s data: %g", node.name, top, value)
    return records


def backward_observer(records, rule):
    """A walk observer (caffe_port/walker.py) appending each layer's bottom-diff records."""
    def observe(node, top_diff, bottom_diff):
        relu = REGISTRY[node.op_type].relu_family
        for name, d in zip(node.inputs, bottom_diff):
            if d is None or not name:
                continue
            value = float(np.mean(np.abs(d))) if d.size else 0.0
            record = {"phase": "backward", "layer": node.name, "type": node.op_type, "blob": name,
                      "what": "diff", "mean_abs": value, "rule": rule}
            if relu:
                arriving = int(np.count_nonzero(top_diff[0]))
                record["pass_fraction"] = (int(np.count_nonzero(d)) / arriving) if arriving else 0.0
            records.append(record)
            log.info("    [Backward] Layer %s, bottom blob %s diff: %g", node.name, name, value)
    return observe


def ensure_handler():
    """debug_info prints to stderr as Caffe's glog does, unless the application set up logging."""
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
