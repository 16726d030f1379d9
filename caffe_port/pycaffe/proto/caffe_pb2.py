"""``caffe.proto.caffe_pb2``: Caffe's message classes, from caffe_port's own schema.

pycaffe programs read mean files with ``caffe_pb2.BlobProto()``, prototxts with
``caffe_pb2.NetParameter()`` and enum values such as ``caffe_pb2.PoolingParameter.MAX``; these
resolve to the classes of ``caffe_port.models.caffe_proto`` (built on first use, no protoc).
``TRAIN`` and ``TEST`` are the Phase values, 0 and 1. A message the schema lacks (the solver's)
is one AttributeError naming it.
"""
from __future__ import annotations

from caffe_port.models import caffe_proto

TRAIN = 0
TEST = 1


def __getattr__(name):   # PEP 562: message classes on first use
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return caffe_proto.message_class(name)
    except AttributeError:
        raise AttributeError(f"caffe_port's Caffe schema has no message {name!r} "
                             f"(caffe.proto.caffe_pb2.{name})") from None
