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
15.9 vs 9.9 for 128–512 channels) or the convolution depthwise (ONNX Runtime's ConvTranspose
runs a group at a time: its depthwise Conv was 5–9× faster on EfficientNet-Lite0's layers; at
stride s > 1 the Conv reads the top diff spread out s apart with zeros between), else as
ConvTranspose — a fixed rule (``prefers_flipped``), not a per-run race, so that the same input
gives the same bits in every run. float64 (finite-difference checks), 1-D and
3-D convolutions and weight diffs take the library kernel, which is also the reference this route
is tested against (tests/caffe_port/test_ort_conv.py).

Laid over its top diff (``out_overlaps_top``: the walk's buffer, caffe_port/diff_pool.py, starts
the input diff one image before the top diff it replaces), the images run one call each, in order:
each image's input diff then ends before the next top diff image still to be read, so a chain of
convolutions (VGG16's conv1_2, 98 MB of diff at batch 8) needs one image more than its top diff,
not twice it. (ONNX Runtime refuses a shape at the first call, before anything is written.)

``ConvInputDiff`` is chosen by the CPU backend (caffe_port/backend.py) for Conv layers and owned by
it: its sessions (``caffe_port.ort_sessions.WeightSessions``) hold a copy of the weights, so net
surgery must ``forget`` them (Net does it when it notices a changed weight); a weight that is
garbage-collected takes its sessions with it.
"""
from __future__ import annotations

import numpy as np

from caffe_port.kernels import conv
from caffe_port.kernels.registry import out_array
from caffe_port.ort_sessions import WeightSessions, one_node, run_into

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
        self.sessions = WeightSessions()

    def backward(self, top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes, out=None,
                 out_overlaps_top=False):
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
            memory = out_array(out, 0, (dy.shape[0],) + x_shape, np.float32)
            rows = np.ascontiguousarray(dy).reshape((-1,) + dy.shape[2:])
            behind = _rows_behind(memory, rows, out_overlaps_top)
            if behind == 0:          # over a top diff that is not ours to overwrite
                memory = np.empty_like(memory)
            dx = self._input_diff(rows, weight.astype(np.float32, copy=False), geo, x_shape[1],
                                  memory.reshape((-1,) + x_shape[1:]), behind)
        if dx is None:
            return conv.conv_backward(top_diff, bottom_data, top_data, attrs,
                                      propagate_down=propagate_down, bottom_shapes=bottom_shapes)
        bottom_diff[0] = memory
        return bottom_diff

    def forget(self, weight):
        """Drop every session built from ``weight`` (its values changed)."""
        self.sessions.forget(weight)

    def clear(self):
        self.sessions.clear()

    def _run(self, key, weight, build, x, out, most=None):
        """out (B, …) float32 ← model(x), x (B, …) float32, at most ``most`` rows a call."""
        step = max(1, CHUNK_BYTES // max(1, x[:1].nbytes + out[:1].nbytes))
        return run_into(self.sessions.get(key, weight, build), x, out, min(step, most or step))

    def _input_diff(self, dy, weight, geo, C, dx, most=None):
        """dx (B, C, H, W) ← dX of dy (B, M, OH, OW), at most ``most`` images a call (in order);
        None where ONNX Runtime refuses the shape."""
        (_, kh, kw), (_, sh, sw), (_, dh, dw) = geo.kernel, geo.strides, geo.dilations
        (_, ph, pw), (_, H, W), (_, OH, OW) = geo.begin, geo.spatial, geo.out
        M, G = weight.shape[0], geo.group
        eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
        # the flipped Conv reads the top diff spread to stride 1 (E rows: zeros between), padded
        # eh − 1 − ph before and H − E + ph after so that its output is exactly H×W
        spread = (sh * (OH - 1) + 1, sw * (OW - 1) + 1)
        pads = [eh - 1 - ph, ew - 1 - pw, H - spread[0] + ph, W - spread[1] + pw]
        key = (tuple(weight.shape), G, sh, sw, dh, dw, ph, pw, H, W, OH, OW)
        # (end pads past the kernel's extent: rows the forward never read)
        flipped = (min(pads) >= 0 and pads[2] <= eh - 1 and pads[3] <= ew - 1
                   and prefers_flipped(sh * sw, OH * OW, depthwise=G == C == M))
        if flipped:
            build = lambda: one_node(  # noqa: E731
                "Conv", flip_filters(weight, G, C), ["B", M, None, None], dilations=[dh, dw], group=G,
                pads=pads)
        else:
            # end pads that make ConvTranspose's output exactly H×W (negative: rows the forward never read)
            qh, qw = sh * (OH - 1) + eh - ph - H, sw * (OW - 1) + ew - pw - W
            build = lambda: one_node(  # noqa: E731
                "ConvTranspose", weight, ["B", M, None, None], strides=[sh, sw], dilations=[dh, dw],
                group=G, pads=[ph, pw, max(qh, 0), max(qw, 0)], output_padding=[max(-qh, 0), max(-qw, 0)])
        try:
            if flipped and sh * sw > 1:
                return self._run_spread((key, flipped), weight, build, dy, dx, (sh, sw), spread, most)
            return self._run((key, flipped), weight, build, dy, dx, most)
        except RuntimeError:    # ONNX Runtime disagrees on a shape: the library kernel is the reference
            return None

    def _run_spread(self, key, weight, build, dy, dx, strides, spread, most=None):
        """``_run`` on dy spread to stride 1 (each image's rows and columns ``strides`` apart,
        zeros between), a few images at a time through one zeroed buffer."""
        B, M = dy.shape[:2]
        image = M * spread[0] * spread[1] * 4
        step = max(1, min(most or B, CHUNK_BYTES // max(1, image + dx[:1].nbytes)))
        session = self.sessions.get(key, weight, build)
        spread_dy = np.zeros((min(step, B), M) + spread, np.float32)   # the zeros stay: only the grid is written
        for b0 in range(0, B, step):
            n = min(step, B - b0)
            spread_dy[:n, :, ::strides[0], ::strides[1]] = dy[b0:b0 + n]
            run_into(session, spread_dy[:n], dx[b0:b0 + n])
        return dx


def prefers_flipped(stride_area, pixels, depthwise):
    """The fixed rule choosing the flipped Conv over ConvTranspose (same bits every run): at
    stride 1 on large maps (FLIPPED_MIN_PIXELS), and for a depthwise convolution at any size and
    stride — ONNX Runtime's ConvTranspose runs a group at a time, 5–9× slower there than its
    depthwise Conv (EfficientNet-Lite0's 3×3 and 5×5 layers at 7²–112², stride 1; 1.1–4.8× at
    stride 2 counting the spread copy)."""
    if depthwise:
        return True
    return stride_area == 1 and pixels >= FLIPPED_MIN_PIXELS


def _rows_behind(memory, rows, laid_over):
    """None when ``memory`` and the top diff ``rows`` do not overlap; else how many images of
    the diff may be written at a time, in order, without reaching a row not yet read — 0 when it
    may not be written over at all (not ``laid_over``, or not laid out as the contract says)."""
    if not np.may_share_memory(memory, rows):
        return None
    lead = rows.ctypes.data - memory.ctypes.data       # bytes from the diff's start to the top's
    image = memory.nbytes // rows.shape[0]
    if not laid_over or image > rows[0].nbytes or lead < image:
        return 0
    return lead // image


def flip_filters(weight, G, C):
    """W (M, C/G, kh, kw) → W' (C, M/G, kh, kw), W'[g·C/G + c, m] = W[g·M/G + m, c] rotated 180°."""
    M = weight.shape[0]
    w = weight.reshape(G, M // G, C // G, *weight.shape[2:]).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(w[..., ::-1, ::-1].reshape(C, M // G, *weight.shape[2:]))

