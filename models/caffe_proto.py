"""Caffe's protobuf schema, built in Python (no protoc, no Caffe).

The messages of BVLC Caffe's ``caffe.proto`` that network files use: ``NetParameter`` with its
``layer`` (``LayerParameter``, the V2 format) and legacy ``layers`` (``V1LayerParameter``, enum
layer types, weights as ``blobs_lr``), ``BlobProto``/``BlobShape`` (parameter blobs, mean files),
``NetState``/``NetStateRule`` (phase/level/stage filtering), ``ParamSpec`` and the ``*_param``
message of every upstream layer type, so that any upstream prototxt parses whether or not its
layers can be converted. Names and field numbers are Caffe's (they are what makes a
``.caffemodel`` readable); defaults are Caffe's, so ``param.stride`` reads 1 when unset.

Differences from upstream, on purpose:

* ``PoolingParameter.ceil_mode`` (bool): some forks (e.g. brocolli's) renamed upstream's
  ``round_mode`` (enum CEIL = 0 / FLOOR = 1, field 13) to ``ceil_mode`` (bool, default true) on
  the same field number, with the opposite encoding of 1. Text files name the field, so both
  spellings are accepted here; ``ceil_mode`` is given the private number ``CEIL_MODE_FIELD``
  (field 13 in binary files reads as upstream ``round_mode``; converters read pooling settings
  from the prototxt, never from a ``.caffemodel``).
* ``V0LayerParameter`` (the 2013 format nested as ``layers { layer { ... } }``) only has
  ``name`` and ``type``: enough to recognise such a file and say it needs upgrading.
* ``ClipParameter`` fields are optional rather than required (parsing stays lenient).

Usage::

    from caffe_port.models import caffe_proto
    net = caffe_proto.NetParameter()          # message classes are built on first use
"""
from __future__ import annotations

from functools import lru_cache

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "caffe"
CEIL_MODE_FIELD = 1013   # private number for the fork spelling ``ceil_mode`` (see above)

ENGINE = {"DEFAULT": 0, "CAFFE": 1, "CUDNN": 2}

# Enums: "Message.Enum" for nested ones, "Enum" for top-level ones; values as in caffe.proto.
ENUMS = {
    "Phase": {"TRAIN": 0, "TEST": 1},
    "FillerParameter.VarianceNorm": {"FAN_IN": 0, "FAN_OUT": 1, "AVERAGE": 2},
    "ParamSpec.DimCheckMode": {"STRICT": 0, "PERMISSIVE": 1},
    "LossParameter.NormalizationMode": {"FULL": 0, "VALID": 1, "BATCH_SIZE": 2, "NONE": 3},
    "ConvolutionParameter.Engine": ENGINE,
    "DataParameter.DB": {"LEVELDB": 0, "LMDB": 1},
    "EltwiseParameter.EltwiseOp": {"PROD": 0, "SUM": 1, "MAX": 2},
    "HingeLossParameter.Norm": {"L1": 1, "L2": 2},
    "LRNParameter.NormRegion": {"ACROSS_CHANNELS": 0, "WITHIN_CHANNEL": 1},
    "LRNParameter.Engine": ENGINE,
    "PoolingParameter.PoolMethod": {"MAX": 0, "AVE": 1, "STOCHASTIC": 2},
    "PoolingParameter.Engine": ENGINE,
    "PoolingParameter.RoundMode": {"CEIL": 0, "FLOOR": 1},
    "ReductionParameter.ReductionOp": {"SUM": 1, "ASUM": 2, "SUMSQ": 3, "MEAN": 4},
    "ReLUParameter.Engine": ENGINE,
    "SigmoidParameter.Engine": ENGINE,
    "SoftmaxParameter.Engine": ENGINE,
    "TanHParameter.Engine": ENGINE,
    "SPPParameter.PoolMethod": {"MAX": 0, "AVE": 1, "STOCHASTIC": 2},
    "SPPParameter.Engine": ENGINE,
    "V1LayerParameter.LayerType": {
        "NONE": 0, "ABSVAL": 35, "ACCURACY": 1, "ARGMAX": 30, "BNLL": 2, "CONCAT": 3,
        "CONTRASTIVE_LOSS": 37, "CONVOLUTION": 4, "DATA": 5, "DECONVOLUTION": 39, "DROPOUT": 6,
        "DUMMY_DATA": 32, "EUCLIDEAN_LOSS": 7, "ELTWISE": 25, "EXP": 38, "FLATTEN": 8,
        "HDF5_DATA": 9, "HDF5_OUTPUT": 10, "HINGE_LOSS": 28, "IM2COL": 11, "IMAGE_DATA": 12,
        "INFOGAIN_LOSS": 13, "INNER_PRODUCT": 14, "LRN": 15, "MEMORY_DATA": 29,
        "MULTINOMIAL_LOGISTIC_LOSS": 16, "MVN": 34, "POOLING": 17, "POWER": 26, "RELU": 18,
        "SIGMOID": 19, "SIGMOID_CROSS_ENTROPY_LOSS": 27, "SILENCE": 36, "SOFTMAX": 20,
        "SOFTMAX_LOSS": 21, "SPLIT": 22, "SLICE": 33, "TANH": 23, "WINDOW_DATA": 24,
        "THRESHOLD": 31,
    },
    "V1LayerParameter.DimCheckMode": {"STRICT": 0, "PERMISSIVE": 1},
}

# Messages: (label type name, number[, default]). Labels: optional, repeated, packed (= repeated
# with [packed = true], as Caffe declares its blob data). Types are protobuf scalars, enums above
# (nested names may be written without their message) or messages of this table.
MESSAGES = {
    "BlobShape": [("packed int64 dim", 1)],
    "BlobProto": [
        ("optional BlobShape shape", 7),
        ("packed float data", 5), ("packed float diff", 6),
        ("packed double double_data", 8), ("packed double double_diff", 9),
        # the 4D dimensions of old files (V1 era), superseded by ``shape``
        ("optional int32 num", 1, 0), ("optional int32 channels", 2, 0),
        ("optional int32 height", 3, 0), ("optional int32 width", 4, 0),
    ],
    "BlobProtoVector": [("repeated BlobProto blobs", 1)],
    # one image of an LMDB/LevelDB data set (caffe.io.array_to_datum / datum_to_array)
    "Datum": [
        ("optional int32 channels", 1), ("optional int32 height", 2), ("optional int32 width", 3),
        ("optional bytes data", 4), ("optional int32 label", 5), ("repeated float float_data", 6),
        ("optional bool encoded", 7, False),
    ],
    "FillerParameter": [
        ("optional string type", 1, "constant"), ("optional float value", 2, 0.0),
        ("optional float min", 3, 0.0), ("optional float max", 4, 1.0),
        ("optional float mean", 5, 0.0), ("optional float std", 6, 1.0),
        ("optional int32 sparse", 7, -1), ("optional VarianceNorm variance_norm", 8, "FAN_IN"),
    ],
    "NetParameter": [
        ("optional string name", 1),
        ("repeated string input", 3), ("repeated BlobShape input_shape", 8),
        ("repeated int32 input_dim", 4),
        ("optional bool force_backward", 5, False), ("optional NetState state", 6),
        ("optional bool debug_info", 7, False),
        ("repeated LayerParameter layer", 100), ("repeated V1LayerParameter layers", 2),
    ],
    "NetState": [
        ("optional Phase phase", 1, "TEST"), ("optional int32 level", 2, 0),
        ("repeated string stage", 3),
    ],
    "NetStateRule": [
        ("optional Phase phase", 1), ("optional int32 min_level", 2),
        ("optional int32 max_level", 3), ("repeated string stage", 4),
        ("repeated string not_stage", 5),
    ],
    "ParamSpec": [
        ("optional string name", 1), ("optional DimCheckMode share_mode", 2),
        ("optional float lr_mult", 3, 1.0), ("optional float decay_mult", 4, 1.0),
    ],
    "LayerParameter": [
        ("optional string name", 1), ("optional string type", 2),
        ("repeated string bottom", 3), ("repeated string top", 4),
        ("optional Phase phase", 10), ("repeated float loss_weight", 5),
        ("repeated ParamSpec param", 6), ("repeated BlobProto blobs", 7),
        ("repeated bool propagate_down", 11),
        ("repeated NetStateRule include", 8), ("repeated NetStateRule exclude", 9),
        ("optional TransformationParameter transform_param", 100),
        ("optional LossParameter loss_param", 101),
        ("optional AccuracyParameter accuracy_param", 102),
        ("optional ArgMaxParameter argmax_param", 103),
        ("optional BatchNormParameter batch_norm_param", 139),
        ("optional BiasParameter bias_param", 141),
        ("optional ClipParameter clip_param", 148),
        ("optional ConcatParameter concat_param", 104),
        ("optional ContrastiveLossParameter contrastive_loss_param", 105),
        ("optional ConvolutionParameter convolution_param", 106),
        ("optional CropParameter crop_param", 144),
        ("optional DataParameter data_param", 107),
        ("optional DropoutParameter dropout_param", 108),
        ("optional DummyDataParameter dummy_data_param", 109),
        ("optional EltwiseParameter eltwise_param", 110),
        ("optional ELUParameter elu_param", 140),
        ("optional EmbedParameter embed_param", 137),
        ("optional ExpParameter exp_param", 111),
        ("optional FlattenParameter flatten_param", 135),
        ("optional HDF5DataParameter hdf5_data_param", 112),
        ("optional HDF5OutputParameter hdf5_output_param", 113),
        ("optional HingeLossParameter hinge_loss_param", 114),
        ("optional ImageDataParameter image_data_param", 115),
        ("optional InfogainLossParameter infogain_loss_param", 116),
        ("optional InnerProductParameter inner_product_param", 117),
        ("optional InputParameter input_param", 143),
        ("optional LogParameter log_param", 134),
        ("optional LRNParameter lrn_param", 118),
        ("optional MemoryDataParameter memory_data_param", 119),
        ("optional MVNParameter mvn_param", 120),
        ("optional ParameterParameter parameter_param", 145),
        ("optional PoolingParameter pooling_param", 121),
        ("optional PowerParameter power_param", 122),
        ("optional PReLUParameter prelu_param", 131),
        ("optional PythonParameter python_param", 130),
        ("optional RecurrentParameter recurrent_param", 146),
        ("optional ReductionParameter reduction_param", 136),
        ("optional ReLUParameter relu_param", 123),
        ("optional ReshapeParameter reshape_param", 133),
        ("optional ScaleParameter scale_param", 142),
        ("optional SigmoidParameter sigmoid_param", 124),
        ("optional SoftmaxParameter softmax_param", 125),
        ("optional SPPParameter spp_param", 132),
        ("optional SliceParameter slice_param", 126),
        ("optional SwishParameter swish_param", 147),
        ("optional TanHParameter tanh_param", 127),
        ("optional ThresholdParameter threshold_param", 128),
        ("optional TileParameter tile_param", 138),
        ("optional WindowDataParameter window_data_param", 129),
    ],
    "TransformationParameter": [
        ("optional float scale", 1, 1.0), ("optional bool mirror", 2, False),
        ("optional uint32 crop_size", 3, 0), ("optional string mean_file", 4),
        ("repeated float mean_value", 5), ("optional bool force_color", 6, False),
        ("optional bool force_gray", 7, False),
    ],
    "LossParameter": [
        ("optional int32 ignore_label", 1),
        ("optional NormalizationMode normalization", 3, "VALID"),
        ("optional bool normalize", 2),
    ],
    "AccuracyParameter": [
        ("optional uint32 top_k", 1, 1), ("optional int32 axis", 2, 1),
        ("optional int32 ignore_label", 3),
    ],
    "ArgMaxParameter": [
        ("optional bool out_max_val", 1, False), ("optional uint32 top_k", 2, 1),
        ("optional int32 axis", 3),
    ],
    "BatchNormParameter": [
        ("optional bool use_global_stats", 1),
        ("optional float moving_average_fraction", 2, 0.999), ("optional float eps", 3, 1e-5),
    ],
    "BiasParameter": [
        ("optional int32 axis", 1, 1), ("optional int32 num_axes", 2, 1),
        ("optional FillerParameter filler", 3),
    ],
    "ClipParameter": [("optional float min", 1), ("optional float max", 2)],
    "ConcatParameter": [("optional int32 axis", 2, 1), ("optional uint32 concat_dim", 1, 1)],
    "ContrastiveLossParameter": [
        ("optional float margin", 1, 1.0), ("optional bool legacy_version", 2, False),
    ],
    "ConvolutionParameter": [
        ("optional uint32 num_output", 1), ("optional bool bias_term", 2, True),
        ("repeated uint32 pad", 3), ("repeated uint32 kernel_size", 4),
        ("repeated uint32 stride", 6), ("repeated uint32 dilation", 18),
        ("optional uint32 pad_h", 9, 0), ("optional uint32 pad_w", 10, 0),
        ("optional uint32 kernel_h", 11), ("optional uint32 kernel_w", 12),
        ("optional uint32 stride_h", 13), ("optional uint32 stride_w", 14),
        ("optional uint32 group", 5, 1),
        ("optional FillerParameter weight_filler", 7), ("optional FillerParameter bias_filler", 8),
        ("optional Engine engine", 15, "DEFAULT"), ("optional int32 axis", 16, 1),
        ("optional bool force_nd_im2col", 17, False),
    ],
    "CropParameter": [("optional int32 axis", 1, 2), ("repeated uint32 offset", 2)],
    "DataParameter": [
        ("optional string source", 1), ("optional uint32 batch_size", 4),
        ("optional uint32 rand_skip", 7, 0), ("optional DB backend", 8, "LEVELDB"),
        ("optional float scale", 2, 1.0), ("optional string mean_file", 3),
        ("optional uint32 crop_size", 5, 0), ("optional bool mirror", 6, False),
        ("optional bool force_encoded_color", 9, False), ("optional uint32 prefetch", 10, 4),
    ],
    "DropoutParameter": [("optional float dropout_ratio", 1, 0.5)],
    "DummyDataParameter": [
        ("repeated FillerParameter data_filler", 1), ("repeated BlobShape shape", 6),
        ("repeated uint32 num", 2), ("repeated uint32 channels", 3),
        ("repeated uint32 height", 4), ("repeated uint32 width", 5),
    ],
    "EltwiseParameter": [
        ("optional EltwiseOp operation", 1, "SUM"), ("repeated float coeff", 2),
        ("optional bool stable_prod_grad", 3, True),
    ],
    "ELUParameter": [("optional float alpha", 1, 1.0)],
    "EmbedParameter": [
        ("optional uint32 num_output", 1), ("optional uint32 input_dim", 2),
        ("optional bool bias_term", 3, True),
        ("optional FillerParameter weight_filler", 4), ("optional FillerParameter bias_filler", 5),
    ],
    "ExpParameter": [
        ("optional float base", 1, -1.0), ("optional float scale", 2, 1.0),
        ("optional float shift", 3, 0.0),
    ],
    "FlattenParameter": [("optional int32 axis", 1, 1), ("optional int32 end_axis", 2, -1)],
    "HDF5DataParameter": [
        ("optional string source", 1), ("optional uint32 batch_size", 2),
        ("optional bool shuffle", 3, False),
    ],
    "HDF5OutputParameter": [("optional string file_name", 1)],
    "HingeLossParameter": [("optional Norm norm", 1, "L1")],
    "ImageDataParameter": [
        ("optional string source", 1), ("optional uint32 batch_size", 4, 1),
        ("optional uint32 rand_skip", 7, 0), ("optional bool shuffle", 8, False),
        ("optional uint32 new_height", 9, 0), ("optional uint32 new_width", 10, 0),
        ("optional bool is_color", 11, True), ("optional float scale", 2, 1.0),
        ("optional string mean_file", 3), ("optional uint32 crop_size", 5, 0),
        ("optional bool mirror", 6, False), ("optional string root_folder", 12, ""),
    ],
    "InfogainLossParameter": [("optional string source", 1), ("optional int32 axis", 2, 1)],
    "InnerProductParameter": [
        ("optional uint32 num_output", 1), ("optional bool bias_term", 2, True),
        ("optional FillerParameter weight_filler", 3), ("optional FillerParameter bias_filler", 4),
        ("optional int32 axis", 5, 1), ("optional bool transpose", 6, False),
    ],
    "InputParameter": [("repeated BlobShape shape", 1)],
    "LogParameter": [
        ("optional float base", 1, -1.0), ("optional float scale", 2, 1.0),
        ("optional float shift", 3, 0.0),
    ],
    "LRNParameter": [
        ("optional uint32 local_size", 1, 5), ("optional float alpha", 2, 1.0),
        ("optional float beta", 3, 0.75), ("optional NormRegion norm_region", 4, "ACROSS_CHANNELS"),
        ("optional float k", 5, 1.0), ("optional Engine engine", 6, "DEFAULT"),
    ],
    "MemoryDataParameter": [
        ("optional uint32 batch_size", 1), ("optional uint32 channels", 2),
        ("optional uint32 height", 3), ("optional uint32 width", 4),
    ],
    "MVNParameter": [
        ("optional bool normalize_variance", 1, True), ("optional bool across_channels", 2, False),
        ("optional float eps", 3, 1e-9),
    ],
    "ParameterParameter": [("optional BlobShape shape", 1)],
    "PoolingParameter": [
        ("optional PoolMethod pool", 1, "MAX"),
        ("optional uint32 pad", 4, 0), ("optional uint32 pad_h", 9, 0),
        ("optional uint32 pad_w", 10, 0),
        ("optional uint32 kernel_size", 2), ("optional uint32 kernel_h", 5),
        ("optional uint32 kernel_w", 6),
        ("optional uint32 stride", 3, 1), ("optional uint32 stride_h", 7),
        ("optional uint32 stride_w", 8),
        ("optional Engine engine", 11, "DEFAULT"), ("optional bool global_pooling", 12, False),
        ("optional RoundMode round_mode", 13, "CEIL"),
        ("optional bool ceil_mode", CEIL_MODE_FIELD, True),
    ],
    "PowerParameter": [
        ("optional float power", 1, 1.0), ("optional float scale", 2, 1.0),
        ("optional float shift", 3, 0.0),
    ],
    "PReLUParameter": [
        ("optional FillerParameter filler", 1), ("optional bool channel_shared", 2, False),
    ],
    "PythonParameter": [
        ("optional string module", 1), ("optional string layer", 2),
        ("optional string param_str", 3, ""), ("optional bool share_in_parallel", 4, False),
    ],
    "RecurrentParameter": [
        ("optional uint32 num_output", 1, 0),
        ("optional FillerParameter weight_filler", 2), ("optional FillerParameter bias_filler", 3),
        ("optional bool debug_info", 4, False), ("optional bool expose_hidden", 5, False),
    ],
    "ReductionParameter": [
        ("optional ReductionOp operation", 1, "SUM"), ("optional int32 axis", 2, 0),
        ("optional float coeff", 3, 1.0),
    ],
    "ReLUParameter": [
        ("optional float negative_slope", 1, 0.0), ("optional Engine engine", 2, "DEFAULT"),
    ],
    "ReshapeParameter": [
        ("optional BlobShape shape", 1), ("optional int32 axis", 2, 0),
        ("optional int32 num_axes", 3, -1),
    ],
    "ScaleParameter": [
        ("optional int32 axis", 1, 1), ("optional int32 num_axes", 2, 1),
        ("optional FillerParameter filler", 3), ("optional bool bias_term", 4, False),
        ("optional FillerParameter bias_filler", 5),
    ],
    "SigmoidParameter": [("optional Engine engine", 1, "DEFAULT")],
    "SoftmaxParameter": [("optional Engine engine", 1, "DEFAULT"), ("optional int32 axis", 2, 1)],
    "SPPParameter": [
        ("optional uint32 pyramid_height", 1), ("optional PoolMethod pool", 2, "MAX"),
        ("optional Engine engine", 6, "DEFAULT"),
    ],
    "SliceParameter": [
        ("optional int32 axis", 3, 1), ("repeated uint32 slice_point", 2),
        ("optional uint32 slice_dim", 1, 1),
    ],
    "SwishParameter": [("optional float beta", 1, 1.0)],
    "TanHParameter": [("optional Engine engine", 1, "DEFAULT")],
    "ThresholdParameter": [("optional float threshold", 1, 0.0)],
    "TileParameter": [("optional int32 axis", 1, 1), ("optional int32 tiles", 2)],
    "WindowDataParameter": [
        ("optional string source", 1), ("optional float scale", 2, 1.0),
        ("optional string mean_file", 3), ("optional uint32 batch_size", 4),
        ("optional uint32 crop_size", 5, 0), ("optional bool mirror", 6, False),
        ("optional float fg_threshold", 7, 0.5), ("optional float bg_threshold", 8, 0.5),
        ("optional float fg_fraction", 9, 0.25), ("optional uint32 context_pad", 10, 0),
        ("optional string crop_mode", 11, "warp"), ("optional bool cache_images", 12, False),
        ("optional string root_folder", 13, ""),
    ],
    "V1LayerParameter": [
        ("repeated string bottom", 2), ("repeated string top", 3), ("optional string name", 4),
        ("repeated NetStateRule include", 32), ("repeated NetStateRule exclude", 33),
        ("optional LayerType type", 5), ("repeated BlobProto blobs", 6),
        ("repeated string param", 1001), ("repeated DimCheckMode blob_share_mode", 1002),
        ("repeated float blobs_lr", 7), ("repeated float weight_decay", 8),
        ("repeated float loss_weight", 35),
        ("optional AccuracyParameter accuracy_param", 27),
        ("optional ArgMaxParameter argmax_param", 23),
        ("optional ConcatParameter concat_param", 9),
        ("optional ContrastiveLossParameter contrastive_loss_param", 40),
        ("optional ConvolutionParameter convolution_param", 10),
        ("optional DataParameter data_param", 11),
        ("optional DropoutParameter dropout_param", 12),
        ("optional DummyDataParameter dummy_data_param", 26),
        ("optional EltwiseParameter eltwise_param", 24),
        ("optional ExpParameter exp_param", 41),
        ("optional HDF5DataParameter hdf5_data_param", 13),
        ("optional HDF5OutputParameter hdf5_output_param", 14),
        ("optional HingeLossParameter hinge_loss_param", 29),
        ("optional ImageDataParameter image_data_param", 15),
        ("optional InfogainLossParameter infogain_loss_param", 16),
        ("optional InnerProductParameter inner_product_param", 17),
        ("optional LRNParameter lrn_param", 18),
        ("optional MemoryDataParameter memory_data_param", 22),
        ("optional MVNParameter mvn_param", 34),
        ("optional PoolingParameter pooling_param", 19),
        ("optional PowerParameter power_param", 21),
        ("optional ReLUParameter relu_param", 30),
        ("optional SigmoidParameter sigmoid_param", 38),
        ("optional SoftmaxParameter softmax_param", 39),
        ("optional SliceParameter slice_param", 31),
        ("optional TanHParameter tanh_param", 37),
        ("optional ThresholdParameter threshold_param", 25),
        ("optional WindowDataParameter window_data_param", 20),
        ("optional TransformationParameter transform_param", 36),
        ("optional LossParameter loss_param", 42),
        ("optional V0LayerParameter layer", 1),
    ],
    "V0LayerParameter": [("optional string name", 1), ("optional string type", 2)],
}

_SCALARS = {
    "double": 1, "float": 2, "int64": 3, "uint64": 4, "int32": 5, "bool": 8, "string": 9,
    "bytes": 12, "uint32": 13,
}


def _default_text(value) -> str:
    """A default as descriptor.proto spells it: true/false, enum value names, numbers, text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _field_proto(message_name, spec, message_proto):
    FD = descriptor_pb2.FieldDescriptorProto
    (label_type_name, number, *default) = spec
    label, type_name, name = label_type_name.split()
    field = message_proto.field.add(name=name, number=number)
    field.label = FD.LABEL_OPTIONAL if label == "optional" else FD.LABEL_REPEATED
    if label == "packed":
        field.options.packed = True
    if type_name in _SCALARS:
        field.type = _SCALARS[type_name]
    elif f"{message_name}.{type_name}" in ENUMS:
        field.type, field.type_name = FD.TYPE_ENUM, f".{PACKAGE}.{message_name}.{type_name}"
    elif type_name in ENUMS:
        field.type, field.type_name = FD.TYPE_ENUM, f".{PACKAGE}.{type_name}"
    elif type_name in MESSAGES:
        field.type, field.type_name = FD.TYPE_MESSAGE, f".{PACKAGE}.{type_name}"
    else:
        raise KeyError(f"caffe_proto: {message_name}.{name} has unknown type {type_name!r}")
    if default:
        field.default_value = _default_text(default[0])


def file_descriptor_proto():
    """The schema as a ``FileDescriptorProto`` (what protoc would have produced)."""
    fdp = descriptor_pb2.FileDescriptorProto(name="caffe_port/caffe.proto", package=PACKAGE,
                                             syntax="proto2")
    for full_name, values in ENUMS.items():
        if "." not in full_name:
            enum = fdp.enum_type.add(name=full_name)
            for value_name, number in values.items():
                enum.value.add(name=value_name, number=number)
    for message_name, fields in MESSAGES.items():
        message_proto = fdp.message_type.add(name=message_name)
        for full_name, values in ENUMS.items():
            owner, _, enum_name = full_name.rpartition(".")
            if owner == message_name:
                enum = message_proto.enum_type.add(name=enum_name)
                for value_name, number in values.items():
                    enum.value.add(name=value_name, number=number)
        for spec in fields:
            _field_proto(message_name, spec, message_proto)
    return fdp


@lru_cache(maxsize=None)
def _classes() -> dict:
    # A private pool: a real caffe_pb2 imported in the same process cannot clash with this one.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_descriptor_proto())
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
            for name in MESSAGES}


def message_class(name: str):
    """The generated message class ``caffe.<name>``, e.g. ``message_class("NetParameter")``."""
    try:
        return _classes()[name]
    except KeyError:
        raise AttributeError(f"caffe_proto has no message {name!r}") from None


def __getattr__(name):   # PEP 562: caffe_proto.NetParameter builds the schema on first use
    if name in MESSAGES:
        return message_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(MESSAGES))
