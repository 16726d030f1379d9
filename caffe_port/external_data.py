"""Tensors an exporter kept beside the model file (``model.onnx.data``), read from the model's
own folder.

ONNX's external data names, per tensor, a file ``location`` relative to the model file, with an
``offset`` and ``length`` in it: the dynamo exporter writes every weight that way, and
``onnx.save(..., save_as_external_data=True)`` does on request. A path is resolved against the
folder of the .onnx file, wherever the user runs from; bytes and ModelProtos have no folder of
their own, so theirs is the one given (``Net(model_bytes, weights="folder")``) or the current one.
A file that is missing, or a location that leaves that folder (ONNX's own rule), is refused in
one line naming the tensor, the file and the folder looked in.
"""
from __future__ import annotations

import os
from pathlib import Path

import onnx
from onnx import external_data_helper

from caffe_port.errors import ModelError


def _tensors(graph):
    """Every TensorProto of the graph that could be stored outside: initializers and the
    tensors of node attributes (Constant's value), subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for sub in attribute.graphs:
                yield from _tensors(sub)


def external_tensors(model: onnx.ModelProto) -> dict:
    """{location: [tensor names]} of the tensors stored outside the model."""
    found = {}
    for tensor in _tensors(model.graph):
        if external_data_helper.uses_external_data(tensor):
            location = external_data_helper.ExternalDataInfo(tensor).location
            found.setdefault(location, []).append(tensor.name)
    return found


def resolved(model: onnx.ModelProto, folder, where: str) -> onnx.ModelProto:
    """``model`` with its external tensors read from ``folder`` (a copy; the model itself when it
    has none)."""
    stored = external_tensors(model)
    if not stored:
        return model
    folder = Path(folder)
    if folder.is_file():            # the data file itself was named
        folder = folder.parent
    for location, names in stored.items():
        path = folder / location
        if not path.is_file():
            more = f" and {len(names) - 1} more" if len(names) > 1 else ""
            raise ModelError(f"{where}: tensor {names[0]!r}{more} is stored in {location!r}, which is not "
                             f"a file in {os.fspath(folder) or '.'} (keep the data file beside the model)")
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    try:
        external_data_helper.load_external_data_for_model(copy, os.fspath(folder))
    except Exception as e:     # ONNX refuses locations outside the folder, short files …
        raise ModelError(f"{where}: cannot read its external tensor data: "
                         f"{str(e).strip().splitlines()[0]}") from None
    return copy
