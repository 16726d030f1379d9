"""The benchmark's machinery on tiny nets: statistics, FLOP counts by hand, the per-layer profile,
the JSON/table/plot of a real (tiny) run. No timing is asserted: only shapes, arithmetic and
correctness checks that hold however fast the machine is.

Tolerances: the stacked top-5 backward equals five separate ones to 1e-5 of the largest entry
(float32, the same kernels on K·N instead of N rows: BLAS may block the two differently); PyTorch's
input gradient equals caffe_port's to 1e-4 relative L2 (float32, different summation orders);
the profiled walk's input diff equals Net.backward's to rtol 1e-6 (the same kernels in the same
order).
"""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from caffe_port import Net, bench
from caffe_port.errors import InputError
from caffe_port.graph import Graph
from caffe_port.models import builders
from caffe_port.onnx_import import load_model
from caffe_port.onnx_util import make_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "bench_backward.py")


# --- statistics and ratios ------------------------------------------------------------------------

def test_summarize_by_hand_and_against_numpy():
    s = bench.summarize([5, 1, 3, 2, 4])
    assert (s["median"], s["min"], s["max"], s["q1"], s["q3"], s["n"]) == (3, 1, 5, 2, 4, 5)
    assert s["samples"] == [5, 1, 3, 2, 4]               # in the order measured
    values = np.random.default_rng(1).exponential(size=8)
    s = bench.summarize(values)
    assert s["median"] == pytest.approx(np.median(values), rel=1e-12)
    assert s["q1"] == pytest.approx(np.percentile(values, 25), rel=1e-12)
    assert s["q3"] == pytest.approx(np.percentile(values, 75), rel=1e-12)
    with pytest.raises(ValueError):
        bench.summarize([])


def test_ratio_of_medians():
    a, b = bench.summarize([3, 30, 6]), bench.summarize([2, 4, 100])
    assert bench.ratio(a, b) == pytest.approx(6 / 4)
    assert bench.ratio(a, None) is None and bench.ratio(None, b) is None


# --- FLOP counting on hand-checkable layers --------------------------------------------------------

def _param(rng, name, shape):
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def _graph(nodes, inputs, outputs, initializers):
    model = make_model(helper.make_graph(nodes, "t", inputs, outputs, initializer=initializers), 13)
    return Graph(load_model(model))


def test_flops_conv_gemm_by_hand():
    """data (2,3,5,7) → conv 4×3×3×3 pad 1 → relu → flatten (2,140) → fc 6 (transB) = "fc"."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["data", "w", "b"], ["conv"], name="conv", kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
             helper.make_node("Flatten", ["relu"], ["flat"], name="flat", axis=1),
             helper.make_node("Gemm", ["flat", "fw", "fb"], ["fc"], name="fc", transB=1)]
    graph = _graph(nodes, [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 5, 7])],
                   [helper.make_tensor_value_info("fc", TensorProto.FLOAT, ["N", 6])],
                   [_param(rng, "w", (4, 3, 3, 3)), _param(rng, "b", (4,)),
                    _param(rng, "fw", (6, 140)), _param(rng, "fb", (6,))])
    shapes = graph.shapes({"data": (2, 3, 5, 7)})
    rows = bench.backward_flops(graph, shapes, "fc")
    # conv: top 2·4·5·7 = 280 elements, each scattering into 3·3·3 bottoms, 2 FLOPs a MAC
    # fc: dA (2, 140) = dY (2, 6) · W (6, 140): 2·2·6·140
    assert rows == [("fc", "Gemm", 2 * 2 * 6 * 140), ("conv", "Conv", 2 * 280 * 27)]
    assert bench.backward_flops(graph, shapes, "fc", k=5) == [("fc", "Gemm", 5 * 3360), ("conv", "Conv", 5 * 15120)]
    # injected at the conv's top, the fc is not walked
    assert bench.backward_flops(graph, shapes, "relu") == [("conv", "Conv", 15120)]


def test_flops_grouped_strided_conv_and_unreached_branch():
    """data (3,4,9,7) → conv 6 out, group 2, 3×3 stride 2 → "a" (3,6,4,3); a second conv on data
    feeds only "b", which the diff injected at "a" never reaches."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["data", "w"], ["a"], name="grouped", kernel_shape=[3, 3],
                              strides=[2, 2], group=2),
             helper.make_node("Conv", ["data", "w2"], ["b"], name="other", kernel_shape=[1, 1])]
    graph = _graph(nodes, [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 4, 9, 7])],
                   [helper.make_tensor_value_info("a", TensorProto.FLOAT, None),
                    helper.make_tensor_value_info("b", TensorProto.FLOAT, None)],
                   [_param(rng, "w", (6, 2, 3, 3)), _param(rng, "w2", (5, 4, 1, 1))])
    shapes = graph.shapes({"data": (3, 4, 9, 7)})
    assert shapes["a"] == (3, 6, 4, 3)
    # each of the 3·6·4·3 top elements scatters into C/G · 3·3 = 2·9 bottoms
    assert bench.backward_flops(graph, shapes, "a") == [("grouped", "Conv", 2 * 216 * 18)]


def test_flops_matmul_one_and_two_differentiable_operands():
    """x (2,3,4): y = x·W (W 4×5 constant), z = x·xᵀ (both operands carry a diff)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="y"),
             helper.make_node("Transpose", ["x"], ["xt"], name="xt", perm=[0, 2, 1]),
             helper.make_node("MatMul", ["x", "xt"], ["z"], name="z")]
    graph = _graph(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                    helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
                   [_param(rng, "w", (4, 5))])
    shapes = graph.shapes({"x": (2, 3, 4)})
    assert bench.backward_flops(graph, shapes, "y") == [("y", "MatMul", 2 * (2 * 3 * 5) * 4)]
    # z (2,3,3): dA = dZ · B ᵀ and dB = Aᵀ · dZ, 2·18·4 FLOPs each
    assert bench.backward_flops(graph, shapes, "z") == [("z", "MatMul", 2 * 2 * 18 * 4)]


# --- the per-layer profile walks what Net.backward walks ---------------------------------------

def test_profile_walks_the_same_layers_as_net_backward():
    model = builders.lenet(width=0.5, input_size=20, num_classes=7)
    net = Net(model, device="cpu")
    x = np.random.default_rng(0).standard_normal((3, 1, 20, 20)).astype(np.float32)
    net.forward(data=x)
    onehot = np.zeros((2, 3, 7), np.float32)
    onehot[0, :, 2] = onehot[1, :, 5] = 1
    rows, diff = bench.profile_backward(net, "fc8", onehot, "data")
    expected = net.backward(fc8=onehot)["data"]
    np.testing.assert_allclose(diff, expected, rtol=1e-6, atol=0)
    walked = [name for name, _, _ in rows]
    assert walked == ["fc8", "relu7", "fc7", "pool2_flat", "pool2", "relu2", "conv2", "pool1", "relu1",
                      "conv1"]
    assert all(seconds >= 0 for _, _, seconds in rows)


# --- a real run: subprocesses, JSON, table, plot -----------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """lenet at batch 2 (one thread, one repeat), plus an .onnx whose input has no fixed size,
    which the benchmark must refuse in that configuration's row, not crash on."""
    tmp = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(0)
    bad = make_model(helper.make_graph(
        [helper.make_node("Conv", ["data", "w"], ["conv"], name="conv", kernel_shape=[3, 3])], "free",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("conv", TensorProto.FLOAT, None)], initializer=[_param(rng, "w", (2, 3, 3, 3))]),
        13)
    bad_path = tmp / "free_size.onnx"
    onnx.save(bad, bad_path)
    proc = subprocess.run([sys.executable, TOOL, "--models", f"lenet,{bad_path}", "--batch", "2",
                           "--threads", "1", "--repeats", "1", "--no-startup", "--sgemm-size", "128",
                           "--device", "cpu", "--json"], capture_output=True, text=True, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    path = tmp / "result.json"
    path.write_text(proc.stdout)
    return json.loads(proc.stdout), path, proc.stderr


def test_json_shape(tiny_run):
    result, _, log = tiny_run
    assert result["schema"] == bench.SCHEMA and result["repeats"] == 1
    assert result["machine"]["threads"] == 1 and result["sgemm"]["threads"] == 1
    assert result["sgemm"]["size"] == 128 and result["sgemm"]["gflops"]["n"] == 3
    assert len(result["load_average_start"]) == 3
    good = [r for r in result["configs"] if "error" not in r]
    bad = [r for r in result["configs"] if "error" in r]
    assert [(r["model"], r["batch"]) for r in good] == [("lenet", 2)]
    assert [r["batch"] for r in bad] == [2]
    assert all("symbolic dimensions" in r["error"] and "'data'" in r["error"] for r in bad)
    for r in good:
        assert r["device"] == "cpu" and r["threads"] == 1 and r["k"] == 5
        assert set(r["ms"]) == {"ort_forward", "net_forward", "backward", "forward_backward",
                                "top5_one_pass", "top5_five_passes"}
        assert r["ms"]["backward"]["n"] == 5 and r["ms"]["top5_five_passes"]["n"] == 1
        assert r["torch"]["threads"] == 1 and r["torch"]["forward_grad_ms"]["n"] == 1
        assert set(r["load_average"]) == {"start", "end"}
        assert r["memory"]["method"] == "VmHWM after clear_refs"
        assert [p["layer"] for p in r["profile"]][0] == "fc8" and r["profile"][-1]["layer"] == "conv1"
    assert "lenet batch 2 cpu" in log


def test_arithmetic_of_the_columns(tiny_run):
    result, _, _ = tiny_run
    for r in (r for r in result["configs"] if "error" not in r):
        sgemm = r["sgemm"]["gflops"]["median"]          # timed in the configuration's own rounds
        assert r["sgemm"]["size"] == 128 and r["sgemm"]["gflops"]["n"] == 1
        ms = r["ms"]
        fb = [f + b for f, b in zip(ms["net_forward"]["samples"], ms["backward"]["samples"])]
        assert ms["forward_backward"]["samples"] == pytest.approx(fb, rel=1e-12)
        # a round of five separate passes is timed around its five forward+backward passes
        assert ms["top5_five_passes"]["samples"][0] >= sum(fb[:5])
        ratios = r["ratios"]
        assert ratios["vs_torch"] == pytest.approx(ms["forward_backward"]["median"]
                                                   / r["torch"]["forward_grad_ms"]["median"], rel=1e-12)
        assert ratios["top5"] == pytest.approx(ms["top5_one_pass"]["median"]
                                               / ms["top5_five_passes"]["median"], rel=1e-12)
        assert ratios["conv_of_sgemm"] == pytest.approx(r["flops"]["conv_gflops"] / sgemm, rel=1e-12)
        mem = r["memory"]
        assert mem["peak_above_loaded_mb"] == pytest.approx(mem["peak_mb"] - mem["loaded_mb"])
        assert ratios["peak_over_kept"] == pytest.approx(mem["peak_above_loaded_mb"] / mem["kept_mb"])
        # FLOPs: the graph's count for this batch (lenet: conv1 20·5·5 on 24², conv2 50·20·5·5 on 8²,
        # fc7 800→500, fc8 500→10)
        n = r["batch"]
        by_hand = 2 * n * (20 * 24 * 24 * 25 + 50 * 8 * 8 * 20 * 25 + 500 * 800 + 10 * 500)
        assert r["flops"]["backward_gflop"] == pytest.approx(by_hand / 1e9, rel=1e-12)
        assert sum(p["gflop"] for p in r["profile"]) == pytest.approx(by_hand / 1e9, rel=1e-12)
        # honesty checks carried in the row: the stacked top-5 and the peer compute the same thing
        assert r["top5_max_rel_diff"] < 1e-5
        assert r["torch"]["rel_l2_vs_caffe_port"] < 1e-4
        # kept: lenet's backward reads the tops of relu1/2/7 and pool1/2's bottoms (for the switches)
        assert r["memory"]["kept_blobs"] >= 3 and r["memory"]["kept_mb"] > 0


def test_targets_listed_even_when_not_measured(tiny_run):
    result, _, _ = tiny_run
    assert {t["key"] for t in result["targets"]} == {key for key, *_ in bench.TARGETS}
    assert all(t["met"] is None and t["value"] is None for t in result["targets"])


def test_table_and_plot_from_a_saved_run(tiny_run, tmp_path):
    _, path, _ = tiny_run
    png = tmp_path / "plots" / "bench.png"
    proc = subprocess.run([sys.executable, TOOL, "--load", str(path), "--plot", str(png), "--profile"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "1 thread(s) for ONNX Runtime, Numba, BLAS and PyTorch" in text
    for column in ("ORT forward", "Net forward", "backward", "PyTorch fwd+grad", "first run",
                   "top-5 one pass", "five passes", "conv GFLOP/s", "sgemm GFLOP/s", "forward peak", "backward peak", "kept", "2nd pass peak", "load avg"):
        assert column in text, column
    assert "free_size.onnx batch 2 cpu: failed" in text
    assert "Backward profile: lenet batch 2 cpu" in text
    assert "not measured" in text
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image
    picture = matplotlib.image.imread(png)
    assert picture.shape[0] > 400 and picture.shape[1] > 600


# --- refusals --------------------------------------------------------------------------------------

def test_plot_without_matplotlib_is_refused_before_measuring(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    parser = bench.add_arguments(__import__("argparse").ArgumentParser())
    args = parser.parse_args(["--models", "lenet", "--plot", str(tmp_path / "x.png")])
    with pytest.raises(InputError, match="--plot needs matplotlib"):
        bench.run_from_args(args)
    assert not (tmp_path / "x.png").exists()


def test_unknown_model_and_bad_options():
    with pytest.raises(InputError, match="unknown model 'vgg17'.*vgg16"):
        bench.check_model_name("vgg17")
    with pytest.raises(InputError, match="--repeats must be at least 1"):
        bench.run_benchmark(models=["lenet"], repeats=0)
    with pytest.raises(InputError, match="batch sizes must be at least 1"):
        bench.run_benchmark(models=["lenet"], batches=[0])
    with pytest.raises(InputError, match="--batch: cannot read"):
        bench._split("1,x", "batch", int)
    from caffe_port.runtime import cuda_available
    if not cuda_available():
        with pytest.raises(InputError, match="no CUDA device"):
            bench.devices_for("cuda")


def test_thread_environment():
    env = bench.thread_environment(3, base={"PATH": "/bin", "OMP_NUM_THREADS": "16"})
    assert env["PATH"] == "/bin"
    assert all(env[name] == "3" for name in bench.THREAD_VARIABLES)
    assert {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"} <= set(env)


def test_timed_process_to_png(tmp_path):
    code = ("import time, sys; time.sleep(0.05); open(sys.argv[1] + '/a.png', 'wb').write(b'x'); "
            "time.sleep(0.3)")
    exit_s, png_s, _ = bench._timed_process([sys.executable, "-c", code, str(tmp_path)], dict(os.environ),
                                            str(tmp_path))
    assert 0.04 <= png_s < exit_s and exit_s >= 0.35
    with pytest.raises(RuntimeError, match="wrote no PNG"):
        os.remove(tmp_path / "a.png")
        bench._timed_process([sys.executable, "-c", "pass"], dict(os.environ), str(tmp_path))


def test_importing_bench_loads_no_numerics():
    """cli.py can import caffe_port.bench to build its parser without slowing every command."""
    code = ("import sys, caffe_port.bench; heavy = [m for m in ('numpy', 'onnx', 'onnxruntime', 'numba', "
            "'torch', 'matplotlib') if m in sys.modules]; print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
