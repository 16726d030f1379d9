"""Suite-wide setup. Runs before any test module imports torch or numba."""
import os

# torch's and Numba's OpenMP workers spin after each parallel region by default; on a 2-core
# machine the idle spinners of one library stall the other (a test module went from 16 s to
# 3 min 22 s). caffe_port sets the same (and OpenBLAS's) in caffe_port/__init__.py; this covers torch when a
# test imports it first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
import sys

# test-only helpers (tests/helpers: oracles, builders, the simulator patch) import as ``helpers.…``
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
