"""One real (tiny) benchmark run shared by the run, report and plot tests: lenet at batch 2, plus
an .onnx whose input has no fixed size, which the benchmark must refuse in that configuration's
row, not crash on."""
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from caffe_port.onnx_util import initializer, make_model
from helpers.bench_runs import TINY_OPTIONS, run_bench


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(result, path of its JSON, the run's log on stderr)."""
    tmp = tmp_path_factory.mktemp("bench")
    weights = np.random.default_rng(0).standard_normal((2, 3, 3, 3)).astype(np.float32)
    free_size = make_model(helper.make_graph(
        [helper.make_node("Conv", ["data", "w"], ["conv"], name="conv", kernel_shape=[3, 3])], "free",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("conv", TensorProto.FLOAT, None)], initializer=[initializer("w", weights)]),
        13)
    bad_path = tmp / "free_size.onnx"
    onnx.save(free_size, bad_path)
    proc = run_bench("--models", f"lenet,{bad_path}", *TINY_OPTIONS, "--json", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    path = tmp / "result.json"
    path.write_text(proc.stdout)
    return json.loads(proc.stdout), path, proc.stderr
