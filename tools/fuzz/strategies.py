"""Hypothesis strategies: one per reader, each drawing a whole case ({file name: bytes}).

Two kinds of mutation, mixed in every strategy:

* structure-aware: a valid input built from parts (an ONNX graph, a Caffe net, a blob, a torch
  pickle, an encoded image) with the fields the reader interprets drawn from values that are
  valid, odd or impossible — zero and negative sizes, strides, dilations, groups and pads, huge
  dimensions, wrong dtypes, dangling names, cycles, NaN weights, shapes that disagree with data;
* byte-level: the serialised file then flipped, truncated, spliced or extended (``mutated``).
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from caffe_port.models import caffe_proto, pth_reader
from caffe_port.onnx_util import make_model

# --- values --------------------------------------------------------------------------------------

HUGE = (2**31 - 1, 2**32 - 1, 2**40, 100_000, 65_536, 2**63 - 1)
# sizes as a reader meets them: mostly small and valid, often 0 or negative, sometimes huge
sizes = st.one_of(st.integers(1, 9), st.integers(1, 9), st.sampled_from((0, -1, -2)),
                  st.sampled_from(HUGE))
unsigned = st.one_of(st.integers(0, 9), st.integers(0, 9), st.sampled_from((2**31 - 1, 2**32 - 1,
                                                                            100_000, 65_536)))
# True for one case in four (sampled_from draws evenly, where small integers come first)
sometimes = st.sampled_from((False, False, False, True))
rarely = st.sampled_from((False,) * 9 + (True,))
floats = st.one_of(st.floats(-3, 3, allow_nan=False), st.sampled_from(
    (0.0, -0.0, 1e-30, 1e30, -1e30, float("nan"), float("inf"), float("-inf"))))


def mutated(data: bytes, draw, most=6) -> bytes:
    """``data`` with a few byte-level edits: flips, interesting bytes, cuts, splices, tails."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, most))):
        if not data:
            data += draw(st.binary(min_size=1, max_size=16))
            continue
        at = draw(st.integers(0, len(data) - 1))
        edit = draw(st.sampled_from(("flip", "byte", "cut", "truncate", "insert", "repeat")))
        if edit == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "byte":
            data[at] = draw(st.sampled_from((0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE)))
        elif edit == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif edit == "truncate":
            del data[at:]
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        else:
            data[at:at] = data[at:at + draw(st.integers(1, 64))]
    return bytes(data)


# --- ONNX ----------------------------------------------------------------------------------------

def _w(rng, *shape):
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32))


def _named(tensor, name):
    tensor.name = name
    return tensor


def seed_graphs():
    """Small valid graphs covering the ops the backward supports."""
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 8, 8])
    prob = helper.make_tensor_value_info("prob", TensorProto.FLOAT, None)
    chain = helper.make_graph([
        helper.make_node("Conv", ["data", "w1", "b1"], ["conv1"], name="conv1", pads=[1, 1, 1, 1],
                         strides=[1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
        helper.make_node("MaxPool", ["relu1"], ["pool1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("LRN", ["pool1"], ["norm1"], name="norm1", size=3, alpha=1e-4, beta=0.75),
        helper.make_node("Flatten", ["norm1"], ["flat"], name="flat", axis=1),
        helper.make_node("Gemm", ["flat", "w2", "b2"], ["fc"], name="fc", transB=1),
        helper.make_node("Softmax", ["fc"], ["prob"], name="prob", axis=1)],
        "chain", [x], [prob], initializer=[_named(_w(rng, 4, 3, 3, 3), "w1"),
                                          _named(_w(rng, 4), "b1"),
                                          _named(_w(rng, 5, 64), "w2"), _named(_w(rng, 5), "b2")])
    residual = helper.make_graph([
        helper.make_node("Conv", ["data", "w1"], ["conv1"], name="conv1", pads=[1, 1, 1, 1],
                         group=3, dilations=[1, 1]),
        helper.make_node("BatchNormalization", ["conv1", "g", "b", "m", "v"], ["bn1"], name="bn1",
                         epsilon=1e-5),
        helper.make_node("Add", ["bn1", "data"], ["sum"], name="sum"),
        helper.make_node("Clip", ["sum", "lo", "hi"], ["relu"], name="relu"),
        helper.make_node("AveragePool", ["relu"], ["pool"], name="pool", kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0),
        helper.make_node("GlobalAveragePool", ["pool"], ["gap"], name="gap"),
        helper.make_node("Reshape", ["gap", "shape"], ["flat"], name="flat"),
        helper.make_node("MatMul", ["flat", "w2"], ["mm"], name="mm"),
        helper.make_node("Softmax", ["mm"], ["prob"], name="prob", axis=-1)],
        "residual", [x], [prob], initializer=[
            _named(_w(rng, 3, 1, 3, 3), "w1"), _named(_w(rng, 3), "g"), _named(_w(rng, 3), "b"),
            _named(_w(rng, 3), "m"),
            _named(numpy_helper.from_array(np.ones(3, np.float32)), "v"),
            _named(numpy_helper.from_array(np.float32(0)), "lo"),
            _named(numpy_helper.from_array(np.float32(6)), "hi"),
            _named(numpy_helper.from_array(np.array([0, -1], np.int64)), "shape"),
            _named(_w(rng, 3, 4), "w2")])
    branches = helper.make_graph([
        helper.make_node("Conv", ["data", "w1"], ["a"], name="a", kernel_shape=[1, 1]),
        helper.make_node("Conv", ["data", "w2"], ["b"], name="b", kernel_shape=[3, 3],
                         auto_pad="SAME_UPPER"),
        helper.make_node("Concat", ["a", "b"], ["cat"], name="cat", axis=1),
        helper.make_node("Sigmoid", ["cat"], ["sig"], name="sig"),
        helper.make_node("Pad", ["sig", "pads"], ["padded"], name="padded", mode="constant"),
        helper.make_node("Slice", ["padded", "starts", "ends", "axes"], ["sliced"], name="sliced"),
        helper.make_node("Transpose", ["sliced"], ["t"], name="t", perm=[0, 1, 3, 2]),
        helper.make_node("ReduceMean", ["t"], ["mean"], name="mean", axes=[2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "scale"], ["scaled"], name="scaled"),
        helper.make_node("Tanh", ["scaled"], ["prob"], name="prob")],
        "branches", [x], [prob], initializer=[
            _named(_w(rng, 2, 3, 1, 1), "w1"), _named(_w(rng, 3, 3, 3, 3), "w2"),
            _named(numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)), "pads"),
            _named(numpy_helper.from_array(np.array([1, 1], np.int64)), "starts"),
            _named(numpy_helper.from_array(np.array([9, 9], np.int64)), "ends"),
            _named(numpy_helper.from_array(np.array([2, 3], np.int64)), "axes"),
            _named(_w(rng, 5), "scale")])
    return [make_model(g, 13) for g in (chain, residual, branches)]


ATTRIBUTES = ("kernel_shape", "strides", "pads", "dilations", "group", "axis", "axes", "perm",
              "alpha", "beta", "size", "bias", "transA", "transB", "epsilon", "auto_pad",
              "count_include_pad", "ceil_mode", "keepdims", "mode", "storage_order")
ELEM_TYPES = tuple(v for v in TensorProto.DataType.values() if v != TensorProto.UNDEFINED) + (0, 99)


@st.composite
def _attribute_value(draw):
    kind = draw(st.sampled_from(("int", "ints", "float", "string", "empty")))
    if kind == "int":
        return draw(sizes)
    if kind == "ints":
        return draw(st.lists(sizes, min_size=0, max_size=9))
    if kind == "float":
        return draw(floats)
    if kind == "string":
        return draw(st.sampled_from((b"SAME_UPPER", b"VALID", b"NOTSET", b"SAME_LOWER", b"reflect",
                                     b"edge", b"", b"\xff")))
    return []


def _set_attribute(node, name, value):
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(kept)
    if isinstance(value, list) and not value:
        node.attribute.append(helper.make_attribute(name, [], attr_type=onnx.AttributeProto.INTS))
    else:
        node.attribute.append(helper.make_attribute(name, value))


@st.composite
def _graph_edit(draw, model):
    graph = model.graph
    nodes = graph.node
    edit = draw(st.sampled_from(("attribute", "input_dim", "dtype", "dangling", "cycle",
                                 "initializer_dims", "initializer_data", "nan_weight",
                                 "op_type", "drop_node", "duplicate_output", "opset",
                                 "no_output", "drop_attribute")))
    node = nodes[draw(st.integers(0, len(nodes) - 1))] if len(nodes) else None
    if edit == "attribute" and node is not None:
        _set_attribute(node, draw(st.sampled_from(ATTRIBUTES)), draw(_attribute_value()))
    elif edit == "drop_attribute" and node is not None and len(node.attribute):
        del node.attribute[draw(st.integers(0, len(node.attribute) - 1))]
    elif edit == "input_dim" and len(graph.input):
        dims = graph.input[0].type.tensor_type.shape.dim
        if len(dims):
            dim = dims[draw(st.integers(0, len(dims) - 1))]
            if draw(st.booleans()):
                dim.dim_value = draw(st.one_of(sizes, st.sampled_from((10**6, 2**20))))
            else:
                dim.dim_param = draw(st.sampled_from(("N", "H", "", "batch size")))
        elif draw(st.booleans()):
            graph.input[0].type.tensor_type.shape.dim.add().dim_value = draw(sizes)
        if draw(st.booleans()):        # a rank change
            graph.input[0].type.tensor_type.shape.dim.add().dim_value = draw(sizes)
    elif edit == "dtype":
        where = draw(st.sampled_from(("input", "output", "initializer")))
        if where == "input" and len(graph.input):
            graph.input[0].type.tensor_type.elem_type = draw(st.sampled_from(ELEM_TYPES))
        elif where == "output" and len(graph.output):
            graph.output[0].type.tensor_type.elem_type = draw(st.sampled_from(ELEM_TYPES))
        elif len(graph.initializer):
            tensor = graph.initializer[draw(st.integers(0, len(graph.initializer) - 1))]
            tensor.data_type = draw(st.sampled_from(ELEM_TYPES))
    elif edit == "dangling" and node is not None and len(node.input):
        node.input[draw(st.integers(0, len(node.input) - 1))] = draw(
            st.sampled_from(("missing", "", "data ", "prob")))
    elif edit == "cycle" and node is not None and len(node.input):
        later = nodes[draw(st.integers(0, len(nodes) - 1))]
        node.input[0] = later.output[0]
    elif edit in ("initializer_dims", "initializer_data", "nan_weight") and len(graph.initializer):
        tensor = graph.initializer[draw(st.integers(0, len(graph.initializer) - 1))]
        if edit == "initializer_dims":
            del tensor.dims[:]
            tensor.dims.extend(draw(st.lists(st.one_of(sizes, st.sampled_from((2**40,))),
                                             max_size=5)))
        elif edit == "initializer_data":
            raw = tensor.raw_data
            tensor.raw_data = raw[:draw(st.integers(0, max(len(raw) - 1, 0)))] \
                if draw(st.booleans()) else raw + draw(st.binary(min_size=1, max_size=12))
        elif tensor.data_type == TensorProto.FLOAT and len(tensor.raw_data) >= 4:
            # whole floats only: an earlier edit may have cut the data mid-value
            values = np.frombuffer(tensor.raw_data[:len(tensor.raw_data) // 4 * 4], np.float32).copy()
            values[draw(st.integers(0, values.size - 1))] = draw(
                st.sampled_from((np.nan, np.inf, -np.inf)))
            tensor.raw_data = values.tobytes()
    elif edit == "op_type" and node is not None:
        node.op_type = draw(st.sampled_from(("Relu", "Conv", "MaxPool", "Gemm", "Softmax", "Concat",
                                             "Reshape", "LRN", "Split", "Loop", "NoSuchOp", "")))
    elif edit == "drop_node" and len(nodes) > 1:
        del nodes[draw(st.integers(0, len(nodes) - 1))]
    elif edit == "duplicate_output" and node is not None and len(nodes) > 1:
        other = nodes[draw(st.integers(0, len(nodes) - 1))]
        node.output[0] = other.output[0]
    elif edit == "opset":
        model.opset_import[0].version = draw(st.integers(-1, 30))
        model.ir_version = draw(st.integers(-1, 14))
    elif edit == "no_output" and len(graph.output):
        graph.output[0].name = draw(st.sampled_from(("", "missing", "data", "conv1")))


@st.composite
def onnx_cases(draw):
    model = onnx.ModelProto()
    model.CopyFrom(draw(st.sampled_from(seed_graphs())))
    for _ in range(draw(st.integers(0, 3))):
        draw(_graph_edit(model))
    data = model.SerializeToString()
    if draw(rarely):                   # protobuf rejects most byte edits: most cases stay whole
        data = mutated(data, draw)
    return {"model.onnx": data}


# --- Caffe prototxt ------------------------------------------------------------------------------

def _fields(draw, spec):
    """prototxt text of a ``*_param`` block: each (field, strategy) set with probability ½."""
    parts = []
    for field, values in spec:
        if draw(st.booleans()):
            for value in draw(st.lists(values, min_size=1, max_size=3)) if field.startswith("*") \
                    else [draw(values)]:
                parts.append(f"{field.lstrip('*')}: {_text(value)}")
    return " ".join(parts)


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(value, "nan" if value != value
                                                                  else repr(value))
    return str(value)


_enum = st.sampled_from
LAYER_FIELDS = {
    "Convolution": ("convolution_param", (
        ("num_output", unsigned), ("bias_term", st.booleans()), ("*pad", unsigned),
        ("*kernel_size", unsigned), ("*stride", unsigned), ("*dilation", unsigned),
        ("pad_h", unsigned), ("pad_w", unsigned), ("kernel_h", unsigned), ("kernel_w", unsigned),
        ("stride_h", unsigned), ("stride_w", unsigned), ("group", unsigned),
        ("axis", st.integers(-5, 5)))),
    "Pooling": ("pooling_param", (
        ("pool", _enum(("MAX", "AVE", "STOCHASTIC"))), ("kernel_size", unsigned), ("pad", unsigned),
        ("stride", unsigned), ("kernel_h", unsigned), ("kernel_w", unsigned), ("pad_h", unsigned),
        ("pad_w", unsigned), ("stride_h", unsigned), ("stride_w", unsigned),
        ("global_pooling", st.booleans()), ("round_mode", _enum(("CEIL", "FLOOR"))),
        ("ceil_mode", st.booleans()))),
    "LRN": ("lrn_param", (
        ("local_size", unsigned), ("alpha", floats), ("beta", floats), ("k", floats),
        ("norm_region", _enum(("ACROSS_CHANNELS", "WITHIN_CHANNEL"))))),
    "InnerProduct": ("inner_product_param", (
        ("num_output", unsigned), ("bias_term", st.booleans()), ("axis", st.integers(-5, 5)),
        ("transpose", st.booleans()))),
    "ReLU": ("relu_param", (("negative_slope", floats),)),
    "PReLU": ("prelu_param", (("channel_shared", st.booleans()),)),
    "Softmax": ("softmax_param", (("axis", st.integers(-5, 5)),)),
    "Concat": ("concat_param", (("axis", st.integers(-5, 5)), ("concat_dim", unsigned))),
    "Eltwise": ("eltwise_param", (("operation", _enum(("PROD", "SUM", "MAX"))), ("*coeff", floats))),
    "BatchNorm": ("batch_norm_param", (("eps", floats), ("use_global_stats", st.booleans()))),
    "Scale": ("scale_param", (("axis", st.integers(-5, 5)), ("num_axes", st.integers(-3, 5)),
                              ("bias_term", st.booleans()))),
    "Bias": ("bias_param", (("axis", st.integers(-5, 5)), ("num_axes", st.integers(-3, 5)))),
    "Flatten": ("flatten_param", (("axis", st.integers(-5, 5)), ("end_axis", st.integers(-5, 5)))),
    "Reshape": ("reshape_param", (("axis", st.integers(-5, 5)), ("num_axes", st.integers(-3, 5)))),
    "Slice": ("slice_param", (("axis", st.integers(-5, 5)), ("*slice_point", unsigned),
                              ("slice_dim", unsigned))),
    "Power": ("power_param", (("power", floats), ("scale", floats), ("shift", floats))),
    "Split": (None, ()), "Sigmoid": (None, ()), "TanH": (None, ()), "Dropout": (None, ()),
}
TWO_BOTTOMS = ("Concat", "Eltwise")


@st.composite
def _layer(draw, kind, name, bottoms, top):
    param, spec = LAYER_FIELDS[kind]
    body = f'name: "{name}" type: "{kind}" ' + " ".join(f'bottom: "{b}"' for b in bottoms)
    tops = [top] * (1 if kind not in ("Split", "Slice") else draw(st.integers(1, 3)))
    body += " " + " ".join(f'top: "{t}"' if i == 0 else f'top: "{t}_{i}"' for i, t in enumerate(tops))
    fields = _fields(draw, spec) if param else ""
    if kind == "Reshape" and draw(st.booleans()):
        dims = " ".join(f"dim: {d}" for d in draw(st.lists(st.one_of(st.integers(-2, 9),
                                                                     st.sampled_from(HUGE[:3])),
                                                            max_size=5)))
        fields += f" shape {{ {dims} }}"
    if param and (fields or draw(st.booleans())):
        body += f" {param} {{ {fields} }}"
    return f"layer {{ {body} }}"


@st.composite
def _net_text(draw):
    rank = draw(st.sampled_from((4,) * 7 + (2, 1, 3, 5)))
    dims = [draw(st.sampled_from((0, -1, 100_000, 2**31 - 1, 65_536))) if draw(rarely)
            else draw(st.integers(1, 9)) for _ in range(rank)]
    if draw(st.booleans()):
        header = 'input: "data" ' + " ".join(f"input_dim: {d}" for d in dims)
    else:
        header = ('layer { name: "data" type: "Input" top: "data" input_param { shape { '
                  + " ".join(f"dim: {d}" for d in dims) + " } } }")
    layers, blobs = [], ["data"]
    for i in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(sorted(LAYER_FIELDS)))
        n_bottoms = 2 if kind in TWO_BOTTOMS else 1
        bottoms = [draw(st.sampled_from(blobs)) for _ in range(n_bottoms)]
        if draw(rarely) and draw(st.booleans()):
            bottoms[0] = "nowhere"                           # a dangling bottom
        in_place = kind in ("ReLU", "Dropout", "Power", "Scale", "BatchNorm") and draw(st.booleans())
        top = bottoms[0] if in_place else f"b{i}"
        layers.append(draw(_layer(kind, f"l{i}", bottoms, top)))
        blobs.append(top)
    return f'name: "fuzz"\n{header}\n' + "\n".join(layers) + "\n"


@st.composite
def _text_mutated(draw, text):
    """Token-level edits of prototxt text: delete, duplicate or swap lines and tokens."""
    tokens = text.split(" ")
    for _ in range(draw(st.integers(1, 4))):
        if not tokens:
            break
        at = draw(st.integers(0, len(tokens) - 1))
        edit = draw(st.sampled_from(("delete", "duplicate", "swap", "insert", "nest")))
        if edit == "delete":
            del tokens[at]
        elif edit == "duplicate":
            tokens.insert(at, tokens[at])
        elif edit == "swap":
            other = draw(st.integers(0, len(tokens) - 1))
            tokens[at], tokens[other] = tokens[other], tokens[at]
        elif edit == "nest":       # blocks in blocks, known or not: a recursive parser's limit
            block = draw(st.sampled_from(("layer {", "unknown {", "transform_param {")))
            tokens.insert(at, (block + " ") * draw(st.sampled_from((10, 1000, 5000))))
        else:
            tokens.insert(at, draw(st.sampled_from(("{", "}", ":", '"', "layer", "layers",
                                                    "-1", "1e999", "\x00", "é", "#"))))
    return " ".join(tokens)


@st.composite
def prototxt_cases(draw):
    text = draw(_net_text())
    how = draw(st.sampled_from(("as generated",) * 8 + ("tokens", "bytes")))
    if how == "tokens":
        text = draw(_text_mutated(text))
    data = text.encode("utf-8")
    if how == "bytes":
        data = mutated(data, draw)
    return {"deploy.prototxt": data}


# --- caffemodel ----------------------------------------------------------------------------------

CAFFEMODEL_NET = """name: "weighted"
input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "PReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc" inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""
PARAM_SHAPES = {"conv1": [(4, 3, 3, 3), (4,)], "bn1": [(4,), (4,), (1,)], "scale1": [(4,), (4,)],
                "relu1": [(4,)], "fc": [(5, 64), (5,)]}
V1_TYPES = {"conv1": "CONVOLUTION", "bn1": "NONE", "scale1": "NONE", "relu1": "NONE",
            "fc": "INNER_PRODUCT"}


@st.composite
def _blob(draw, shape, legacy):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = rng.standard_normal(int(np.prod(shape))).astype(np.float32) * 0.3
    if shape == (1,):
        values = np.ones(1, np.float32)               # BatchNorm's scale factor
    # one blob in ~8 edited: a net of 11 blobs then loads whole in about a quarter of the cases
    edit = draw(st.sampled_from(("none",) * 35 + ("shape", "count", "nan", "double", "empty")))
    if edit == "nan":
        values[draw(st.integers(0, values.size - 1))] = draw(st.sampled_from((np.nan, np.inf)))
    if edit == "count":
        values = values[:draw(st.integers(0, values.size))] if draw(st.booleans()) \
            else np.concatenate([values, values[:3]])
    blob = caffe_proto.BlobProto()
    dims = list(shape)
    if edit == "shape":
        dims = draw(st.lists(st.one_of(st.integers(0, 9), st.integers(-3, -1),
                                       st.sampled_from((2**31 - 1, 2**40, 65_536))), max_size=5))
    if legacy:
        for field, size in zip(("num", "channels", "height", "width"),
                               [1] * (4 - len(dims)) + dims[-4:]):
            setattr(blob, field, int(np.clip(size, -2**31, 2**31 - 1)))
    else:
        blob.shape.dim.extend(dims)
    if edit == "double":
        blob.double_data.extend(values.astype(np.float64).tolist())
    elif edit != "empty":
        blob.data.extend(values.tolist())
    return blob


@st.composite
def caffemodel_cases(draw):
    legacy = draw(st.booleans())                       # a V1 file: ``layers`` and 4D blobs
    net = caffe_proto.NetParameter(name="weighted")
    for name, shapes in PARAM_SHAPES.items():
        if draw(rarely) and draw(st.booleans()):
            continue                                   # a layer the file lacks
        layer = net.layers.add() if legacy else net.layer.add()
        layer.name = "renamed" if draw(rarely) and draw(st.booleans()) else name
        if legacy:
            layer.type = caffe_proto.V1LayerParameter.LayerType.Value(V1_TYPES[name])
        else:
            layer.type = "Layer"
        blobs = [draw(_blob(shape, legacy)) for shape in shapes]
        if draw(rarely) and draw(st.booleans()):
            blobs = blobs[:-1] if draw(st.booleans()) else blobs + blobs[:1]
        layer.blobs.extend(blobs)
    data = net.SerializeToString()
    if draw(rarely):
        data = mutated(data, draw)
    return {"deploy.prototxt": CAFFEMODEL_NET.encode(), "weights.caffemodel": data}


# --- binaryproto means ---------------------------------------------------------------------------

@st.composite
def binaryproto_cases(draw):
    shape = draw(st.sampled_from(((1, 3, 8, 8), (3, 8, 8), (3,), (1, 3, 1, 1), (8, 8), ())))
    blob = draw(_blob(shape, draw(st.booleans())))
    data = blob.SerializeToString()
    if draw(sometimes):
        data = mutated(data, draw)
    return {"mean.binaryproto": data}


# --- torch .pth pickles --------------------------------------------------------------------------

def _pickle_global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _pickle_int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if -2**31 <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    payload = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(payload)]) + payload          # LONG1


def _pickle_str(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _pickle_tuple(items) -> bytes:
    return b"(" + b"".join(items) + b"t"


def state_dict_pickle(tensors, legacy, rebuild=("torch._utils", "_rebuild_tensor_v2"),
                      container=("collections", "OrderedDict")) -> bytes:
    """Protocol-2 pickle of {name: tensor} as torch writes it, emitted opcode by opcode so that
    every field (storage type, key, element count, offset, size, stride, the globals named) is
    the fuzzer's to choose. tensors: [(name, storage type, key, numel, offset, size, stride)]."""
    out = [b"\x80\x02", _pickle_global(*container), b")R"]
    for name, storage_type, key, numel, offset, size, stride in tensors:
        location = _pickle_str("cpu")
        pid = [_pickle_str("storage"), _pickle_global("torch", storage_type), _pickle_str(key),
               location, _pickle_int(numel)]
        if legacy:
            pid.append(b"N")
        out += [_pickle_str(name), _pickle_global(*rebuild), b"(", _pickle_tuple(pid), b"Q",
                _pickle_int(offset), _pickle_tuple(_pickle_int(s) for s in size),
                _pickle_tuple(_pickle_int(s) for s in stride), b"\x89",
                _pickle_global("collections", "OrderedDict"), b")R", b"tR", b"s"]
    out.append(b".")
    return b"".join(out)


def _legacy_header() -> bytes:
    return (b"\x80\x02" + _pickle_int(pth_reader.LEGACY_MAGIC_NUMBER) + b"."
            + b"\x80\x02" + _pickle_int(pth_reader.LEGACY_PROTOCOL_VERSION) + b"."
            + b"\x80\x02}(" + _pickle_str("protocol_version") + _pickle_int(1001)
            + _pickle_str("little_endian") + b"\x88" + b"u.")


FOREIGN_GLOBALS = (("os", "system"), ("builtins", "eval"), ("subprocess", "Popen"),
                   ("posix", "system"), ("builtins", "getattr"), ("numpy", "load"),
                   ("torch", "load"), ("torch._utils", "_rebuild_device_tensor_from_numpy"),
                   ("collections", "defaultdict"), ("torch.nn.modules.conv", "Conv2d"))


@st.composite
def pth_cases(draw):
    legacy = draw(st.booleans())
    tensors, storages = [], {}
    for i in range(draw(st.integers(0, 4))):
        storage_type = draw(st.sampled_from(sorted(pth_reader.STORAGE_DTYPES) + ["FooStorage"]))
        key = draw(st.sampled_from(("0", "1", "2", "../0", "/etc/passwd")))
        size = draw(st.lists(st.one_of(st.integers(0, 5), st.sampled_from((-1, 2**31, 2**62))),
                             max_size=4))
        natural = [int(np.prod(size[k + 1:])) for k in range(len(size))] \
            if all(0 <= s < 100 for s in size) else [1] * len(size)
        stride = natural if draw(st.integers(0, 3)) else draw(
            st.lists(st.one_of(st.integers(-1, 5), st.sampled_from((2**40,))),
                     min_size=len(size), max_size=len(size) + draw(st.integers(0, 1))))
        span = int(np.prod(size)) if all(0 <= s < 100 for s in size) else 4
        numel = span if draw(st.integers(0, 3)) else draw(st.one_of(st.integers(0, 9),
                                                                    st.sampled_from((2**40,))))
        offset = 0 if draw(st.integers(0, 3)) else draw(st.integers(-3, 9))
        tensors.append((f"t{i}", storage_type, key, numel, offset, size, stride))
        itemsize = pth_reader.STORAGE_DTYPES.get(storage_type, np.dtype("f4")).itemsize
        stored = numel if numel < 10**6 else 4
        storages.setdefault(key, (numel, bytes(draw(st.binary(min_size=stored * itemsize,
                                                             max_size=stored * itemsize)))))
    rebuild, container = ("torch._utils", "_rebuild_tensor_v2"), ("collections", "OrderedDict")
    if draw(st.integers(0, 5)) == 0:
        foreign = draw(st.sampled_from(FOREIGN_GLOBALS))
        if draw(st.booleans()):
            rebuild = foreign
        else:
            container = foreign
    body = state_dict_pickle(tensors, legacy, rebuild, container)
    if legacy:
        keys = b"\x80\x02(" + b"".join(_pickle_str(k) for k in storages) + b"l."
        tail = b"".join(struct.pack("<q", n) + raw for n, raw in storages.values())
        data = _legacy_header() + body + keys + tail
    else:
        buffer = io.BytesIO()
        prefix = draw(st.sampled_from(("archive/",) * 6 + ("../", "/abs/", "a\\..\\")))
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(prefix + "data.pkl", body)
            archive.writestr(prefix + "byteorder", draw(st.sampled_from((b"little",) * 5 + (b"big",))))
            for key, (_, raw) in storages.items():
                archive.writestr(f"{prefix}data/{key}", raw)
        data = buffer.getvalue()
    if draw(sometimes):
        data = mutated(data, draw)
    return {"weights.pth": data}


# --- images --------------------------------------------------------------------------------------

def _png_with_size(png: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR width and height replaced (and the chunk's CRC made right again),
    so that the header lies about the size and only a reader that trusts it allocates."""
    ihdr = bytearray(png[8:33])
    ihdr[8:16] = struct.pack(">II", width, height)
    ihdr[21:25] = struct.pack(">I", zlib.crc32(bytes(ihdr[4:21])) & 0xFFFFFFFF)
    return png[:8] + bytes(ihdr) + png[33:]


def _jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header (SOF0/SOF2) claiming another size."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = jpeg.find(marker)
        if at >= 0:
            return jpeg[:at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9:]
    return jpeg


@st.composite
def _pixels(draw):
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    channels = draw(st.sampled_from((1, 3, 4)))
    depth = draw(st.sampled_from((np.uint8, np.uint8, np.uint16)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    top = np.iinfo(depth).max
    return rng.integers(0, top, (height, width, channels), endpoint=True).astype(depth)


@st.composite
def image_cases(draw):
    import cv2
    from PIL import Image
    pixels = draw(_pixels())
    kind = draw(st.sampled_from(("png", "jpg", "bmp", "tiff", "webp", "ppm", "gif", "palette",
                                 "cmyk", "progressive", "exif", "tiff16")))
    eight = pixels if pixels.dtype == np.uint8 else (pixels >> 8).astype(np.uint8)
    rgb = np.repeat(eight[..., :1], 3, axis=2) if eight.shape[2] == 1 else eight[..., :3]
    buffer = io.BytesIO()
    if kind in ("png", "tiff16"):
        ext, data = ("png" if kind == "png" else "tiff",
                     cv2.imencode(".png" if kind == "png" else ".tiff", pixels)[1].tobytes())
    elif kind in ("jpg", "bmp", "tiff", "webp", "ppm"):
        image = eight if kind != "jpg" or eight.shape[2] != 4 else eight[..., :3]
        if kind == "ppm":
            image = rgb
        ext, data = kind, cv2.imencode("." + kind, image)[1].tobytes()
    else:
        picture = Image.fromarray(rgb)
        if kind == "gif":
            frames = [picture, Image.fromarray(255 - rgb)]
            frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], loop=0)
            ext = "gif"
        elif kind == "palette":
            picture.convert("P").save(buffer, "PNG", transparency=0)
            ext = "png"
        elif kind == "cmyk":
            picture.convert("CMYK").save(buffer, "JPEG")
            ext = "jpg"
        elif kind == "progressive":
            picture.save(buffer, "JPEG", progressive=True)
            ext = "jpg"
        else:
            exif = Image.Exif()
            exif[0x0112] = draw(st.integers(0, 9))            # Orientation, 1…8 valid
            picture.save(buffer, "JPEG", exif=exif)
            ext = "jpg"
        data = buffer.getvalue()
    roll = draw(st.integers(0, 9))
    if roll < 2:                       # a header that lies about the size
        width, height = draw(st.sampled_from(((20_000, 20_000), (30_000, 30_000), (65_535, 1),
                                              (1, 65_535), (2**31 - 1, 2), (0, 5))))
        if ext == "png":
            data = _png_with_size(data, width, height)
        elif ext == "jpg":
            data = _jpeg_with_size(data, min(width, 65_535), min(height, 65_535))
        else:
            data = mutated(data, draw)
    elif roll < 5:
        data = mutated(data, draw)
    return {f"image.{ext}": data}


STRATEGIES = {"onnx": onnx_cases, "prototxt": prototxt_cases, "caffemodel": caffemodel_cases,
              "binaryproto": binaryproto_cases, "pth": pth_cases, "image": image_cases}
