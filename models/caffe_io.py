"""Reading and writing Caffe's own files: ``.prototxt`` (text) and ``.caffemodel`` (binary).

Both hold a ``caffe.NetParameter`` (see ``caffe_proto``): a prototxt names the layers and their
settings, a caffemodel the same layers with their parameter blobs. Two generations of the format
are read and written as they are:

* V2: ``layer { type: "Convolution" ... }``, blobs with ``shape { dim: ... }``;
* V1: ``layers { type: CONVOLUTION ... }``, blobs with ``num``/``channels``/``height``/``width``
  (the old BVLC CaffeNet and VGG caffemodels), learning rates as ``blobs_lr``.

``upgrade_net`` turns either into what Caffe's ``UpgradeNetAsNeeded`` makes of it before building
a net: V2 layers only, and the legacy ``input`` + ``input_dim``/``input_shape`` fields turned into
an ``Input`` layer named "input". Errors a user can cause (missing file, syntax error, truncated
file, V0 file) raise ``ModelError`` with the file named; unknown fields in a prototxt (another
Caffe fork's additions) are skipped with a warning that names the first one and its line.
"""
from __future__ import annotations

import math
import os
import re
import warnings

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from caffe_port.errors import ModelError

from . import caffe_proto

# V1 enum layer type -> V2 type string, as Caffe's UpgradeV1LayerType names them.
V1_TYPE_NAMES = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution", "DATA": "Data", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}
V2_TYPE_ENUMS = {v: k for k, v in V1_TYPE_NAMES.items() if v}

_LEGACY_DIMS = ("num", "channels", "height", "width")
_SOLVER_FIELDS = {"net", "net_param", "train_net", "test_net", "base_lr", "lr_policy", "max_iter",
                  "solver_mode", "snapshot_prefix", "test_iter", "test_interval", "momentum"}
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


# --- text: .prototxt ---------------------------------------------------------------------------

def _read_bytes(path, what) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ModelError(f"{what} not found: {os.fspath(path)}") from None
    except IsADirectoryError:
        raise ModelError(f"{what} is a directory, not a file: {os.fspath(path)}") from None
    except OSError as e:
        raise ModelError(f"cannot read {what} {os.fspath(path)}: {e.strerror}") from None


def _parse_error_text(error) -> str:
    """text_format prefixes 'line:col : '; we put the position in our own words."""
    return re.sub(r"^\d+(:\d+)? : ", "", str(error))


def parse_prototxt(text: str, source: str = "<prototxt>", message: str = "NetParameter"):
    """Parse prototxt text into a ``caffe.<message>``.

    A syntax error raises ``ModelError`` naming ``source``, the line and the column. Fields this
    schema does not know are skipped with one warning naming the first of them.
    """
    result = caffe_proto.message_class(message)()
    try:
        text_format.Parse(text, result)
        return result
    except RecursionError:
        raise _too_deep(source) from None
    except text_format.ParseError as strict_error:
        problem = _parse_error_text(strict_error)
        where = f"{source}: line {strict_error.GetLine()}, column {strict_error.GetColumn()}"
        unknown = re.match(r'Message type "([\w.]+)" has no field named "(\w+)"', problem)
        if not unknown:
            raise ModelError(f"{where}: {problem}") from None
        if unknown.group(1) == f"caffe.{message}" and unknown.group(2) in _SOLVER_FIELDS:
            raise ModelError(f"{where}: field {unknown.group(2)!r} belongs to a solver prototxt; "
                             "give the net's prototxt (e.g. deploy.prototxt)") from None
    result = caffe_proto.message_class(message)()
    try:
        text_format.Parse(text, result, allow_unknown_field=True)
    except RecursionError:                     # the parser skips unknown blocks recursively
        raise _too_deep(source) from None
    except text_format.ParseError as e:
        raise ModelError(f"{source}: line {e.GetLine()}, column {e.GetColumn()}: "
                         f"{_parse_error_text(e)}") from None
    warnings.warn(f"{where}: skipped field {unknown.group(2)!r} unknown to {unknown.group(1)} "
                  "(not in BVLC Caffe's schema; fields unknown here are ignored)", stacklevel=2)
    return result


def _too_deep(source):
    return ModelError(f"{source}: blocks nested deeper than the text-format parser follows "
                      "(a net's blocks nest a few levels; this file nests thousands)")


def read_prototxt(path, message: str = "NetParameter"):
    """Read a ``.prototxt`` file into a ``caffe.NetParameter`` (see ``parse_prototxt``)."""
    data = _read_bytes(path, "prototxt")
    if data.startswith(_HDF5_MAGIC) or b"\x00" in data[:4096]:
        raise ModelError(f"{os.fspath(path)}: not a text prototxt (binary data; a .caffemodel "
                         "goes in the weights argument)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelError(f"{os.fspath(path)}: not a text prototxt (byte {e.start} is not UTF-8)") \
            from None
    return parse_prototxt(text, os.fspath(path), message)


def prototxt_text(net) -> str:
    return text_format.MessageToString(net)


def write_prototxt(net, path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(prototxt_text(net))


# --- binary: .caffemodel -----------------------------------------------------------------------

def parse_caffemodel(data: bytes, source: str = "<caffemodel>", message: str = "NetParameter"):
    """Parse binary protobuf bytes into a ``caffe.<message>``; unknown fields are kept unread."""
    if data.startswith(_HDF5_MAGIC):
        raise ModelError(f"{source}: an HDF5 snapshot (.caffemodel.h5); only the protobuf "
                         ".caffemodel format is read")
    result = caffe_proto.message_class(message)()
    try:
        result.ParseFromString(data)
    except DecodeError as e:
        hint = ("it looks like text: a prototxt?" if data[:200].lstrip()[:6] in
                (b"name: ", b"layer ", b"layer{", b"input:", b"layers")
                else "the file is truncated or corrupt")
        raise ModelError(f"{source}: not a readable binary {message} ({hint}; protobuf says: "
                         f"{e})") from None
    return result


def read_caffemodel(path):
    """Read a binary ``.caffemodel`` into a ``caffe.NetParameter``."""
    return parse_caffemodel(_read_bytes(path, "caffemodel"), os.fspath(path))


def write_caffemodel(net, path) -> None:
    with open(path, "wb") as f:
        f.write(net.SerializeToString())


def read_blobproto(path) -> np.ndarray:
    """A ``.binaryproto`` blob (e.g. ilsvrc_2012_mean.binaryproto) as a float32 array in its
    stored shape — Caffe's ``caffe.io.blobproto_to_array``."""
    source = os.fspath(path)
    return blob_to_array(parse_caffemodel(_read_bytes(path, "blob file"), source, "BlobProto"),
                         source)


# --- blobs ---------------------------------------------------------------------------------------

def blob_shape(blob) -> tuple:
    """A BlobProto's shape as Caffe's Blob::FromProto reads it: the legacy 4D
    (num, channels, height, width) when any of those is set, else ``shape.dim``."""
    if any(blob.HasField(name) for name in _LEGACY_DIMS):
        return tuple(int(getattr(blob, name)) for name in _LEGACY_DIMS)
    return tuple(int(d) for d in blob.shape.dim)


def blob_to_array(blob, source: str = "blob") -> np.ndarray:
    """The values of a BlobProto as float32 in ``blob_shape(blob)``; ``double_data`` wins
    when present (as in Caffe). A count that disagrees with the shape raises ``ModelError``."""
    shape = blob_shape(blob)
    if any(d < 0 for d in shape):
        raise ModelError(f"{source}: has a negative dimension in its shape {shape} (corrupt file?)")
    values = blob.double_data if len(blob.double_data) else blob.data
    with np.errstate(over="ignore"):              # a double beyond float32 becomes inf: refused below
        array = np.array(values, dtype=np.float32)
    if array.size != math.prod(shape):
        raise ModelError(f"{source}: holds {array.size} values but its shape {shape} needs "
                         f"{math.prod(shape)} (file truncated or corrupt?)")
    if not np.all(np.isfinite(array)):
        raise ModelError(f"{source}: holds {int(np.count_nonzero(~np.isfinite(array)))} NaN or "
                         f"infinite value(s) (damaged weights or mean?)")
    return array.reshape(shape)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _packed_floats(field_number: int, array) -> bytes:
    """Wire bytes of a packed ``repeated float`` field: protobuf parses these at C speed, where
    ``extend`` on a repeated field goes through Python one float at a time."""
    payload = np.ascontiguousarray(array, dtype="<f4").tobytes()
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


def array_to_blob(array, *, legacy: bool = False):
    """A BlobProto holding ``array`` as float32 ``data``.

    ``legacy=True`` writes the V1-era 4D dimensions (num, channels, height, width), padding the
    shape with leading 1s as Caffe did (an InnerProduct weight (M, K) is stored as 1×1×M×K);
    otherwise ``shape { dim: ... }``.
    """
    array = np.asarray(array)
    blob = caffe_proto.BlobProto()
    if legacy:
        if array.ndim > 4:
            raise ValueError(f"legacy blobs have at most 4 axes, got shape {array.shape}")
        for name, size in zip(_LEGACY_DIMS, (1,) * (4 - array.ndim) + array.shape):
            setattr(blob, name, int(size))
    else:
        blob.shape.dim.extend(int(d) for d in array.shape)
    if array.size:
        blob.MergeFromString(_packed_floats(5, array.ravel()))
    return blob


def legacy_shape_matches(shape, blob) -> bool:
    """Caffe's Blob::ShapeEquals(BlobProto): a legacy 4D blob matches a shape of at most 4 axes
    whose leading-1-padded form equals (num, channels, height, width); otherwise the dims must
    be equal."""
    stored = blob_shape(blob)
    if any(blob.HasField(name) for name in _LEGACY_DIMS):
        return len(shape) <= 4 and (1,) * (4 - len(shape)) + tuple(shape) == stored
    return tuple(shape) == stored


def caffemodel_layers(net) -> dict:
    """{layer name: [BlobProto, ...]} from a caffemodel of either generation (V2 ``layer`` or
    V1 ``layers``), every layer listed (those without params with no blobs). A name seen twice
    keeps the later blobs, as Caffe's CopyTrainedLayersFrom copies layer after layer into the
    same target."""
    found = {}
    for layer in list(net.layers) + list(net.layer):
        if len(layer.blobs) or layer.name not in found:
            found[layer.name] = list(layer.blobs)
    return found


# --- upgrades --------------------------------------------------------------------------------

def _upgrade_v1_layer(v1, source):
    """One V1LayerParameter as a LayerParameter, as Caffe's UpgradeV1LayerParameter does."""
    if v1.HasField("layer"):
        raise ModelError(f"{source}: layer {v1.layer.name or v1.name!r} is in Caffe's V0 format "
                         "(2013); upgrade the file with Caffe's upgrade_net_proto_text first")
    layer = caffe_proto.LayerParameter(name=v1.name)
    type_name = caffe_proto.V1LayerParameter.LayerType.Name(v1.type)
    layer.type = V1_TYPE_NAMES[type_name]
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    layer.blobs.extend(v1.blobs)
    layer.loss_weight.extend(v1.loss_weight)
    n_specs = max(len(v1.param), len(v1.blob_share_mode), len(v1.blobs_lr), len(v1.weight_decay))
    for i in range(n_specs):
        spec = layer.param.add()
        if i < len(v1.param):
            spec.name = v1.param[i]
        if i < len(v1.blob_share_mode):
            spec.share_mode = v1.blob_share_mode[i]
        if i < len(v1.blobs_lr):
            spec.lr_mult = v1.blobs_lr[i]
        if i < len(v1.weight_decay):
            spec.decay_mult = v1.weight_decay[i]
    for field, value in v1.ListFields():
        if field.name.endswith("_param") and field.name in layer.DESCRIPTOR.fields_by_name:
            getattr(layer, field.name).CopyFrom(value)
    return layer


def _input_layer(net, source):
    """Caffe's UpgradeNetInput: ``input`` + ``input_dim`` / ``input_shape`` -> an Input layer."""
    names = list(net.input)
    if len(net.input_dim) and len(net.input_shape):
        raise ModelError(f"{source}: give input shapes as input_shape or input_dim, not both")
    if len(net.input_dim):
        if len(net.input_dim) != 4 * len(names):
            raise ModelError(f"{source}: {len(names)} input(s) need {4 * len(names)} input_dim "
                             f"values (N, C, H, W each), found {len(net.input_dim)}")
        shapes = [list(net.input_dim[4 * i:4 * i + 4]) for i in range(len(names))]
    elif len(net.input_shape) in (1, len(names)) and len(net.input_shape):
        shapes = [list(net.input_shape[min(i, len(net.input_shape) - 1)].dim)
                  for i in range(len(names))]
    else:
        raise ModelError(f"{source}: input {names[0]!r} has no shape (input_dim or input_shape); "
                         f"{len(net.input_shape)} input_shape(s) for {len(names)} inputs")
    layer = caffe_proto.LayerParameter(name="input", type="Input")
    layer.top.extend(names)
    for shape in shapes:
        layer.input_param.shape.add().dim.extend(shape)
    return layer


def upgrade_net(net, source: str = "<net>"):
    """A copy of ``net`` in the current format: V2 ``layer`` entries only (V1 ``layers``
    upgraded), legacy inputs turned into a leading Input layer named "input". The input is not
    changed."""
    if len(net.layer) and len(net.layers):
        raise ModelError(f"{source}: has both 'layer' (V2) and 'layers' (V1) entries; "
                         "Caffe refuses such a file too")
    upgraded = caffe_proto.NetParameter()
    upgraded.CopyFrom(net)
    del upgraded.layer[:]
    del upgraded.layers[:]
    for field in ("input", "input_dim", "input_shape"):
        upgraded.ClearField(field)
    if len(net.input):
        upgraded.layer.append(_input_layer(net, source))
    if len(net.layers):
        upgraded.layer.extend(_upgrade_v1_layer(v1, source) for v1 in net.layers)
    else:
        upgraded.layer.extend(net.layer)
    return upgraded


def downgrade_to_v1(net):
    """A V1 (``layers``) copy of a V2 net with its blobs in the legacy 4D form — the inverse of
    the V1 upgrade, for writing files in the format of the old BVLC model zoo. Inputs stay as
    ``input`` + ``input_dim``; Input layers become those fields."""
    v1 = caffe_proto.NetParameter()
    v1.CopyFrom(net)
    del v1.layer[:]
    input_shapes = [list(shape.dim) for layer in net.layer if layer.type == "Input"
                    for shape in layer.input_param.shape]
    for layer in net.layer:
        if layer.type == "Input":
            if len(layer.input_param.shape) not in (1, len(layer.top)):
                raise ValueError(f"layer {layer.name!r}: one input shape per top, or one for all")
            for i, top in enumerate(layer.top):
                shape = layer.input_param.shape[min(i, len(layer.input_param.shape) - 1)]
                v1.input.append(top)
                if all(len(s) == 4 for s in input_shapes):
                    v1.input_dim.extend(shape.dim)
                else:
                    v1.input_shape.add().CopyFrom(shape)
            continue
        if layer.type not in V2_TYPE_ENUMS:
            raise ValueError(f"layer {layer.name!r}: type {layer.type} has no V1 form")
        old = v1.layers.add(name=layer.name)
        old.type = caffe_proto.V1LayerParameter.LayerType.Value(V2_TYPE_ENUMS[layer.type])
        old.bottom.extend(layer.bottom)
        old.top.extend(layer.top)
        old.include.extend(layer.include)
        old.exclude.extend(layer.exclude)
        old.loss_weight.extend(layer.loss_weight)
        for spec in layer.param:
            old.blobs_lr.append(spec.lr_mult)
            old.weight_decay.append(spec.decay_mult)
        for blob in layer.blobs:
            old.blobs.append(array_to_blob(blob_to_array(blob), legacy=True))
        for field, value in layer.ListFields():
            if field.name.endswith("_param") and field.name in old.DESCRIPTOR.fields_by_name:
                getattr(old, field.name).CopyFrom(value)
    return v1
