"""A faster route for the convolution input diff, through ONNX Runtime's own kernels.

The input diff of a convolution is itself a convolution: a ConvTranspose of the top diff with the
same filters, or — at stride 1 — a Conv with the filters flipped and transposed,

    dX = ConvTranspose(dY; W)          = Conv(dY; W'),   W'[g·C/G + c, m] = W[g·M/G + m, c] rotated 180°

and ONNX Runtime's CPU kernels for those run at or above this machine's sgemm rate, where the
library kernel (kernels/conv.py: matmul + col2im, the formula written out) cannot. Measured on
this project's 2-core AMD EPYC (float32, batch 1, input diff only): ConvTranspose beat matmul +
col2im on every layer kind tried, 1.3–3.6× (CaffeNet conv1 11×11 s4 0.86 vs 1.71 ms, grouped conv2
1.2 vs 2.5 ms, EfficientNet 5×5 depthwise 0.40 vs 1.45 ms), and the flipped Conv faster still on
large maps (VGG16 conv1_2 at 224²: 8.9 ms against 17 ms ConvTranspose and 21 ms matmul + col2im).
So a float32 2-D input diff runs as the flipped Conv where that is possible and the map is large
(stride 1, at least FLIPPED_MIN_PIXELS output pixels: 112² 8.1 vs 11.8 ms, 56² 12.0 vs 10.5, 28²
15.9 vs 9.9 for 128–512 channels), else as ConvTranspose — a fixed rule, not a per-run race, so
that the same input gives the same bits in every run. float64 (finite-difference checks), 1-D and
3-D convolutions and weight diffs take the library kernel, which is also the reference this route
is tested against (tests/caffe_port/test_ort_conv.py).

``ConvInputDiff`` is chosen by the CPU backend (caffe_port/backend.py) for Conv layers and owned by
it: its sessions hold a copy of the weights, so net surgery must ``forget`` them (Net does it when
it notices a changed weight); a weight that is garbage-collected takes its sessions with it.
"""
from __future__ import annotations

import weakref

import numba
import numpy as np
import onnxruntime as ort
from onnx import helper, numpy_helper

from caffe_port.kernels import conv
from caffe_port.onnx_util import make_model

FLIPPED_MIN_PIXELS = 100 * 100
# ONNX Runtime's workspace for one call grows with its batch (VGG16's conv1_2 input diff at batch 8
# took 200 MB beside its output, in NCHWc copies), so a large batch runs a few images at a time,
# each written straight into its slice of the output: as fast, at one image's workspace.
CHUNK_BYTES = 16 << 20


class ConvInputDiff:
    """Conv's backward with dX from ONNX Runtime and dW, db (when asked) from the library kernel.

    Called as a kernel (the contract of caffe_port.kernels), with a cache of one-node sessions
    keyed by the weight array they were built from."""

    def __init__(self):
        self._sessions = {}      # (id(weight), layer key) -> InferenceSession
        self._owners = {}        # id(weight) -> weakref to the weight (its death clears its sessions)

    def backward(self, top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
        dy, weight = top_diff[0], bottom_data[1]
        x_shape = tuple(bottom_shapes[0]) if bottom_data[0] is None else bottom_data[0].shape
        rest = list(propagate_down)
        dx = None
        if dy is not None and rest[0] and dy.dtype == np.float32 and len(x_shape) == 4:
            # the library kernel checks the geometry and computes whatever else is asked
            rest[0] = False
            bottom_diff = conv.conv_backward(top_diff, bottom_data, top_data, attrs,
                                             propagate_down=rest, bottom_shapes=bottom_shapes)
            geo = conv.Geometry(x_shape, weight.shape, attrs)
            dx = self._input_diff(np.ascontiguousarray(dy).reshape((-1,) + dy.shape[2:]),
                                  weight.astype(np.float32, copy=False), geo, x_shape[1])
        if dx is None:
            return conv.conv_backward(top_diff, bottom_data, top_data, attrs,
                                      propagate_down=propagate_down, bottom_shapes=bottom_shapes)
        bottom_diff[0] = dx.reshape((dy.shape[0],) + x_shape)
        return bottom_diff

    def forget(self, weight):
        """Drop every session built from ``weight`` (its values changed)."""
        self._drop(id(weight))

    def clear(self):
        self._sessions.clear()
        self._owners.clear()

    # --- sessions ----------------------------------------------------------------------------------

    def _drop(self, weight_id):
        for key in [k for k in self._sessions if k[0] == weight_id]:
            del self._sessions[key]
        self._owners.pop(weight_id, None)

    def _session(self, key, weight, build):
        """The session for (weight, key), built by ``build() -> onnx.ModelProto`` on first use."""
        wid = id(weight)
        owner = self._owners.get(wid)
        if owner is None or owner() is not weight:
            self._drop(wid)
            self._owners[wid] = weakref.ref(weight, _dropper(self, wid))
        full_key = (wid, key)
        if full_key not in self._sessions:
            so = ort.SessionOptions()
            so.log_severity_level = 4      # a refused shape is handled below (RuntimeError), not logged
            so.intra_op_num_threads = numba.get_num_threads()
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            # no arena: one per layer would each keep its largest buffer for the life of the process
            so.enable_cpu_mem_arena = False
            self._sessions[full_key] = ort.InferenceSession(build().SerializeToString(), so,
                                                            providers=["CPUExecutionProvider"])
        return self._sessions[full_key]

    def _run(self, key, weight, build, x, out_shape):
        """y = model(x), x (B, …) float32, into a new (B, …) array of ``out_shape``."""
        sess = self._session(key, weight, build)
        out = np.empty(out_shape, np.float32)
        step = max(1, CHUNK_BYTES // max(1, x[:1].nbytes + out[:1].nbytes))
        binding = sess.io_binding()
        for b0 in range(0, x.shape[0], step):
            x_part, out_part = x[b0:b0 + step], out[b0:b0 + step]
            binding.bind_cpu_input("x", x_part)
            binding.bind_output("y", "cpu", 0, np.float32, list(out_part.shape), out_part.ctypes.data)
            sess.run_with_iobinding(binding)
        return out

    def _input_diff(self, dy, weight, geo, C):
        """dy (B, M, OH, OW) → dX (B, C, H, W), or None where ONNX Runtime refuses the shape."""
        (_, kh, kw), (_, sh, sw), (_, dh, dw) = geo.kernel, geo.strides, geo.dilations
        (_, ph, pw), (_, H, W), (_, OH, OW) = geo.begin, geo.spatial, geo.out
        M, G = weight.shape[0], geo.group
        eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
        # end pads that make ConvTranspose's output exactly H×W (negative: rows the forward never read)
        qh, qw = sh * (OH - 1) + eh - ph - H, sw * (OW - 1) + ew - pw - W
        key = (tuple(weight.shape), G, sh, sw, dh, dw, ph, pw, H, W, OH, OW)
        fh, fw = eh - 1 - ph, ew - 1 - pw          # the flipped Conv's pads
        flipped = (sh == sw == 1 and qh >= 0 and qw >= 0 and OH * OW >= FLIPPED_MIN_PIXELS
                   and min(fh, fw, eh - 1 - qh, ew - 1 - qw) >= 0)
        if flipped:
            build = lambda: _one_node(  # noqa: E731
                "Conv", flip_filters(weight, G, C), M, dilations=[dh, dw], group=G,
                pads=[fh, fw, eh - 1 - qh, ew - 1 - qw])
        else:
            build = lambda: _one_node(  # noqa: E731
                "ConvTranspose", weight, M, strides=[sh, sw], dilations=[dh, dw], group=G,
                pads=[ph, pw, max(qh, 0), max(qw, 0)], output_padding=[max(-qh, 0), max(-qw, 0)])
        try:
            return self._run((key, flipped), weight, build, dy, (dy.shape[0], C, H, W))
        except RuntimeError:    # ONNX Runtime disagrees on a shape: the library kernel is the reference
            return None


def _dropper(cache, weight_id):
    """The callback of a weight's weakref: drop its sessions, without keeping the cache alive."""
    cache = weakref.ref(cache)

    def drop(_ref):
        owner = cache()
        if owner is not None:
            owner._drop(weight_id)
    return drop


def flip_filters(weight, G, C):
    """W (M, C/G, kh, kw) → W' (C, M/G, kh, kw), W'[g·C/G + c, m] = W[g·M/G + m, c] rotated 180°."""
    M = weight.shape[0]
    w = weight.reshape(G, M // G, C // G, *weight.shape[2:]).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(w[..., ::-1, ::-1].reshape(C, M // G, *weight.shape[2:]))


def _one_node(op_type, weight, channels, **attrs):
    x = helper.make_tensor_value_info("x", 1, ["B", channels, None, None])
    node = helper.make_node(op_type, ["x", "w"], ["y"], **attrs)
    graph = helper.make_graph([node], "input_diff", [x], [helper.make_empty_tensor_value_info("y")],
                              initializer=[numpy_helper.from_array(np.ascontiguousarray(weight), "w")])
    return make_model(graph, 13)
