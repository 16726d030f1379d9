"""The options of ``caffe-port bench``: refused before anything is measured, and cheap to build."""
import argparse
import subprocess
import sys

import pytest

from caffe_port.bench import add_arguments, run_from_args
from caffe_port.errors import InputError
from helpers.bench_runs import run_bench


def parse(*argv):
    return add_arguments(argparse.ArgumentParser()).parse_args(list(argv))


def test_plot_without_matplotlib_is_refused_before_measuring(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(InputError, match="--plot needs matplotlib"):
        run_from_args(parse("--models", "lenet", "--plot", str(tmp_path / "x.png")))
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("argv,message", [
    (["--batch", "1,x"], "--batch: cannot read '1,x'"),
    (["--models", " , "], "--models: give at least one value"),
    (["--threads", "0"], "--threads must be at least 1, got 0"),
])
def test_bad_options_in_one_line(argv, message):
    with pytest.raises(InputError, match=message):
        run_from_args(parse(*argv))


def test_the_tool_reports_errors_in_one_line(tmp_path):
    proc = run_bench("--load", str(tmp_path / "missing.json"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("bench: error: ") and proc.stderr.count("\n") == 1


def test_importing_bench_loads_no_numerics():
    """caffe_port.cli can import caffe_port.bench to build its parser without loading numerics."""
    code = ("import sys, caffe_port.bench; heavy = [m for m in ('numpy', 'onnx', 'onnxruntime', 'numba', "
            "'torch', 'matplotlib') if m in sys.modules]; print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
