"""The command line: what it writes, what it refuses, and its one-line errors."""
import json
import os

import numpy as np
import onnx
import pytest

from caffe_port.cli import SAMPLE_IMAGE, main
from caffe_port.models.builders import caffenet
from helpers.caffe_weights import write_seeded_caffemodel


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "caffenet_small.onnx"
    onnx.save(caffenet(width=0.25, input_size=67, num_classes=7, seed=1), path)
    return str(path)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    import cv2
    path = tmp_path_factory.mktemp("img") / "photo.png"
    rng = np.random.default_rng(0)
    image = (rng.uniform(0, 255, (80, 100, 3))).astype(np.uint8)
    cv2.circle(image, (50, 40), 20, (0, 0, 255), -1)
    cv2.imwrite(str(path), image)
    return str(path)


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def error_line(err):
    """The one error line (notes such as the assumed pre-processing may precede it)."""
    errors = [line for line in err.splitlines() if line.startswith("caffe-port: error:")]
    assert len(errors) == 1, err
    return errors[0]


def test_classify_json_on_the_embedded_model(capsys):
    code, out, err = run(capsys, "classify", SAMPLE_IMAGE, "--json", "--top-k", "3")
    assert code == 0
    result = json.loads(out)
    assert [set(r) for r in result["top_k"]] == [{"class", "name", "prob"}] * 3
    assert {r["class"] for r in result["top_k"]} <= {281, 282, 283, 285, 287}   # cats
    assert result["top_k"][0]["prob"] >= result["top_k"][1]["prob"]


def test_saliency_writes_what_it_promises_and_refuses_to_overwrite(capsys, tmp_path, small_onnx, photo):
    out_dir = tmp_path / "maps"
    code, out, err = run(capsys, "saliency", photo, "--model", small_onnx, "--class", "3",
                         "--out", str(out_dir))
    assert code == 0, err
    written = sorted(os.listdir(out_dir))
    assert written == ["photo_saliency_c3.npy", "photo_saliency_c3.png", "photo_saliency_c3_overlay.png"]
    saliency_map = np.load(out_dir / "photo_saliency_c3.npy")
    assert saliency_map.shape == (80, 100)          # original-image pixels
    before = {f: os.path.getmtime(out_dir / f) for f in written}
    code, out, err = run(capsys, "saliency", photo, "--model", small_onnx, "--class", "3",
                         "--out", str(out_dir))
    assert code == 2 and "exists" in error_line(err) and "--force" in error_line(err)
    assert {f: os.path.getmtime(out_dir / f) for f in written} == before
    code, out, err = run(capsys, "saliency", photo, "--model", small_onnx, "--class", "3",
                         "--out", str(out_dir), "--force")
    assert code == 0


@pytest.mark.parametrize("method", ["deconvnet", "guided", "gradcam"])
def test_other_methods_write_pngs(capsys, tmp_path, small_onnx, photo, method):
    code, out, err = run(capsys, "saliency", photo, "--model", small_onnx, "--method", method,
                         "--top-k", "2", "--out", str(tmp_path))
    assert code == 0, err
    pngs = [f for f in os.listdir(tmp_path) if f.endswith(".png")]
    assert len(pngs) == (6 if method in ("deconvnet", "guided") else 4)   # 2 classes


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


def test_localize_json_boxes_in_original_pixels(capsys, tmp_path, small_onnx, photo):
    code, out, err = run(capsys, "localize", photo, "--model", small_onnx, "--top-k", "2", "--json")
    assert code == 0, err
    boxes = json.loads(out)["boxes"]
    assert len(boxes) == 2
    for b in boxes:
        assert set(b) == {"class", "name", "score", "box"}
        if b["box"] is not None:
            x0, y0, x1, y1 = b["box"]
            assert 0 <= x0 < x1 <= 100 and 0 <= y0 < y1 <= 80


def test_info_lists_layers_blobs_params(capsys, small_onnx):
    code, out, err = run(capsys, "info", "--model", small_onnx, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["inputs"] == ["data"] and "conv1" in info["params"]
    assert info["blobs"]["data"] == [1, 3, 67, 67]


def test_convert_then_load_and_refuse_to_overwrite(capsys, tmp_path):
    from caffe_port import Net
    prototxt = os.path.join(os.path.dirname(__file__), "..", "data", "caffe", "bvlc_reference_caffenet",
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
