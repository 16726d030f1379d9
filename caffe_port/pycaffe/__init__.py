"""pycaffe as a module: ``import caffe_port.pycaffe as caffe`` and run the program.

    import caffe_port.pycaffe as caffe
    caffe.set_mode_cpu()
    net = caffe.Net("deploy.prototxt", "model.caffemodel", caffe.TEST)
    transformer = caffe.io.Transformer({"data": net.blobs["data"].data.shape})
    ...
    net.forward()
    net.blobs["fc8"].diff[0, 281] = 1
    saliency = net.backward(start="fc8")["data"]

``Net`` (blobs, params, layers, forward/backward and their ``_all`` forms, save, copy_from,
share_with, HDF5), ``Classifier``, ``io`` (load_image, resize_image, oversample, Transformer,
BlobProto/Datum conversion), ``proto.caffe_pb2``, ``NetSpec``/``layers``/``params``/``to_proto``,
``draw``, ``coord_map``, ``layer_type_list``, ``TRAIN``/``TEST``, the mode functions and
``set_random_seed``. What is and is not covered is tabled in docs/pycaffe-compatibility.md.
"""
from caffe_port import __version__
from caffe_port.pycaffe import coord_map, draw, io, proto
from caffe_port.pycaffe._classifier import Classifier
from caffe_port.pycaffe._net import Blob, Net, layer_type_list
from caffe_port.pycaffe.mode import set_device, set_mode_cpu, set_mode_gpu, set_random_seed
from caffe_port.pycaffe.net_spec import NetSpec, layers, params, to_proto
from caffe_port.pycaffe.proto.caffe_pb2 import TEST, TRAIN

__all__ = ["Net", "Classifier", "Blob", "TRAIN", "TEST", "io", "proto", "draw", "coord_map",
           "NetSpec", "layers", "params", "to_proto", "layer_type_list", "set_mode_cpu",
           "set_mode_gpu", "set_device", "set_random_seed", "__version__"]
