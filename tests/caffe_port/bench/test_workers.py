"""A measurement in a fresh interpreter: its JSON comes back, or its error's last line."""
import pytest

from caffe_port.bench.workers import run_worker


def test_sgemm_in_a_worker():
    result = run_worker("sgemm", {"threads": 1, "size": 64, "repeats": 2}, 1)
    assert result["size"] == 64 and result["threads"] == 1
    assert result["gflops"]["n"] == 2 and result["gflops"]["min"] > 0


def test_a_failing_measurement_gives_its_last_line():
    spec = {"model": "no-such-model", "batch": 1, "device": "cpu", "threads": 1, "repeats": 1}
    result = run_worker("config", spec, 1)
    assert set(result) == {"error"}
    assert "no-such-model" in result["error"] and "\n" not in result["error"]


def test_the_cuda_peer_without_a_cuda_torch_is_one_line():
    """A GPU row's PyTorch peer runs on CUDA; a torch that sees no device says so, in one line."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this torch sees a CUDA device")
    result = run_worker("torch", {"model": "lenet", "device": "cuda", "threads": 1, "repeats": 1,
                                  "peer_inputs": "unused.npz"}, 1)
    assert set(result) == {"error"} and "sees no CUDA device" in result["error"]
