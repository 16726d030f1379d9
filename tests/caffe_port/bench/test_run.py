"""The whole run: the PyTorch peer skipped in one line where torch is missing, and the options
refused before anything is measured."""
import sys

import pytest

from caffe_port.bench.run import TORCH_INSTALL_HINT, devices_for, run_benchmark, torch_peer_skipped
from caffe_port.errors import InputError
from helpers.bench_runs import TINY_OPTIONS, run_bench
from helpers.no_torch import environment_without_torch


def test_no_peer_where_torch_is_missing(tmp_path):
    """Without torch the run goes on: one line says the peer was skipped and what to install, in
    the log and in the report, and no configuration has a PyTorch column or ratio."""
    env = environment_without_torch(tmp_path / "site")
    proc = run_bench("--models", "lenet", *TINY_OPTIONS, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    skipped = [line for line in proc.stdout.splitlines() if "PyTorch peer" in line]
    assert skipped == [f"PyTorch peer skipped: torch is not installed; {TORCH_INSTALL_HINT} to time "
                       f"PyTorch beside caffe_port"]
    assert "bench: " + skipped[0] in proc.stderr.splitlines()
    assert "Traceback" not in proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("lenet "))
    assert row.split()[-3:-1] == ["–", "–"]          # PyTorch fwd+grad and the ratio: not measured


def test_why_the_peer_is_skipped(monkeypatch):
    assert torch_peer_skipped(False) == "--no-torch was given"
    monkeypatch.setitem(sys.modules, "torch", None)     # as if torch were missing
    assert TORCH_INSTALL_HINT in torch_peer_skipped(True)


def test_the_run_had_its_peer_and_gives_no_verdicts(tiny_run):
    result, _, _ = tiny_run
    assert result["torch_peer_skipped"] is None
    assert "targets" not in result                   # verdicts are tools/bench_targets.py's


def test_unknown_model_and_bad_options():
    with pytest.raises(InputError, match="unknown model 'vgg17'.*vgg16"):
        run_benchmark(models=["lenet", "vgg17"])
    with pytest.raises(InputError, match="--repeats must be at least 1"):
        run_benchmark(models=["lenet"], repeats=0)
    with pytest.raises(InputError, match="batch sizes must be at least 1"):
        run_benchmark(models=["lenet"], batches=[0])
    with pytest.raises(InputError, match="--device must be auto, cpu or cuda"):
        devices_for("tpu")
    from caffe_port.runtime import cuda_available
    if not cuda_available():
        with pytest.raises(InputError, match="no CUDA device"):
            devices_for("cuda")


def test_the_floor_and_the_limit_are_what_they_say(tiny_run):
    """Top-5's floor is the Net forward plus K backwards (medians); the limit is twice the
    backward's GFLOP at the row's own sgemm rate; each ratio divides the measured time by them."""
    result, _, _ = tiny_run
    row = next(r for r in result["configs"] if "error" not in r)
    t, q = row["ms"], row["ratios"]
    floor = t["net_forward"]["median"] + row["k"] * t["backward"]["median"]
    assert q["top5_floor_ms"] == pytest.approx(floor)
    assert q["top5_of_floor"] == pytest.approx(t["top5_one_pass"]["median"] / floor)
    limit = 2e3 * row["flops"]["backward_gflop"] / row["sgemm"]["gflops"]["median"]
    assert q["limit_ms"] == pytest.approx(limit)
    assert q["vs_limit"] == pytest.approx(t["forward_backward"]["median"] / limit)
