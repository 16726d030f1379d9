"""The map commands: classify, saliency, localize, classmodel, grid — what they write and refuse."""
import json
import os

import cv2
import numpy as np
import pytest

from caffe_port.cli.maps import SAMPLE_IMAGE
from caffe_port.cli.method_table import GRID
from caffe_port.render import TILE
from helpers.cli import error_line, run


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


def test_localize_json_writes_pictures_only_with_out(capsys, tmp_path, monkeypatch, small_onnx, photo):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "localize", photo, "--model", small_onnx, "--json")
    assert code == 0, err
    assert os.listdir(tmp_path) == []
    code, out, err = run(capsys, "localize", photo, "--model", small_onnx, "--json", "--out", "boxes")
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "boxes")) == sorted(
        f"photo_localize_c{b['class']}{suffix}.png" for b in json.loads(out)["boxes"] for suffix in ("", "_mask"))
    assert all(line.startswith("boxes") for line in err.splitlines()[-2:])     # paths on stderr, JSON alone on stdout


def test_classmodel_writes_an_enlarged_picture_per_class(capsys, tmp_path, small_onnx):
    code, out, err = run(capsys, "classmodel", "--model", small_onnx, "--class", "1;4", "--iterations", "2",
                         "--quiet", "--out", str(tmp_path))
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == ["classmodel_c1.npy", "classmodel_c1.png", "classmodel_c4.npy",
                                            "classmodel_c4.png"]
    assert cv2.imread(str(tmp_path / "classmodel_c1.png")).shape == (TILE, TILE, 3)     # 67 px, enlarged
    assert np.load(tmp_path / "classmodel_c4.npy").shape == (3, 67, 67)                  # the net's own
    code, out, err = run(capsys, "classmodel", "--model", small_onnx)
    assert code == 2 and "needs --class" in error_line(err)


def test_grid_shows_every_grid_method_and_skips_cam_without_global_pooling(capsys, tmp_path, small_onnx, photo):
    code, out, err = run(capsys, "grid", photo, "--model", small_onnx, "--class", "2", "--iterations", "1",
                         "--quiet", "--out", str(tmp_path))
    assert code == 0, err
    assert os.listdir(tmp_path) == ["photo_grid_c2.png"]
    assert "cam skipped: CAM needs GlobalAveragePool" in err
    timed = err.splitlines()[-1]
    assert timed.startswith("caffe-port: times:")
    assert [part.split()[0] for part in timed.split(": ", 2)[2].split(", ")] == [m for m in GRID if m != "cam"]
    picture = cv2.imread(str(tmp_path / "photo_grid_c2.png"))
    tiles = 1 + len(GRID) - 1 + 2                    # photo, the maps but CAM's, box, class model
    assert picture.shape[1] == 6 + 5 * (TILE + 6) and picture.shape[0] > -(-tiles // 5) * (TILE + 6)
    code, out, err = run(capsys, "grid", photo, "--model", small_onnx, "--class", "2", "--iterations", "0",
                         "--out", str(tmp_path))
    assert code == 2 and "exists" in error_line(err)


def test_cam_on_a_net_without_global_pooling_is_one_line(capsys, tmp_path, small_onnx, photo):
    code, out, err = run(capsys, "saliency", photo, "--model", small_onnx, "--method", "cam", "--out", str(tmp_path))
    assert code == 2 and "use GradCAM" in error_line(err)
    assert os.listdir(tmp_path) == []
