"""One-node ONNX Runtime sessions built from a layer's weight: what the CPU backend's faster routes
(``caffe_port/ort_conv.py``, ``caffe_port/ort_linear.py``) run their input diffs on.

``WeightSessions`` caches them by the identity of the weight array they were built from (each holds
its own copy of the weight): net surgery must ``forget`` a weight written in place (Net does it when
it notices a changed weight), and a weight that is garbage-collected takes its sessions with it.
Every session runs with ONNX Runtime's intra-op workers told not to spin (the Numba kernels need the
cores right after; see caffe_port/kernels/threading_layer.py), and all of them take their working
memory from one arena registered with ONNX Runtime's environment (``shared_arena``): an arena per
layer would each keep its largest buffer for the life of the process, and none at all left the
workspaces to glibc, which kept the freed ones in its heap — VGG16's conv3 input diffs at batch 8
(ConvTranspose's column buffers) grew the resident set by 90 MB a layer, 280 MB over three calls
of one layer. The shared arena grows to the largest single call's workspace and is reused by the
next layer.
"""
from __future__ import annotations

import weakref

import numba
import numpy as np
import onnxruntime as ort
from onnx import helper, numpy_helper

from caffe_port.onnx_util import make_model


class WeightSessions:
    """InferenceSessions keyed by (weight array, layer key), built on first use."""

    def __init__(self):
        self._sessions = {}      # (id(weight), layer key) -> InferenceSession
        self._owners = {}        # id(weight) -> weakref to the weight (its death clears its sessions)

    def __len__(self):
        return len(self._sessions)

    def weights(self) -> int:
        """How many weight arrays have sessions here."""
        return len(self._owners)

    def get(self, key, weight, build):
        """The session for (weight, key), built by ``build() -> onnx.ModelProto`` on first use."""
        wid = id(weight)
        owner = self._owners.get(wid)
        if owner is None or owner() is not weight:
            self.drop(wid)
            self._owners[wid] = weakref.ref(weight, _dropper(self, wid))
        full_key = (wid, key)
        if full_key not in self._sessions:
            so = ort.SessionOptions()
            so.log_severity_level = 4      # a refused shape is the caller's RuntimeError, not a log line
            so.intra_op_num_threads = numba.get_num_threads()
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            if shared_arena():
                so.add_session_config_entry("session.use_env_allocators", "1")
            else:
                so.enable_cpu_mem_arena = False
            self._sessions[full_key] = ort.InferenceSession(build().SerializeToString(), so,
                                                            providers=["CPUExecutionProvider"])
        return self._sessions[full_key]

    def forget(self, weight):
        """Drop every session built from ``weight`` (its values changed)."""
        self.drop(id(weight))

    def drop(self, weight_id):
        for key in [k for k in self._sessions if k[0] == weight_id]:
            del self._sessions[key]
        self._owners.pop(weight_id, None)

    def clear(self):
        self._sessions.clear()
        self._owners.clear()


_ARENA = []


def shared_arena() -> bool:
    """Register, once per process, a CPU arena with ONNX Runtime's environment that grows by
    what each allocation asks (not by powers of two); True when one is there for sessions that
    opt in with ``session.use_env_allocators``."""
    if not _ARENA:
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        # max_mem 0 (no limit), arena_extend_strategy 1 (kSameAsRequested), defaults for the rest
        try:
            ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 1, -1, -1))
            _ARENA.append(True)
        except Exception:           # ONNX Runtime's own exception types: a build without it
            _ARENA.append(False)
    return _ARENA[0]


def _dropper(cache, weight_id):
    """The callback of a weight's weakref: drop its sessions, without keeping the cache alive."""
    cache = weakref.ref(cache)

    def drop(_ref):
        owner = cache()
        if owner is not None:
            owner.drop(weight_id)
    return drop


def run_into(session, x, out, step=None):
    """out[b0:b0+step] = session(x[b0:b0+step]) for each chunk of ``step`` rows (default: all),
    float32 input "x" and output "y", written straight into ``out`` through IOBinding."""
    step = step or max(1, x.shape[0])
    binding = session.io_binding()
    for b0 in range(0, x.shape[0], step):
        x_part, out_part = x[b0:b0 + step], out[b0:b0 + step]
        binding.bind_cpu_input("x", x_part)
        binding.bind_output("y", "cpu", 0, np.float32, list(out_part.shape), out_part.ctypes.data)
        session.run_with_iobinding(binding)
    return out


def one_node(op_type, weight, x_shape, **attrs):
    """A model y = op_type(x, w) with ``weight`` as the initializer w and x of ``x_shape`` (None or
    a name for a free dimension)."""
    x = helper.make_tensor_value_info("x", 1, list(x_shape))
    node = helper.make_node(op_type, ["x", "w"], ["y"], **attrs)
    graph = helper.make_graph([node], "input_diff", [x], [helper.make_empty_tensor_value_info("y")],
                              initializer=[numpy_helper.from_array(np.ascontiguousarray(weight), "w")])
    return make_model(graph, 13)
