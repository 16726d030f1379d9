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

__all__ = ["Net", "Classifier", "Blob", "TRAIN", "TEST", "io", "proto", "set_mode_cpu",
           "set_mode_gpu", "set_device", "__version__"]

_mode = {"device": "cpu", "gpu_id": 0}   # Caffe starts in CPU mode


def set_mode_cpu():
    """Nets created from now on run on the CPU."""
    _mode["device"] = "cpu"


def set_mode_gpu():
    """Nets created from now on run on CUDA (ONNX Runtime's CUDA provider); without a usable GPU
    they run on the CPU, with a warning."""
    _mode["device"] = "cuda"


def set_device(device_id):
    """Choose the GPU. caffe_port's runtime uses the first visible CUDA device: to use another,
    start Python with CUDA_VISIBLE_DEVICES set to it."""
    _mode["gpu_id"] = int(device_id)
    if int(device_id) != 0:
        from caffe_port.pycaffe._net import _warn_once
        _warn_once("set_device", f"caffe.set_device({int(device_id)}): caffe_port runs on the "
                   f"first visible CUDA device; set CUDA_VISIBLE_DEVICES={int(device_id)} before "
                   "starting Python to use that GPU", stacklevel=2)


def _engine_device():
    if _mode["device"] == "cpu":
        return "cpu"
    from caffe_port.runtime import cuda_available
    if cuda_available():
        return "cuda"
    from caffe_port.pycaffe._net import _warn_once
    _warn_once("no_gpu", "caffe.set_mode_gpu(): no usable CUDA device or ONNX Runtime CUDA "
               "provider; running on the CPU", stacklevel=3)
    return "cpu"
