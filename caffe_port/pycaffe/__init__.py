"""pycaffe's inference surface: ``import caffe_port.pycaffe as caffe`` and run the program.

    import caffe_port.pycaffe as caffe
    caffe.set_mode_cpu()
    net = caffe.Net("deploy.prototxt", "model.caffemodel", caffe.TEST)
    transformer = caffe.io.Transformer({"data": net.blobs["data"].data.shape})
    ...
    net.forward()
    net.blobs["fc8"].diff[0, 281] = 1
    saliency = net.backward(start="fc8")["data"]

``Net`` (blobs, params, layers, forward/backward and their ``_all`` forms), ``Classifier``,
``io`` (load_image, resize_image, oversample, Transformer, BlobProto/Datum conversion),
``proto.caffe_pb2``, ``TRAIN``/``TEST`` and the mode functions. What is and is not covered is
tabled in docs/pycaffe-compatibility.md.
"""
from caffe_port import __version__
from caffe_port.pycaffe import io
from caffe_port.pycaffe._classifier import Classifier
from caffe_port.pycaffe._net import Blob, Net
from caffe_port.pycaffe._proto import TEST, TRAIN, proto
from caffe_port.pycaffe.mode import set_device, set_mode_cpu, set_mode_gpu, set_random_seed

__all__ = ["Net", "Classifier", "Blob", "TRAIN", "TEST", "io", "proto", "set_mode_cpu",
           "set_mode_gpu", "set_device", "set_random_seed", "__version__"]
