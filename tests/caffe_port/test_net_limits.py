"""Refused before memory is touched, with the estimate in the message; damaged numbers refused
with the blob named (caffe_port/memory.py, Net's checks, the readers' checks)."""
import subprocess
import sys

import numpy as np
import pytest
from onnx import helper, numpy_helper

from caffe_port import Net, memory
from caffe_port.errors import InputError, ModelError
from caffe_port.memory import MemoryLimitError, nbytes
from caffe_port.onnx_util import make_model, tensor_value_info

HUGE_INPUT = """name: "huge"
input: "data" input_dim: 1 input_dim: 3 input_dim: 100000 input_dim: 100000
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 2 kernel_size: 3 } }
"""


def conv_net(weight=None, size=8):
    w = np.full((2, 3, 3, 3), 0.1, np.float32) if weight is None else weight
    graph = helper.make_graph(
        [helper.make_node("Conv", ["data", "w"], ["conv"], name="conv")], "g",
        [tensor_value_info("data", ("N", 3, size, size))],
        [helper.make_empty_tensor_value_info("conv")], initializer=[numpy_helper.from_array(w, "w")])
    return make_model(graph, 13)


def test_input_dim_100000_is_refused_before_the_net_allocates(tmp_path):
    path = tmp_path / "huge.prototxt"
    path.write_text(HUGE_INPUT)
    from caffe_port.models import caffe_net
    with pytest.warns(UserWarning, match="fillers"):
        model = caffe_net.caffe_to_onnx(path, fill_missing=True)
    with pytest.raises(MemoryLimitError, match=r"a forward at input data \(1, 3, 100000, 100000\) "
                                               r"needs about 223\.5 GiB \(kept blobs and diffs\) "
                                               r"but only \d+\.\d GiB of memory is available"):
        Net(model, device="cpu")


def test_a_batch_too_large_is_refused_in_forward(monkeypatch):
    import caffe_port.net as net_module
    net = Net(conv_net(), device="cpu")
    batch = np.zeros((64, 3, 8, 8), np.float32)
    need = net.memory_estimate(stack=0)
    monkeypatch.setattr(net_module, "available_memory", lambda: need * 10)
    with pytest.raises(MemoryLimitError, match=r"input data \(64, 3, 8, 8\) needs about"):
        net.forward(data=batch)
    assert net.forward(data=batch[:1])["conv"].shape == (1, 2, 6, 6)


def test_the_cli_refuses_a_huge_fixed_input_in_one_line(tmp_path, capsys):
    import onnx

    from caffe_port.cli import main
    onnx.save(conv_net(size=100_000), tmp_path / "huge.onnx")
    code = main(["info", "--model", str(tmp_path / "huge.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "caffe-port: error: a forward at input data (1, 3, 100000, 100000) needs about" in err


def test_nan_weights_are_refused_naming_the_blob():
    w = np.full((2, 3, 3, 3), 0.1, np.float32)
    w[1, 2, 0, 0] = np.nan
    w[0, 0, 0, 0] = np.inf
    with pytest.raises(ModelError, match=r"layer 'conv': param 0 \('w'\) holds 2 NaN or infinite "
                                         r"value\(s\) of 54"):
        Net(conv_net(w), device="cpu")


def test_nan_input_is_refused_naming_the_blob():
    net = Net(conv_net(), device="cpu")
    data = np.zeros((2, 3, 8, 8), np.float32)
    data[1, 0, 4, 4] = np.nan
    with pytest.raises(InputError, match=r"input 'data' holds 1 NaN or infinite value\(s\) of 384"):
        net.forward(data=data)


def test_available_memory_respects_ulimit_v():
    """Under ``ulimit -v`` what a process can allocate is the limit less what it maps already."""
    script = ("import resource; from caffe_port.memory import available_memory\n"
              "resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))\n"
              "print(available_memory())")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert 0 < int(out.stdout) < 6 << 30


def test_sizes_do_not_wrap_past_int64():
    dims = (8, 65536, 2147483647, 100000)
    assert nbytes(dims) == 4 * 8 * 65536 * 2147483647 * 100000        # numpy's prod wraps negative
    assert int(np.prod(dims)) != 8 * 65536 * 2147483647 * 100000


def test_check_fits_says_what_and_how_much(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 1 << 30)
    memory.check_fits(1 << 29, "half")
    with pytest.raises(MemoryLimitError, match=r"^two needs about 2\.0 GiB but only 1\.0 GiB of "
                                               r"memory is available: less$"):
        memory.check_fits(2 << 30, "two", "less")
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    memory.check_fits(1 << 60, "unknown limits: not refused")


def test_an_onnx_file_larger_than_memory_is_not_read(tmp_path, monkeypatch):
    import onnx
    onnx.save(conv_net(), tmp_path / "model.onnx")
    monkeypatch.setattr(memory, "available_memory", lambda: 100)
    with pytest.raises(MemoryLimitError, match=r"loading .*model.onnx needs about"):
        Net(str(tmp_path / "model.onnx"), device="cpu")
