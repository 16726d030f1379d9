"""The high-water mark after a reset sees an allocation made after it, and RSS drops once it is freed."""
import numpy as np
import pytest

from caffe_port.bench.memory import peak_mb, release_memory, reset_peak, status_mb


def test_peak_after_reset_sees_a_new_allocation():
    release_memory()
    reset = reset_peak()
    if not reset or status_mb("VmHWM") is None:
        pytest.skip("no resettable high-water mark here (Linux /proc only)")
    before = peak_mb(reset)
    block = np.ones(64 * 2 ** 20 // 8)         # 64 MiB, every page written
    assert peak_mb(reset) - before >= 60
    del block
    release_memory()
    assert status_mb("VmRSS") <= peak_mb(reset) - 60
