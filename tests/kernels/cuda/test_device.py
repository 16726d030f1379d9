"""kernels.cuda.device: transfers, OrtValue wrapping, elementwise helpers, layouts, sums, the
constant cache. Against numpy; sums float32 with rtol 1e-6, everything else exact."""
import numpy as np
import pytest

from caffe_port.kernels.cuda import device


def test_upload_keeps_shape_and_dtype():
    scalar = device.upload(np.array(2.5, np.float64), np.float32)
    assert tuple(scalar.shape) == () and scalar.dtype == np.float32
    x = np.arange(12, dtype=np.float64).reshape(3, 4)[:, ::2]              # not contiguous on the host
    np.testing.assert_array_equal(device.to_host(device.upload(x)), x)


def test_ortvalue_interface_describes_the_buffer_in_place():
    import onnxruntime as ort
    host = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    value = ort.OrtValue.ortvalue_from_numpy(host)
    interface = device.ortvalue_interface(value)
    assert interface["shape"] == (2, 3, 4) and interface["typestr"] == "<f4"
    assert interface["data"] == (value.data_ptr(), False) and interface["strides"] is None
    assert interface["data"][0] == host.__array_interface__["data"][0]        # shares the numpy memory
    int_value = ort.OrtValue.ortvalue_from_numpy(np.zeros((5,), np.int64))
    assert device.ortvalue_interface(int_value)["typestr"] == "<i8"


def test_cpu_ortvalue_becomes_a_device_copy():
    import onnxruntime as ort
    host = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    d = device.as_device(ort.OrtValue.ortvalue_from_numpy(host))
    assert device.is_device_array(d)
    np.testing.assert_array_equal(device.to_host(d), host)


def test_elementwise_helpers():
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((3, 4, 5)).astype(np.float32) for _ in range(2))
    da, db = device.upload(a), device.upload(b)
    np.testing.assert_array_equal(device.to_host(device.add(da, db)), a + b)
    np.testing.assert_array_equal(device.to_host(device.scaled(da, -1)), -a)
    np.testing.assert_array_equal(device.to_host(device.cast(da, np.float64)), a.astype(np.float64))
    c = device.copy(da)
    device.accumulate(c, db)
    np.testing.assert_array_equal(device.to_host(c), a + b)
    np.testing.assert_array_equal(device.to_host(da), a)                      # the copy was its own memory
    np.testing.assert_array_equal(device.to_host(device.zeros((2, 3))), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="do not match"):
        device.add(da, device.upload(a[0]))


@pytest.mark.parametrize("axes", [(0,), (1, 3), (0, 2, 3), (0, 1, 2, 3)])
def test_sum_axes(axes):
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 4)).astype(np.float32)
    got = device.to_host(device.sum_axes(device.upload(x), axes, divisor=2))
    np.testing.assert_allclose(got, x.sum(axis=axes) / 2, rtol=1e-6, atol=1e-6)


def test_reduce_to_and_broadcast_to():
    g = np.random.default_rng(3).standard_normal((2, 3, 4, 5)).astype(np.float32)
    got = device.to_host(device.reduce_to(device.upload(g), (4, 1)))
    np.testing.assert_allclose(got, g.sum(axis=(1, 3)).reshape(2, 4, 1), rtol=1e-6, atol=1e-6)
    same = device.upload(g)
    assert device.reduce_to(same, (3, 4, 5)) is not None
    small = np.arange(4, dtype=np.float32).reshape(4, 1)
    full = device.to_host(device.broadcast_to(device.upload(small), (4, 1), (2, 4, 3), divisor=2))
    np.testing.assert_array_equal(full, np.broadcast_to(small / 2, (2, 4, 3)))


def test_copy_layout_with_negative_strides_and_accumulate():
    src = np.arange(6, dtype=np.float32)
    dst = device.zeros((6,))
    device.copy_layout(device.upload(src), device.layout((6,)), dst, device.layout((6,), (-1,), 5))
    np.testing.assert_array_equal(device.to_host(dst), src[::-1])
    device.copy_layout(device.upload(src), device.layout((3,), (2,)), dst, device.layout((3,)), add_into=True)
    np.testing.assert_array_equal(device.to_host(dst), src[::-1] + np.r_[src[::2], 0, 0, 0])
    with pytest.raises(ValueError, match="at most"):
        device.layout((1,) * 9)


def test_resident_copies_once_until_forgotten():
    w = np.ones((3,), np.float32)
    first = device.resident(w)
    assert device.resident(w) is first
    assert device.resident(w, np.float64) is not first                         # one copy per dtype
    w[...] = 2
    np.testing.assert_array_equal(device.to_host(device.resident(w)), np.ones(3))   # stale until …
    device.forget([w])
    np.testing.assert_array_equal(device.to_host(device.resident(w)), np.full(3, 2.0))


def test_launch_shape():
    assert device.launch(1) == (1, device.THREADS)
    blocks, threads = device.launch(10 ** 9)
    assert blocks == device.MAX_BLOCKS and threads == device.THREADS
