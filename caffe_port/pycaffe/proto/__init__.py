"""``caffe.proto``: the package of ``caffe_pb2``, as pycaffe's ``from caffe.proto import caffe_pb2``
finds it."""
from caffe_port.pycaffe.proto import caffe_pb2

__all__ = ["caffe_pb2"]
