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
        so.log_severity_level = 4      # a refused shape is the caller's to handle (RuntimeError), not a log line
        so.intra_op_num_threads = numba.get_num_threads()
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # no arena: one per layer would each keep its largest buffer for the life of the process
        so.enable_cpu_mem_arena = False
        _sessions[full_key] = ort.InferenceSession(build().SerializeToString(), so,
                                                   providers=["CPUExecutionProvider"])
    return _sessions[full_key]


# ONNX Runtime's workspace for one call grows with its batch (VGG16's conv1_2 input diff at batch 8
# took 200 MB beside its output, in NCHWc copies), so a large batch runs a few images at a time,
# each written straight into its slice of the output: as fast, at one image's workspace.
CHUNK_BYTES = 16 << 20


def run(key, weight, build, x, out_shape):
    """y = model(x), x (B, …) float32, into a new (B, …) array of ``out_shape``."""
    sess = session(key, weight, build)
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(out_shape, np.float32)
    step = max(1, CHUNK_BYTES // max(1, x[:1].nbytes + out[:1].nbytes))
    binding = sess.io_binding()
    for b0 in range(0, x.shape[0], step):
        x_part, out_part = x[b0:b0 + step], out[b0:b0 + step]
        binding.bind_cpu_input("x", x_part)
        binding.bind_output("y", "cpu", 0, np.float32, list(out_part.shape), out_part.ctypes.data)
        sess.run_with_iobinding(binding)
    return out
