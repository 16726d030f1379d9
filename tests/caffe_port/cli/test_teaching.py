"""gradcheck and trace."""
import json

from helpers.cli import run


def test_gradcheck_command_table_and_exit_status(capsys):
    code, out, err = run(capsys, "gradcheck", "lenet", "--points", "4")
    assert code == 0, err
    assert "conv1" in out and "ok" in out and "FAIL" not in out


def test_trace_command_writes_its_png(capsys, tmp_path, small_onnx, photo):
    code, out, err = run(capsys, "trace", photo, "--model", small_onnx, "--out", str(tmp_path), "--json")
    assert code == 0, err
    assert (tmp_path / "photo_trace.png").exists()
    result = json.loads(out)
    assert result["rules"] == ["backprop", "deconvnet", "guided"]
    assert result["map_shape"] == [67, 67] and result["layers"]
