"""The chart of a saved run, through the tool as a user draws it."""
import matplotlib.image
import pytest

from caffe_port.bench.plot import plot
from caffe_port.errors import InputError
from helpers.bench_runs import run_bench


def test_table_and_plot_from_a_saved_run(tiny_run, tmp_path):
    _, path, _ = tiny_run
    png = tmp_path / "plots" / "bench.png"
    proc = run_bench("--load", str(path), "--plot", str(png), "--profile")
    assert proc.returncode == 0, proc.stderr
    assert "Backward profile: lenet batch 2 cpu" in proc.stdout and str(png) in proc.stdout
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    picture = matplotlib.image.imread(png)
    assert picture.shape[0] > 400 and picture.shape[1] > 600


def test_nothing_to_plot(tiny_run, tmp_path):
    result, _, _ = tiny_run
    only_failures = dict(result, configs=[r for r in result["configs"] if "error" in r])
    with pytest.raises(InputError, match="nothing to plot"):
        plot(only_failures, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
