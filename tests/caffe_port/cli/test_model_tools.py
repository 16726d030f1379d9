"""info and convert."""
import json
import os

from caffe_port import Net
from helpers.caffe_weights import write_seeded_caffemodel
from helpers.cli import error_line, run


def test_info_lists_layers_blobs_params(capsys, small_onnx):
    code, out, err = run(capsys, "info", "--model", small_onnx, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["inputs"] == ["data"] and "conv1" in info["params"]
    assert info["input_layout"] == "NCHW" and info["score_blob"] in info["blobs"]
    assert info["blobs"]["data"] == [1, 3, 67, 67]


def test_convert_then_load_and_refuse_to_overwrite(capsys, tmp_path):
    prototxt = os.path.join(os.path.dirname(__file__), "..", "..", "data", "caffe", "bvlc_reference_caffenet",
                            "deploy.prototxt")
    weights = tmp_path / "caffenet.caffemodel"
    write_seeded_caffemodel(prototxt, weights, seed=0)
    out = tmp_path / "caffenet.onnx"
    code, printed, err = run(capsys, "convert", prototxt, str(weights), "-o", str(out))
    assert code == 0, err
    converted = Net(str(out), device="cpu")
    assert converted.outputs == ["prob"] and converted.params["conv1"][0].shape == (96, 3, 11, 11)
    before = out.read_bytes()
    code, _, err = run(capsys, "convert", prototxt, str(weights), "-o", str(out))
    assert code == 2 and "exists" in error_line(err)
    assert out.read_bytes() == before
    code, _, err = run(capsys, "convert", prototxt, str(weights), "-o", str(out), "--force")
    assert code == 0
