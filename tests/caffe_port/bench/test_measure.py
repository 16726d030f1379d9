"""What one configuration measures, read from a real (tiny) run through the tool: the JSON's
shape, the arithmetic of its columns, the checks it carries. No timing is asserted: only shapes,
arithmetic and correctness checks that hold however fast the machine is.

Tolerances carried in the row: the stacked top-5 backward equals five separate ones to 1e-5 of the
largest entry (float32, the same kernels on K·N instead of N rows: BLAS may block the two
differently); PyTorch's input gradient equals caffe_port's to 1e-4 relative L2 (float32, different
summation orders).
"""
import pytest

from caffe_port.bench.run import SCHEMA


def test_json_shape(tiny_run):
    result, _, log = tiny_run
    assert result["schema"] == SCHEMA and result["repeats"] == 1
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


def test_the_notebook_configuration(tiny_run):
    """One process that used torch first, then caffe_port: its numbers beside the separate ones,
    R interleaved rounds of each side after R of PyTorch alone, the same gradient as PyTorch's,
    and the ratios' arithmetic. No timing is asserted."""
    result, _, log = tiny_run
    r = next(r for r in result["configs"] if "error" not in r)
    book = r["notebook"]
    assert set(book["ms"]) == {"forward_backward", "torch_forward_grad", "torch_before_net"}
    assert all(s["n"] == result["repeats"] for s in book["ms"].values())
    assert book["threads"] == book["torch_threads"] == 1
    assert book["threading_layer"] in ("tbb", "omp", "workqueue") and len(book["load_average"]) == 3
    # what threadpoolctl saw loaded in that process: torch's OpenMP among them
    assert any(p["api"] == "openmp" for p in book["pools"])
    assert book["rel_l2_vs_torch"] < 1e-4
    ratios = r["ratios"]
    assert ratios["notebook_vs_torch"] == pytest.approx(
        book["ms"]["forward_backward"]["median"] / book["ms"]["torch_forward_grad"]["median"], rel=1e-12)
    assert ratios["notebook_vs_separate"] == pytest.approx(
        book["ms"]["forward_backward"]["median"] / r["ms"]["forward_backward"]["median"], rel=1e-12)
    assert ratios["torch_after_net_vs_before"] == pytest.approx(
        book["ms"]["torch_forward_grad"]["median"] / book["ms"]["torch_before_net"]["median"], rel=1e-12)
    assert "notebook: torch first, then caffe_port, in one process" in log


def test_the_notebook_worker_imports_torch_before_caffe_port(tmp_path, monkeypatch):
    """The worker's first line imports torch: by the time caffe_port's Net exists, torch's own
    libgomp is loaded (a notebook's order), and the Net's threads still run on a layer that is
    not torch's OpenMP."""
    from caffe_port.bench import workers
    seen = {}
    real_run = workers.subprocess.run

    def spy(cmd, **kwargs):
        seen["code"] = cmd[2]
        return real_run(cmd, **kwargs)
    monkeypatch.setattr(workers.subprocess, "run", spy)
    workers.run_worker("notebook", {"model": "no-such-model", "threads": 1, "repeats": 1,
                                    "peer_inputs": str(tmp_path / "none.npz")}, 1)
    assert seen["code"].startswith("import torch; ")
