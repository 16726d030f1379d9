"""ONNX Runtime's own kernels as a fast path for the heavy linear diffs.

The input diff of a convolution is itself a convolution (a ConvTranspose, or — at stride 1 — a
Conv with the filters flipped and transposed), and ONNX Runtime's CPU kernels for those run at or
above this machine's sgemm rate, where matmul + col2im cannot (measured in the conv kernel's
docstring). A kernel file builds a one-node model for its layer, and this module keeps the session,
keyed by the weight array it was built from:

    run(key, weight, build, x)   the session for ``key`` (built once by ``build()``), run on x

Sessions hold a copy of the weights, so a weight written in place (net surgery) must be forgotten:
``forget(weight)`` drops every session built from that array (Net does it when it notices the
change); a weight that is garbage-collected takes its sessions with it.
"""
from __future__ import annotations

import weakref

import numpy as np

_sessions: dict = {}          # (id(weight), key) -> session
_owners: dict = {}            # id(weight) -> weakref to the weight (its death clears its sessions)


def _drop(weight_id):
    for k in [k for k in _sessions if k[0] == weight_id]:
        del _sessions[k]
    _owners.pop(weight_id, None)


def forget(weight):
    """Drop every session built from ``weight`` (its values changed)."""
    _drop(id(weight))


def session(key, weight, build):
    """The cached session for (weight, key), built by ``build() -> onnx.ModelProto`` on first use."""
    wid = id(weight)
    owner = _owners.get(wid)
    if owner is None or owner() is not weight:
        _drop(wid)
        _owners[wid] = weakref.ref(weight, lambda _ref, wid=wid: _drop(wid))
    full_key = (wid, key)
    if full_key not in _sessions:
        import numba
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = numba.get_num_threads()
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # no arena: one per layer would each keep its largest buffer for the life of the process
        so.enable_cpu_mem_arena = False
        _sessions[full_key] = ort.InferenceSession(build().SerializeToString(), so,
                                                   providers=["CPUExecutionProvider"])
    return _sessions[full_key]


def run(key, weight, build, x):
    return session(key, weight, build).run(None, {"x": np.ascontiguousarray(x)})[0]
