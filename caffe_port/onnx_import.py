"""Model import: whatever the user has → one normalised ONNX ModelProto.

Accepted: a path to an ``.onnx`` file, the bytes of one, an ``onnx.ModelProto``, a Caffe
``deploy.prototxt`` (with its ``.caffemodel``), or the name of an embedded model
("efficientnet-lite0"). Normalisation makes real-world files usable as they are:

* opsets below 7 (which ONNX Runtime does not run) are upgraded with ONNX's version converter;
* IR-3 files list their initializers among the graph inputs: those become plain constants;
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
from onnx import numpy_helper

from caffe_port.errors import ModelError
from caffe_port.onnx_util import MAX_IR_VERSION

EMBEDDED = ("efficientnet-lite0",)
MIN_OPSET = 7
NONDETERMINISTIC = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
                    "Multinomial", "Bernoulli"}


def load_model(model, weights=None) -> onnx.ModelProto:
    """Read ``model`` (path, bytes, ModelProto, embedded name, or Caffe prototxt) and normalise it."""
    if isinstance(model, onnx.ModelProto):
        proto = model
    elif isinstance(model, (bytes, bytearray, memoryview)):
        proto = _parse_bytes(bytes(model), "the given bytes")
    elif isinstance(model, (str, os.PathLike)):
        name = os.fspath(model)
        if name in EMBEDDED:
            from caffe_port.models import efficientnet_lite
            return normalise(efficientnet_lite.efficientnet_lite0())
        path = Path(name)
        if path.suffix.lower() == ".prototxt":
            from caffe_port.models import caffe_import
            return normalise(caffe_import.caffe_to_onnx(path, weights))
        if not path.exists():
            hint = f" (embedded models: {', '.join(EMBEDDED)})" if not path.suffix else ""
            raise ModelError(f"model file not found: {name}{hint}")
        if path.is_dir():
            raise ModelError(f"model path is a directory, not a file: {name}")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ModelError(f"cannot read model file {name}: {e.strerror}") from None
        proto = _parse_bytes(data, name)
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


def default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 1


def normalise(model: onnx.ModelProto) -> onnx.ModelProto:
    model = _copy(model)
    if default_opset(model) < MIN_OPSET:
        model = _upgrade(model)
    _initializers_are_not_inputs(model)
    _fold_constants(model)
    if model.ir_version > MAX_IR_VERSION or model.ir_version < 3:
        model.ir_version = max(3, min(model.ir_version, MAX_IR_VERSION))
    return model


def _copy(model):
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _upgrade(model):
    from onnx import version_converter
    before = default_opset(model)
    try:
        upgraded = version_converter.convert_version(model, MIN_OPSET)
    except Exception as e:
        raise ModelError(f"the model uses opset {before}, older than ONNX Runtime runs, and ONNX's "
                         f"version converter could not upgrade it: {str(e).splitlines()[0]}") from None
    return upgraded


def _initializers_are_not_inputs(model):
    """IR < 4 lists every initializer as a graph input too; they are constants, not inputs."""
    names = {t.name for t in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in names]
    if len(keep) != len(model.graph.input):
        del model.graph.input[:]
        model.graph.input.extend(keep)


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
    from onnx.reference import ReferenceEvaluator
    feeds = {}
    for name in node.input:
        if not name:
            continue
        if name not in values:
            values[name] = numpy_helper.to_array(initializers[name])
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
