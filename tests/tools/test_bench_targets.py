"""tools/bench_targets.py: the project's goals checked on a saved run, one line each, and an exit
status that says whether a measured one was missed."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "bench_targets.py")


def cpu_row(model, batch, **ratios):
    return {"model": model, "batch": batch, "device": "cpu",
            "ratios": {"vs_torch": None, "top5": None, "conv_of_sgemm": None, "peak_over_kept": None, **ratios}}


def check(tmp_path, result):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(result))
    proc = subprocess.run([sys.executable, TOOL, str(path)], capture_output=True, text=True)
    return proc.returncode, proc.stdout.splitlines(), proc.stderr


def test_each_goal_on_the_rows_it_names(tmp_path):
    result = {"schema": "caffe_port.bench/1", "configs": [
        cpu_row("caffenet", 1, vs_torch=0.6, top5=0.43),
        cpu_row("/models/vgg16", 8, top5=0.72, conv_of_sgemm=1.44, peak_over_kept=2.61),
        cpu_row("vgg16", 1, vs_torch=None, top5=0.7, conv_of_sgemm=0.4),    # no peer: not measured
        dict(cpu_row("vgg16", 1, vs_torch=0.1), device="cuda"),             # GPU rows are not judged
        {"model": "googlenet", "batch": 1, "device": "cpu", "error": "failed"},
    ], "startup": {"saliency_warm_png_s": {"median": 0.78}}}
    status, lines, _ = check(tmp_path, result)
    assert status == 1
    assert lines == [
        "met          CPU batch 1 forward+backward / PyTorch forward+input grad: 0.60 <= 1.0 (caffenet batch 1 cpu)",
        "not measured CPU batch 1 forward+backward / PyTorch forward+input grad: – <= 1.0 (vgg16 batch 1 cpu)",
        "met          backward GFLOP/s of the conv layers / sgemm GFLOP/s: 1.44 >= 0.5 (vgg16 batch 8 cpu)",
        "NOT met      backward GFLOP/s of the conv layers / sgemm GFLOP/s: 0.40 >= 0.5 (vgg16 batch 1 cpu)",
        "met          top-5 in one pass / five separate passes: 0.43 <= 0.7 (caffenet batch 1 cpu)",
        "NOT met      top-5 in one pass / five separate passes: 0.72 <= 0.7 (vgg16 batch 8 cpu)",
        "met          top-5 in one pass / five separate passes: 0.70 <= 0.7 (vgg16 batch 1 cpu)",
        "met          warm `caffe-port saliency` wall time, s: 0.78 < 2.0 (startup)",
        "NOT met      peak above the loaded model / kept activations: 2.61 <= 1.5 (vgg16 batch 8 cpu)",
    ]


def test_nothing_missed_when_nothing_was_measured(tmp_path):
    status, lines, _ = check(tmp_path, {"schema": "caffe_port.bench/1", "configs": []})
    assert status == 0
    assert len(lines) == 5 and all(line.startswith("not measured") for line in lines)
    assert all(line.endswith("(no such configuration in this run)") for line in lines if "saliency" not in line)


@pytest.mark.parametrize("content", ["not json", json.dumps({"schema": "other"})])
def test_not_a_saved_run_in_one_line(tmp_path, content):
    path = tmp_path / "run.json"
    path.write_text(content)
    proc = subprocess.run([sys.executable, TOOL, str(path)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("bench_targets: error: ") and proc.stderr.count("\n") == 1
