"""caffe_port: Caffe-faithful gradient visualisation on ONNX Runtime and a Numba backward pass.

Importing the package is cheap: submodules load on first use.
"""
import os as _os

# Idle worker threads must sleep, not spin: ONNX Runtime's, Numba's and OpenBLAS's pools take turns
# on the same cores layer after layer, and a pool still spinning from the last layer steals a core
# from the next (measured on 2 cores: OpenMP spinning made a tiny ReLU call 16 ms instead of 0.02;
# OpenBLAS's default ~0.1 s spin after each matmul made CaffeNet's forward+backward 56 ms instead
# of 33). Both must be set before the libraries load, hence here: importing numpy first skips them.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

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
