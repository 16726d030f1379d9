"""``caffe.proto.caffe_pb2``: Caffe's message classes, from caffe_port's own schema.

pycaffe programs read mean files with ``caffe.proto.caffe_pb2.BlobProto()`` and prototxts with
``caffe_pb2.NetParameter()``; these resolve to the classes of ``caffe_port.models.caffe_proto``
(built on first use, no protoc). ``TRAIN`` and ``TEST`` are the Phase values, 0 and 1.
"""
from __future__ import annotations

import types

TRAIN = 0
TEST = 1


class _CaffePb2(types.ModuleType):
    TRAIN = TRAIN
    TEST = TEST

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        from caffe_port.models import caffe_proto
        try:
            return caffe_proto.message_class(name)
        except AttributeError:
            raise AttributeError(f"caffe_port's Caffe schema has no message {name!r} "
                                 f"(caffe.proto.caffe_pb2.{name})") from None


caffe_pb2 = _CaffePb2("caffe_port.pycaffe.proto.caffe_pb2", __doc__)
proto = types.SimpleNamespace(caffe_pb2=caffe_pb2)
