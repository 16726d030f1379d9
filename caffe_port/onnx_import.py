"""Model import: whatever the user has → one normalised ONNX ModelProto.

Accepted: a path to an ``.onnx`` file, the bytes of one, an ``onnx.ModelProto``, a Caffe
``deploy.prototxt`` (with its ``.caffemodel``), or the name of an embedded model
("efficientnet-lite0"). Tensors stored outside an ONNX model (``model.onnx.data``) are read from
the model file's folder, or for bytes and ModelProtos from ``weights`` (a folder) or the current
one (caffe_port/external_data.py). Normalisation makes real-world files usable as they are:

* IR-3 files list their initializers among the graph inputs: those become plain constants and
  the file IR 4 (done first, so that the converter sees every weight, even one an IR-3 file
  forgot to list);
* opsets below 7 (which ONNX Runtime does not run) are upgraded in two steps, once every
  BatchNormalization is known to be in inference mode (is_test=1; a Dropout's is_test is dropped).
  ONNX's version converter takes the graph to opset 6 (consumed_inputs, Reshape's shape
  attribute, Concat's default axis); two rewrites that need tensor ranks are done here at opset 6: the legacy
  ``broadcast``/``axis`` attributes of Add, Mul, … (the converter's 6→7 adapter unsqueezes B at
  the wrong axes unless ``axis`` is 0, and needs shapes that opset-1 schemas cannot infer), and a
  Flatten(axis=1) before a Gemm fed a (N, C, H, W) map (Caffe2's opset-3 exports of FC layers,
  whose flattening Caffe2 did implicitly); then the converter takes it to opset 7. Its adapters
  want fixed dimensions: symbolic ones are pinned to 1 for it and restored afterwards;
* BatchNormalization with ``spatial=0`` but per-channel (C,) parameters, as MXNet's exporter
  wrote it, gets ``spatial=1``: the only reading under which those parameters fit (ONNX Runtime
  refuses the file as it is);
* constant subgraphs (Constant, ConstantOfShape, Unsqueeze/Reshape/Cast/Concat… of constants)
  are folded into initializers, so weights built that way look like any other weight;
* the IR version is capped at what ONNX Runtime accepts.

Blob names (tensor names) are never changed.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter
from onnx.reference import ReferenceEvaluator

from caffe_port import external_data
from caffe_port.errors import ModelError
from caffe_port.memory import check_fits
from caffe_port.models import caffe_net, efficientnet_lite
from caffe_port.onnx_util import MAX_IR_VERSION, default_opset, read_initializer, skeleton

EMBEDDED = ("efficientnet-lite0",)
MIN_OPSET = 7
LEGACY_BROADCAST_OPSET = 6     # the last opset with broadcast/axis attributes, and with inference for them
DETACHED_WEIGHT = 1024          # initializers above this many elements skip the version converter
LEGACY_BROADCAST_OPS = {"Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor", "Equal", "Greater", "Less"}
NONDETERMINISTIC = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
                    "Multinomial", "Bernoulli"}


def load_model(model, weights=None) -> onnx.ModelProto:
    """Read ``model`` (path, bytes, ModelProto, embedded name, or Caffe prototxt) and normalise it."""
    if isinstance(model, onnx.ModelProto):
        proto = external_data.resolved(model, weights or ".", "the given ModelProto")
    elif isinstance(model, (bytes, bytearray, memoryview)):
        proto = external_data.resolved(_parse_bytes(bytes(model), "the given bytes"), weights or ".",
                                       "the given bytes")
    elif isinstance(model, (str, os.PathLike)):
        name = os.fspath(model)
        if name in EMBEDDED:
            return normalise(efficientnet_lite.efficientnet_lite0())
        path = Path(name)
        if path.suffix.lower() == ".prototxt":
            return normalise(caffe_net.caffe_to_onnx(path, weights))
        if not path.exists():
            hint = f" (embedded models: {', '.join(EMBEDDED)})" if not path.suffix else ""
            raise ModelError(f"model file not found: {name}{hint}")
        if path.is_dir():
            raise ModelError(f"model path is a directory, not a file: {name}")
        try:
            # the file's bytes and the message parsed from them are in memory together
            check_fits(2 * path.stat().st_size, f"loading {name}")
            data = path.read_bytes()
        except OSError as e:
            raise ModelError(f"cannot read model file {name}: {e.strerror}") from None
        proto = external_data.resolved(_parse_bytes(data, name), weights or path.parent, name)
    else:
        raise ModelError(f"cannot load a model from a {type(model).__name__}; give a path, bytes or "
                         "an onnx.ModelProto")
    return normalise(proto)


def _parse_bytes(data: bytes, where: str) -> onnx.ModelProto:
    if not data:
        raise ModelError(f"{where} is empty, not an ONNX model")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception:
        raise ModelError(f"{where} is not a readable ONNX model (truncated or another format)") from None
    if not proto.HasField("graph") or len(proto.graph.node) == 0:
        raise ModelError(f"{where} is not an ONNX model: it has no graph nodes")
    return proto


def check_names(model: onnx.ModelProto, where="the model"):
    """Every name is text: protobuf hands a damaged file's bytes that are not UTF-8 back as they
    are, and they fail wherever a name is first copied into another message; each is copied
    once, here."""
    graph = model.graph
    probe = onnx.ValueInfoProto()
    names = [vi.name for vi in list(graph.input) + list(graph.output) + list(graph.value_info)]
    names += [t.name for t in graph.initializer]
    for node in graph.node:
        names += [node.name, node.op_type, node.domain, *node.input, *node.output]
        names += [a.name for a in node.attribute]
    try:
        for name in names:
            probe.name = name
    except (UnicodeDecodeError, UnicodeEncodeError, ValueError):
        raise ModelError(f"{where}: holds names that are not UTF-8 text (a damaged file)") from None


def normalise(model: onnx.ModelProto) -> onnx.ModelProto:
    check_names(model)
    model = _copy(model)
    # first, so that the converter sees every initializer even where an IR-3 file forgot to list one
    _initializers_are_not_inputs(model)
    if default_opset(model) < MIN_OPSET:
        model = _upgrade(model)
    _per_channel_batchnorm(model)
    _fold_constants(model)
    if model.ir_version > MAX_IR_VERSION or model.ir_version < 3:
        model.ir_version = max(3, min(model.ir_version, MAX_IR_VERSION))
    return model


def _copy(model):
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _upgrade(model):
    before = default_opset(model)
    # the converter's adapters want every dimension fixed: symbolic ones are pinned to 1 for it and
    # the graph's declarations restored afterwards (its value_info, inferred with the pins, goes)
    declared = {vi.name: _copy_value_info(vi) for vi in list(model.graph.input) + list(model.graph.output)}
    _pin_symbolic_dims(model)
    _inference_mode(model, before)
    weights = _detach_weights(model)
    try:
        if before < LEGACY_BROADCAST_OPSET:
            model = version_converter.convert_version(model, LEGACY_BROADCAST_OPSET)
        _legacy_layouts(model)
        model = version_converter.convert_version(model, MIN_OPSET)
    except ModelError:
        raise
    except Exception as e:
        raise ModelError(f"the model uses opset {before}, older than ONNX Runtime runs, and ONNX's "
                         f"version converter could not upgrade it: {str(e).splitlines()[0]}") from None
    _attach_weights(model, weights)
    for vi in list(model.graph.input) + list(model.graph.output):
        if vi.name in declared:
            vi.CopyFrom(declared[vi.name])
    del model.graph.value_info[:]
    return model


def _detach_weights(model):
    """Large initializers → typed graph inputs of the same name and shape, for the converter, which
    copies the whole model through C++ twice and reads no weight values (the 550 MB VGG-19 at opset
    3 loaded in 28 s and 4.6 GB with its weights attached, 1 s and 1.8 GB without). Returns
    {name: TensorProto}, taken out of the model without a copy, for ``_attach_weights``."""
    graph = model.graph
    weights = {}
    for k in reversed(range(len(graph.initializer))):
        if int(np.prod(graph.initializer[k].dims)) > DETACHED_WEIGHT:
            tensor = graph.initializer.pop(k)
            weights[tensor.name] = tensor
    graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in weights.values())
    return weights


def _attach_weights(model, weights):
    if not weights:
        return
    graph = model.graph
    inputs = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    for tensor in weights.values():
        graph.initializer.add().CopyFrom(tensor)   # (extend() copies too, and slower)


def _inference_mode(model, opset):
    """Before opset 7, ``is_test`` (default 0) chose between training and inference. A
    BatchNormalization in training mode normalises by the batch's own statistics, another function,
    and is refused (the converter would silently make it an inference one, or assert on is_test=0);
    in test mode its optional statistics outputs go, unread, since from opset 7 their presence means
    training mode. A Dropout's is_test goes: in a deployed net it is the identity either way."""
    graph = model.graph
    read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        attrs = {a.name: a for a in node.attribute}
        where = f"{node.op_type} node {node.name or node.output[0]!r}"
        if node.op_type == "BatchNormalization":
            if not (attrs.get("is_test") and attrs["is_test"].i):
                raise ModelError(f"{where}: opset {opset} with is_test=0 means training mode (batch "
                                 "statistics); export with is_test=1")
            extra = [o for o in node.output[1:] if o]
            if any(o in read for o in extra):
                raise ModelError(f"{where}: other nodes read its statistics outputs, which from opset 7 "
                                 "would mean training mode")
            del node.output[1:]
        if node.op_type == "Dropout" and "is_test" in attrs:
            kept = [a for a in node.attribute if a.name != "is_test"]
            del node.attribute[:]
            node.attribute.extend(kept)


def _copy_value_info(vi):
    copy = onnx.ValueInfoProto()
    copy.CopyFrom(vi)
    return copy


def _pin_symbolic_dims(model):
    graph = model.graph
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            for d in vi.type.tensor_type.shape.dim:
                if not d.HasField("dim_value"):
                    d.dim_value = 1


def _legacy_layouts(model):
    """Opset-6 rewrites that need tensor ranks, which ONNX's converter gets wrong or cannot get."""
    _flatten_gemm_inputs(model)
    _legacy_broadcast(model)


def _flatten_gemm_inputs(model):
    """Caffe2's FC flattens its input at axis 1 itself, and its opset-3 exports hand Gemm the
    (N, C, H, W) map as it is; Gemm wants (N, C·H·W): a Flatten(axis=1) goes in between."""
    gemms = [n for n in model.graph.node if n.op_type == "Gemm" and n.domain in ("", "ai.onnx")]
    if not gemms:
        return
    ranks = _ranks(model)
    nodes = []
    for node in model.graph.node:
        if node in gemms and ranks.get(node.input[0], 2) > 2:
            flat = f"{node.input[0]}_flattened_for_{node.output[0]}"
            nodes.append(helper.make_node("Flatten", [node.input[0]], [flat], axis=1))
            node = _copy_node(node)
            node.input[0] = flat
        nodes.append(_copy_node(node))
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _legacy_broadcast(model):
    """Opsets 1–6: ``broadcast=1`` lets B (shape s, rank k) stand for a tensor of A's rank r, aligned
    at ``axis`` (default r − k, numpy's trailing alignment). From opset 7 broadcasting is numpy's,
    so B becomes Unsqueeze(B, axes = k … r − axis − 1), of shape s + (1,)·(r − axis − k); the
    attributes go. (Caffe's Scale and Bias layers, per channel: axis 1, s = (C,) → (C, 1, 1).)
    The Unsqueeze of a constant is folded later, like any constant subgraph."""
    ranks = None
    new_nodes = []
    for node in model.graph.node:
        node = _copy_node(node)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type in LEGACY_BROADCAST_OPS and node.domain in ("", "ai.onnx") and \
                attrs.get("broadcast", 0) and "axis" in attrs and len(node.input) == 2:
            if ranks is None:
                ranks = _ranks(model)
            a, b = node.input
            where = f"node {node.name or node.output[0]!r} ({node.op_type}, broadcast=1, axis={attrs['axis']})"
            if a not in ranks or b not in ranks:
                raise ModelError(f"{where}: cannot upgrade its legacy broadcast, the rank of "
                                 f"{a if a not in ranks else b!r} is unknown")
            rank_a, rank_b = ranks[a], ranks[b]
            axis = attrs["axis"] + rank_a if attrs["axis"] < 0 else attrs["axis"]
            if not 0 <= axis <= rank_a - rank_b:
                raise ModelError(f"{where}: B of rank {rank_b} does not fit A of rank {rank_a} at that axis")
            if axis < rank_a - rank_b:
                aligned = f"{b}_unsqueezed_for_{node.output[0]}"
                new_nodes.append(helper.make_node("Unsqueeze", [b], [aligned],
                                                  axes=list(range(rank_b, rank_a - axis))))
                node.input[1] = aligned
        if node.op_type in LEGACY_BROADCAST_OPS:
            kept = [at for at in node.attribute if at.name not in ("broadcast", "axis")]
            del node.attribute[:]
            node.attribute.extend(kept)
        new_nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)


def _copy_node(node):
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    return copy


def _ranks(model):
    """Tensor name → rank, from ONNX shape inference on the graph without its weights (opset 6
    schemas infer what these nets use; a node they cannot infer leaves its outputs out)."""
    light = skeleton(model, None)
    light.ir_version = max(light.ir_version, 4)   # IR 3 would ignore initializers that are not inputs
    inferred = onnx.shape_inference.infer_shapes(light, strict_mode=False)
    ranks = {t.name: len(t.dims) for t in model.graph.initializer}
    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        tensor_type = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and tensor_type.HasField("shape"):
            ranks.setdefault(vi.name, len(tensor_type.shape.dim))
    return ranks


def _per_channel_batchnorm(model):
    """spatial=0 (opsets < 9) means one statistic per activation, parameters of shape (C, D1, …);
    MXNet's exporter wrote spatial=0 with (C,) parameters, which only the per-channel reading fits
    (for (N, C) inputs both readings agree)."""
    if default_opset(model) >= 9:
        return
    dims = {t.name: len(t.dims) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "BatchNormalization" or node.domain not in ("", "ai.onnx"):
            continue
        for a in node.attribute:
            if a.name == "spatial" and a.i == 0 and all(dims.get(p) == 1 for p in node.input[1:5]):
                a.i = 1


def _initializers_are_not_inputs(model):
    """IR < 4 lists every initializer as a graph input too; they are constants, not inputs. Without
    the listing the file is IR 4 (under IR 3, shape inference ignores unlisted initializers)."""
    names = {t.name for t in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in names]
    if len(keep) != len(model.graph.input):
        del model.graph.input[:]
        model.graph.input.extend(keep)
    model.ir_version = max(model.ir_version, 4)


def _fold_constants(model):
    """Evaluate nodes whose inputs are all constants and replace them by initializers."""
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    opset = default_opset(model)
    initializers = {t.name: t for t in graph.initializer}
    values = {}
    kept_nodes, new_inits = [], []
    for node in graph.node:
        foldable = (node.domain in ("", "ai.onnx")
                    and node.op_type not in NONDETERMINISTIC
                    and not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                for a in node.attribute)
                    and all(i == "" or i in constants for i in node.input)
                    and not any(o in outputs for o in node.output))
        results = _evaluate(node, initializers, values, opset) if foldable else None
        if results is None:
            kept_nodes.append(node)
            continue
        for name, value in zip(node.output, results):
            if name:
                values[name] = value
                constants.add(name)
                new_inits.append(numpy_helper.from_array(np.asarray(value), name))
    if new_inits:
        # drop value_info of folded tensors: they are initializers now
        folded = {t.name for t in new_inits}
        vi = [v for v in graph.value_info if v.name not in folded]
        del graph.value_info[:]
        graph.value_info.extend(vi)
        del graph.node[:]
        graph.node.extend(kept_nodes)
        graph.initializer.extend(new_inits)
        # the constants that only fed folded nodes are dead now
        used = {i for n in graph.node for i in n.input} | outputs
        live = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(live)


def _evaluate(node, initializers, values, opset):
    feeds = {}
    for name in node.input:
        if not name:
            continue
        if name not in values:
            values[name] = read_initializer(initializers[name])
        feeds[name] = values[name]
    try:
        sub_graph = onnx.helper.make_graph([node], "fold", [], [onnx.helper.make_empty_tensor_value_info(o)
                                                               for o in node.output if o])
        for name, value in feeds.items():
            sub_graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        sub = onnx.helper.make_model(sub_graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
        sub.ir_version = MAX_IR_VERSION
        return ReferenceEvaluator(sub).run(None, {})
    except Exception:
        return None  # leave it to ONNX Runtime
