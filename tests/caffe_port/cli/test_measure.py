"""caffe-port sanity and metrics: their JSON, files, and one-line refusals, on a small CAM-ready
net (the numbers themselves are checked in tests/caffe_port/test_sanity.py and metrics/)."""
import json
import os

import cv2
import numpy as np
import onnx
import pytest

from helpers import tiny_nets
from helpers.cli import error_line, run
from helpers.image_sets import write_photos


@pytest.fixture(scope="module")
def gap_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("gap") / "gap.onnx"
    onnx.save(tiny_nets.conv_gap_fc_model(classes=4, seed=4, shape=(3, 16, 16)), path)
    return str(path)


def test_sanity_json_and_figures(capsys, tmp_path, gap_onnx, photo):
    out = tmp_path / "figs"
    code, stdout, err = run(capsys, "sanity", photo, "--model", gap_onnx, "--method",
                            "saliency,gradcam,cam,smoothgrad", "--samples", "2", "--out", str(out),
                            "--json", "--quiet")
    assert code == 0, err
    report = json.loads(stdout)
    assert set(report["methods"]) == {"saliency", "gradcam", "cam", "smoothgrad"}
    assert [u["name"] for u in report["units"]] == ["score", "conv2", "conv1"]
    for modes in report["methods"].values():
        for mode in ("cascading", "independent"):
            assert [row["layer"] for row in modes[mode]] == ["score", "conv2", "conv1"]
            for row in modes[mode]:
                assert set(row) == {"layer", "spearman_abs", "spearman", "ssim"}
                assert all(v is None or -1 <= v <= 1 for k, v in row.items() if k != "layer")
    for mode in ("cascading", "independent"):
        picture = cv2.imread(str(out / f"photo_sanity_{mode}.png"))
        assert picture is not None and min(picture.shape[:2]) > 4 * 112     # 4 rows, 4 columns
    # nothing the user had is overwritten, and nothing is computed first
    code, _, err = run(capsys, "sanity", photo, "--model", gap_onnx, "--method", "saliency",
                       "--out", str(out), "--quiet")
    assert code == 2 and "exists" in error_line(err)


def test_sanity_text_layers_and_modes(capsys, tmp_path, gap_onnx, photo):
    code, stdout, err = run(capsys, "sanity", photo, "--model", gap_onnx, "--method", "guided",
                            "--layers", "conv1", "--mode", "cascading", "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    assert "cascading randomisation" in stdout and "independent" not in stdout
    assert "conv1" in stdout and os.path.exists(tmp_path / "photo_sanity_cascading.png")


def test_sanity_skips_what_cannot_run_and_refuses_bad_names(capsys, tmp_path, small_onnx, photo, gap_onnx):
    code, stdout, err = run(capsys, "sanity", photo, "--model", small_onnx, "--method", "saliency,cam",
                            "--layers", "fc8", "--json", "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    assert "cam skipped" in err and set(json.loads(stdout)["methods"]) == {"saliency"}
    code, _, err = run(capsys, "sanity", photo, "--model", gap_onnx, "--layers", "conv9", "--out", str(tmp_path))
    assert code == 2 and "no unit or layer with parameters is named 'conv9'" in error_line(err)
    with pytest.raises(SystemExit):
        run(capsys, "sanity", photo, "--mode", "sideways")
    assert "--mode takes cascading, independent" in capsys.readouterr().err


def test_metrics_json_with_boxes(capsys, tmp_path, gap_onnx):
    photos = write_photos(str(tmp_path / "photos"), 3)
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("image,class,x0,y0,x1,y1\n"
                     f"{os.path.basename(photos[0])},1,0,0,45,30\n"
                     f"{os.path.basename(photos[1])},2,10,10,60,70\n")
    broken = tmp_path / "photos" / "broken.png"
    broken.write_bytes(b"not a picture")
    code, stdout, err = run(capsys, "metrics", str(tmp_path / "photos"), "--model", gap_onnx,
                            "--method", "saliency,cam", "--boxes", str(boxes), "--step", "8", "--json",
                            "--quiet")
    assert code == 1, err                                   # one image could not be read
    assert "broken.png" in err
    report = json.loads(stdout)
    assert report["settings"]["step"] == 8 and report["settings"]["deletion_baseline"] == "zeros"
    for name in ("saliency", "cam"):
        s = report["methods"][name]
        assert 0 <= s["deletion_auc"] <= 1 and 0 <= s["insertion_auc"] <= 1
        assert s["pointing_pairs"] == 2 and s["images"] == 3
        assert s["pointing_game"] == pytest.approx(np.mean(list(s["pointing_classes"].values())))
    rows = {os.path.basename(r["image"]): r for r in report["images"]}
    assert "error" in rows["broken.png"]
    assert len(rows[os.path.basename(photos[0])]["methods"]["cam"]["pointing"]) == 1
    assert len(rows[os.path.basename(photos[0])]["fractions"]) == 16 * 16 // 8 + 1


def test_metrics_text_and_refusals(capsys, tmp_path, gap_onnx, photo):
    code, stdout, err = run(capsys, "metrics", photo, "--model", gap_onnx, "--method", "saliency",
                            "--quiet")
    assert code == 0, err
    assert "deletion AUC" in stdout and "(no --boxes: not played)" in stdout
    code, _, err = run(capsys, "metrics", str(tmp_path / "missing.png"), "--model", gap_onnx)
    assert code == 2 and "no such file" in error_line(err)
    bad = tmp_path / "bad.csv"
    bad.write_text("photo.png,1,5,5,2,9\n")
    code, _, err = run(capsys, "metrics", photo, "--model", gap_onnx, "--boxes", str(bad))
    assert code == 2 and "bad.csv:1: box (5, 5, 2, 9) is empty" in error_line(err)
    code, _, err = run(capsys, "metrics", photo, "--model", gap_onnx, "--step", "0")
    assert code == 2 and "--step must be a positive" in error_line(err)
