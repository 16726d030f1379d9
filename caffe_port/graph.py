"""The graph: nodes in topological order, tensor names as blob names, producers and consumers.

Built once from a normalised ModelProto (see ``onnx_import``). It answers the questions the
runtime and the walker ask: which tensors are constants, which carry a diff, which node needs a
backward kernel, which tensors the backward reads (so the runtime keeps only those), and the
shape of every tensor for a given input shape.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from caffe_port.errors import BlobError, ModelError, UnsupportedOpError
from caffe_port.kernels import REGISTRY
from caffe_port.onnx_util import SMALL_CONSTANT, default_opset, infer, read_initializer, shapes_of
from caffe_port.op_advice import advice

SOFTMAX_OPS = ("Softmax", "LogSoftmax")
FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
               onnx.TensorProto.BFLOAT16}


@dataclass
class Node:
    index: int                       # position in topological order
    name: str                        # unique; the ONNX node name, else its first output
    op_type: str
    inputs: list                     # tensor names, "" for an omitted optional input
    outputs: list
    attrs: dict = field(default_factory=dict)
    domain: str = ""

    def __repr__(self):
        return f"Node({self.name!r}, {self.op_type}, {self.inputs} -> {self.outputs})"


def attribute_dict(node_proto) -> dict:
    attrs = {}
    for a in node_proto.attribute:
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode("utf-8", "replace") for v in value]
        attrs[a.name] = value
    return attrs


class Graph:
    def __init__(self, model: onnx.ModelProto):
        self.model = model
        g = model.graph
        self.opset = default_opset(model)
        # writable copies: net surgery writes into them, and the backward kernels read them
        self.constants = {t.name: read_initializer(t) for t in g.initializer}
        _strip_weights(g)
        self.inputs = [i.name for i in g.input if i.name not in self.constants]
        self.outputs = [o.name for o in g.output]
        self.input_info = {i.name: i for i in g.input if i.name not in self.constants}
        self._check_inputs()
        self.nodes = self._toposort(g.node)
        self.producer = {}
        self.consumers = {}
        for node in self.nodes:
            for o in node.outputs:
                if o:
                    self.producer[o] = node
            for i in node.inputs:
                if i:
                    self.consumers.setdefault(i, []).append(node)
        self.by_name = {n.name: n for n in self.nodes}
        self.elem_types = self._elem_types()
        self.differentiable = self._differentiable()
        self.propagate_down = {n.name: [i in self.differentiable for i in n.inputs] for n in self.nodes}

    # --- structure -------------------------------------------------------------------------------

    def _toposort(self, node_protos):
        protos = list(node_protos)
        available = set(self.constants) | set(self.inputs) | {""}
        produced_by = {}
        for k, p in enumerate(protos):
            for o in p.output:
                produced_by[o] = k
        for p in protos:
            for i in p.input:
                if i and i not in available and i not in produced_by:
                    raise ModelError(f"node {p.name or p.op_type!r} reads tensor {i!r}, which no node, "
                                     "input or initializer provides")
        order, placed, seen_names = [], [False] * len(protos), set()
        pending = list(range(len(protos)))
        while pending:
            progressed = []
            for k in pending:
                if all(i in available for i in protos[k].input):
                    progressed.append(k)
                    available.update(protos[k].output)
            if not progressed:
                raise ModelError("the graph has a cycle (nodes " +
                                 ", ".join(repr(protos[k].name or protos[k].op_type) for k in pending[:3]) + ")")
            for k in progressed:
                placed[k] = True
                order.append(k)
            pending = [k for k in pending if not placed[k]]
        self.node_protos = [protos[k] for k in order]
        nodes = []
        for index, k in enumerate(order):
            p = protos[k]
            name = p.name or (p.output[0] if p.output and p.output[0] else f"{p.op_type}_{index}")
            if name in seen_names:
                name = f"{name}_{index}"
            seen_names.add(name)
            attrs = attribute_dict(p)
            nodes.append(Node(index, name, p.op_type, list(p.input), list(p.output), attrs, p.domain))
        return nodes

    def blob_names(self):
        """Every tensor in forward order: inputs first, then each node's outputs (Caffe's net.blobs)."""
        names = list(self.inputs)
        for node in self.nodes:
            names.extend(o for o in node.outputs if o)
        return names

    def _elem_types(self):
        types = {name: int(t.data_type) for name, t in
                 ((t.name, t) for t in self.model.graph.initializer)}
        inferred = infer(self.model, None)
        for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
                types.setdefault(vi.name, int(vi.type.tensor_type.elem_type))
        self._static_shapes = shapes_of(inferred)
        return types

    def static_shape(self, name):
        """The shape shape inference gives ``name`` without concrete inputs (dims are ints,
        symbolic names or None), or None when it gives none."""
        return self._static_shapes.get(name)

    @property
    def static_shapes(self) -> dict:
        """Shapes as inference gives them without input sizes: ints, or a symbol or None where
        a dimension is not fixed (a tensor inference could not reach is absent)."""
        return self._static_shapes

    def is_float(self, name) -> bool:
        # a tensor whose type inference could not name is assumed float (most CNN tensors are)
        return self.elem_types.get(name, onnx.TensorProto.FLOAT) in FLOAT_TYPES

    def _differentiable(self):
        """Float tensors whose value depends on a graph input: the ones a diff can reach."""
        live = {i for i in self.inputs if self.is_float(i)}
        for node in self.nodes:
            if any(i in live for i in node.inputs):
                live.update(o for o in node.outputs if o and self.is_float(o))
        return live

    def needs_backward(self, node) -> bool:
        return any(i in self.differentiable for i in node.inputs) and \
            any(o in self.differentiable for o in node.outputs)

    def has_kernel(self, node) -> bool:
        return node.domain in ("", "ai.onnx") and node.op_type in REGISTRY

    def score_blob(self) -> str:
        """The pre-softmax class scores by default: the input of the Softmax (or LogSoftmax) that
        produces an output of the net, else the net's first output."""
        return next((self.producer[o].inputs[0] for o in self.outputs
                     if o in self.producer and self.producer[o].op_type in SOFTMAX_OPS), self.outputs[0])

    def ancestors(self, blob) -> set:
        """Every blob the value of ``blob`` depends on (itself included), constants left out."""
        seen, stack = set(), [blob]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            node = self.producer.get(name)
            if node is not None:
                stack.extend(i for i in node.inputs if i and i not in self.constants)
        return seen

    def check_supported(self, score_blob=None):
        """Refuse, at load, the ops without a kernel on the backward path: between the inputs and
        the score blob (default: ``score_blob()``). An op after the score (an ArgMax, a TopK on the
        probabilities) or in a shape computation never blocks; a diff the user sends through one
        is refused when it reaches it (the walker)."""
        needed = self.ancestors(score_blob or self.score_blob())
        missing = [node for node in self.nodes if self.needs_backward(node) and not self.has_kernel(node)
                   and any(o in needed for o in node.outputs)]
        if missing:
            raise self.unsupported(missing)

    def unsupported(self, nodes) -> UnsupportedOpError:
        """The error for these kernel-less nodes: each op, its nodes, the nearest alternative."""
        missing, hints = {}, {}
        for node in nodes:
            op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
            missing.setdefault(op, []).append(node.name)
            hints[op] = advice(node.op_type, node.domain)
        return UnsupportedOpError(missing, hints)

    def kept_tensors(self):
        """Runtime tensors some backward kernel reads (constants are always at hand)."""
        kept = set()
        for node in self.nodes:
            if not self.needs_backward(node) or not self.has_kernel(node):
                continue
            op = REGISTRY[node.op_type]
            for k in op.bottoms_read(self.propagate_down[node.name]):
                if k < len(node.inputs) and node.inputs[k]:
                    kept.add(node.inputs[k])
            for k in op.tops:
                if k < len(node.outputs) and node.outputs[k]:
                    kept.add(node.outputs[k])
            # integer side inputs (starts, pads, axes computed at run time) are tiny: always keep them
            kept.update(i for i in node.inputs if i and not self.is_float(i))
        kept -= set(self.constants)
        # a shape that inference cannot pin down is taken from the forward pass itself; a leading
        # dimension inference made up (unk__…, where a computed Reshape lost the batch) is one
        batch = self._batch_symbols()
        kept |= {t for t in self.differentiable if t not in self.inputs
                 and not _static_except_batch(self._static_shapes.get(t), batch)}
        return kept

    def _batch_symbols(self):
        """The symbolic leading dimensions of the inputs ("batch", "N", None where unnamed)."""
        symbols = set()
        for name in self.inputs:
            dims = self.input_info[name].type.tensor_type.shape.dim
            if len(dims) and not dims[0].HasField("dim_value"):
                symbols.add(dims[0].dim_param or None)
        return symbols

    def node_attrs(self, node):
        """The layer's ``attrs`` in the kernel contract (kernels/registry.py): its ONNX attributes,
        the opset, its name, and how many outputs it names (trailing omitted ones not counted)."""
        attrs = dict(node.attrs)
        attrs["opset"] = self.opset
        attrs["node_name"] = node.name
        attrs["n_outputs"] = len(node.outputs) - next(
            (k for k, name in enumerate(reversed(node.outputs)) if name), len(node.outputs))
        return attrs

    def resolve_node(self, name, what="layer"):
        """A node by its name or by the name of a blob it produces."""
        if name in self.by_name:
            return self.by_name[name]
        if name in self.producer:
            return self.producer[name]
        raise BlobError(f"unknown {what} {name!r}: it is neither a node nor a blob of this net")

    # --- shapes ----------------------------------------------------------------------------------

    def shapes(self, input_shapes: dict) -> dict:
        """Concrete shape of every tensor for the given input shapes (None where unknown)."""
        inferred = infer(self.model, input_shapes)
        shapes = shapes_of(inferred)
        for name, value in self.constants.items():
            shapes[name] = tuple(value.shape)
        shapes.update({k: tuple(v) for k, v in input_shapes.items()})
        return {k: (v if v is not None and all(isinstance(d, int) and d >= 0 for d in v) else None)
                for k, v in shapes.items()}

    def input_shape(self, name, batch=1):
        """The declared shape of an input, with symbolic dimensions as None (batch → ``batch``)."""
        dims = self.input_info[name].type.tensor_type.shape.dim
        shape = []
        for k, d in enumerate(dims):
            if d.HasField("dim_value"):
                shape.append(int(d.dim_value))
            else:
                shape.append(batch if k == 0 else None)
        return tuple(shape)

    def _check_inputs(self):
        """Declared input dimensions are sizes of at least 1, and element types numpy has."""
        for name in self.inputs:
            shape = self.input_shape(name, batch=1)
            if any(d is not None and d < 1 for d in shape):
                raise ModelError(f"input {name!r} declares shape {shape}: dimensions must be at "
                                 "least 1")
            elem = self.input_info[name].type.tensor_type.elem_type
            try:
                dtype = np.dtype(self.input_dtype(name))
            except (KeyError, TypeError, ValueError):
                dtype = None
            if dtype is None or dtype.kind not in "fiub":
                known = elem in onnx.TensorProto.DataType.values()
                raise ModelError(f"input {name!r} has element type "
                                 f"{onnx.TensorProto.DataType.Name(elem) if known else elem}, "
                                 "which is not a number type")

    def input_dtype(self, name):
        elem = self.input_info[name].type.tensor_type.elem_type or onnx.TensorProto.FLOAT
        return helper.tensor_dtype_to_np_dtype(elem)


def _strip_weights(graph):
    """Large initializers now live in Graph.constants; the proto keeps only their type and dims."""
    for t in graph.initializer:
        if math.prod(t.dims) > SMALL_CONSTANT:
            dims, dtype, name = list(t.dims), t.data_type, t.name
            t.Clear()
            t.name, t.data_type = name, dtype
            t.dims.extend(dims)


def _static_except_batch(shape, batch_symbols=None):
    """Every dimension fixed but the first, which is fixed or an input's own batch symbol."""
    if shape is None or any(not isinstance(d, int) for d in shape[1:]):
        return False
    return not shape or isinstance(shape[0], int) or batch_symbols is None or shape[0] in batch_symbols
