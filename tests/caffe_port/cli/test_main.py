"""main: every error caffe_port raises on purpose is one line on stderr and exit status 2."""
import subprocess
import sys
from importlib.metadata import entry_points

from caffe_port import __version__
from caffe_port.cli import main
from helpers.cli import error_line, run


def test_errors_are_one_line(capsys, tmp_path, small_onnx, photo):
    code, out, err = run(capsys, "saliency", str(tmp_path / "missing.jpg"), "--model", small_onnx)
    assert code == 2 and "not found" in error_line(err)
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    code, out, err = run(capsys, "saliency", str(garbage), "--model", small_onnx)
    assert code == 2 and "not an image" in error_line(err)
    code, out, err = run(capsys, "saliency", photo, "--model", small_onnx, "--class", "99")
    assert code == 2 and "out of range" in error_line(err)
    code, out, err = run(capsys, "classify", photo, "--model", str(tmp_path / "nope.onnx"))
    assert code == 2 and "not found" in error_line(err)
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(open(small_onnx, "rb").read()[:1000])
    code, out, err = run(capsys, "classify", photo, "--model", str(cut))
    assert code == 2 and "cut.onnx" in error_line(err)


def test_the_console_script_and_python_m_run_main():
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "caffe-port"]
    assert script.load() is main
    proc = subprocess.run([sys.executable, "-m", "caffe_port.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"caffe_port {__version__}"
    proc = subprocess.run([sys.executable, "-m", "caffe_port.cli", "saliency"], capture_output=True, text=True)
    assert proc.returncode == 2 and "the following arguments are required: image" in proc.stderr


def test_running_out_of_memory_is_one_line(small_onnx, photo, capsys, monkeypatch):
    """What no check foresaw still ends in one line, not numpy's _ArrayMemoryError traceback."""
    from caffe_port.cli import maps

    def exhausted(path):
        raise MemoryError("Unable to allocate 96.0 GiB")
    monkeypatch.setattr(maps, "load_image", exhausted)
    code, _, err = run(capsys, "classify", photo, "--model", small_onnx)
    assert code == 2
    assert error_line(err) == "caffe-port: error: out of memory: use a smaller image, batch or model"


def test_onnx_runtime_failing_mid_run_is_one_line_on_stderr(tmp_path, photo, capfd):
    """ONNX Runtime logs its own errors on fd 2 before raising; the CLI's line must be the only
    one (the campaign found the two-line output)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from caffe_port.onnx_util import make_model
    graph = helper.make_graph(
        [helper.make_node("Conv", ["data", "w"], ["y"], name="conv"),
         helper.make_node("Flatten", ["y"], ["scores"], name="scores")], "g",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", "C", 8, 8])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.ones((2, 5, 3, 3), np.float32), "w")])
    onnx.save(make_model(graph, 13), tmp_path / "five_channels.onnx")
    code = main(["classify", photo, "--model", str(tmp_path / "five_channels.onnx"),
                 "--preset", "none"])
    err = capfd.readouterr().err
    assert code == 2
    assert err.splitlines() == [error_line(err)] and "ONNX Runtime failed" in err


def test_a_damaged_tiff_is_one_line_on_stderr(tmp_path, small_onnx):
    """libtiff (through OpenCV's log) and Pillow (reading the header) both complain about a
    truncated TIFF; the user reads the command's line alone. A process of its own: OpenCV reads
    its log level when it loads."""
    import cv2
    import numpy as np
    data = cv2.imencode(".tiff", np.zeros((40, 50, 4), np.uint8))[1].tobytes()
    path = tmp_path / "cut.tiff"
    path.write_bytes(data[:-50])
    proc = subprocess.run([sys.executable, "-m", "caffe_port.cli", "classify", str(path),
                           "--model", small_onnx, "--preset", "torchvision"], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"caffe-port: error: {path}: not an image file OpenCV can read"]


def test_a_model_onnx_runtime_cannot_load_leaves_stdout_clean(photo, capfd):
    """ONNX Runtime's Python layer prints "EP Error … Falling back … retrying" on stdout before
    raising (found by the campaign: an attribute name that is not UTF-8); stdout is for results
    (--json), so nothing of it may show there."""
    import os
    model = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "data",
                         "fuzz_corpus", "onnx", "attribute-name-not-utf8", "model.onnx")
    code = main(["classify", photo, "--model", model, "--preset", "torchvision", "--json"])
    out, err = capfd.readouterr()
    assert code == 2 and out == ""
    assert err.splitlines() == [error_line(err)] and "not UTF-8 text" in err
