"""caffe_port: Caffe-faithful gradient visualisation on ONNX Runtime and a Numba backward pass.

Importing the package is cheap and changes nothing in the process: submodules load on first use.
The thread pools the backward needs are set up where they start (``caffe_port.kernels.threading_layer``
for Numba's, per session for ONNX Runtime's), whatever was imported before.
"""
__version__ = "0.1.0"

__all__ = ["Net", "CaffePortError", "__version__"]


def __getattr__(name):
    if name == "Net":
        from caffe_port.net import Net
        return Net
    if name == "CaffePortError":
        from caffe_port.errors import CaffePortError
        return CaffePortError
    raise AttributeError(f"module 'caffe_port' has no attribute {name!r}")
