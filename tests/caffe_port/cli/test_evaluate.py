"""caffe-port evaluate, localize --recipe and batch --localize --recipe / --no-maps: the commands'
output, exit statuses and one-line errors, on the disk detector (tests/helpers/disk_sets.py)."""
import json
import os

import onnx
import pytest

from caffe_port.batch import read_index
from helpers.cli import error_line, run
from helpers.disk_sets import disk_net, write_disk_photo


@pytest.fixture(scope="module")
def disk_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "disks.onnx"
    onnx.save(disk_net().graph.model, path)
    return str(path)


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    root = tmp_path_factory.mktemp("annotated")
    hit = write_disk_photo(str(root / "photos" / "hit.png"), (20, 15), 8, seed=1)
    miss = write_disk_photo(str(root / "photos" / "miss.png"), (40, 25), 9, seed=3)
    (root / "boxes.csv").write_text(f"hit.png,0,{','.join(map(str, hit))}\nmiss.png,1,{','.join(map(str, miss))}\n")
    return root, {"hit": hit, "miss": miss}


def model_args(disk_model):
    return ["--model", disk_model, "--preset", "none"]


def test_evaluate_prints_the_errors_and_writes_the_rows(capsys, tmp_path, disk_model, annotated):
    root, boxes = annotated
    out = str(tmp_path / "out")
    argv = ["evaluate", str(root / "photos"), "--annotations", str(root / "boxes.csv"), *model_args(disk_model),
            "--out", out]
    code, stdout, err = run(capsys, *argv, "--recipe", "cam-threshold")
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0] == "recipe cam-threshold: 2 image(s) scored"
    assert lines[2].split() == ["localisation", "50.0", "%", "50.0", "%", "error"]
    assert lines[3].split() == ["classification", "50.0", "%", "0.0", "%", "error"]
    assert lines[4] == f"rows: {os.path.join(out, 'evaluation.parquet')}"
    assert "2 image(s): 2 computed" in err
    code, stdout, err = run(capsys, *argv, "--recipe", "cam-threshold", "--json", "--quiet")
    answer = json.loads(stdout)
    assert code == 0 and err == ""
    assert {k: answer[k] for k in ("top1_loc_error", "top5_loc_error", "top1_cls_error", "top5_cls_error")} == \
        {"top1_loc_error": 0.5, "top5_loc_error": 0.5, "top1_cls_error": 0.5, "top5_cls_error": 0.0}
    hit = next(i for i in answer["images"] if i["image"].endswith("hit.png"))
    assert set(hit) >= {"image", "label", "localised_top1", "localised_top5", "predictions"}
    assert hit["predictions"][0]["box"] == list(boxes["hit"]) and hit["predictions"][0]["iou"] == 1.0
    assert set(hit["predictions"][0]) >= {"class", "box", "iou"}
    # another recipe into the same folder is refused: the folder's boxes are another recipe's
    code, _, err = run(capsys, *argv)
    assert code == 2 and "holds the results of other settings" in error_line(err)


def test_evaluate_exit_status_one_when_an_image_is_not_scored(capsys, tmp_path, disk_model, annotated):
    root, boxes = annotated
    (tmp_path / "photos").mkdir()
    write_disk_photo(str(tmp_path / "photos" / "hit.png"), (20, 15), 8, seed=1)
    (tmp_path / "photos" / "broken.png").write_text("not a picture")
    (tmp_path / "boxes.csv").write_text(f"hit.png,0,{','.join(map(str, boxes['hit']))}\nbroken.png,0,0,0,4,4\n")
    code, stdout, err = run(capsys, "evaluate", str(tmp_path / "photos"), "--annotations", str(tmp_path / "boxes.csv"),
                            *model_args(disk_model), "--out", str(tmp_path / "out"), "--quiet")
    assert code == 1
    assert stdout.splitlines()[0] == "recipe paper: 1 image(s) scored, 1 not scored"
    assert "caffe-port: not scored:" in err and "broken.png" in err


@pytest.mark.parametrize("annotation, message", [
    ("hit.png,0,0,0,4\n", "boxes.csv:1: 5 column(s)"),
    ("hit.png,7,0,0,4,4\n", "boxes.csv:1: class index 7 is out of range: the net has 2 classes"),
    ("other.png,0,0,0,4,4\n", "no ground truth in"),
])
def test_evaluate_bad_annotations_are_one_line_before_any_work(capsys, tmp_path, disk_model, annotated,
                                                               annotation, message):
    root, _ = annotated
    (tmp_path / "boxes.csv").write_text(annotation)
    out = tmp_path / "out"
    code, _, err = run(capsys, "evaluate", str(root / "photos" / "hit.png"), "--annotations",
                       str(tmp_path / "boxes.csv"), *model_args(disk_model), "--out", str(out))
    assert code == 2 and message in error_line(err)
    assert not out.exists()


def test_evaluate_needs_out_and_annotations(capsys, tmp_path, annotated):
    root, _ = annotated
    code, _, err = run(capsys, "evaluate", str(root / "photos"), "--annotations", str(root / "boxes.csv"))
    assert code == 2 and "evaluate needs --out DIR" in error_line(err)
    with pytest.raises(SystemExit) as e:
        run(capsys, "evaluate", str(root / "photos"), "--out", str(tmp_path))
    assert e.value.code == 2 and "--annotations" in capsys.readouterr().err


def test_localize_with_a_recipe(capsys, disk_model, annotated):
    root, boxes = annotated
    photo = str(root / "photos" / "hit.png")
    for name in ("paper", "cam-threshold", "gradcam-grabcut", "smoothgrad-grabcut"):
        extra = ["--samples", "4"] if name.startswith("smoothgrad") else []
        code, stdout, err = run(capsys, "localize", photo, *model_args(disk_model), "--recipe", name, "--json", *extra)
        assert code == 0, err
        assert json.loads(stdout)["boxes"][0]["box"] == list(boxes["hit"])


def test_localize_cam_recipe_on_a_net_without_gap_is_one_line(capsys, small_onnx, photo):
    code, _, err = run(capsys, "localize", photo, "--model", small_onnx, "--preset", "torchvision",
                       "--recipe", "cam-threshold")
    assert code == 2 and "use GradCAM" in error_line(err)


def test_batch_localize_recipe_and_no_maps(capsys, tmp_path, disk_model, annotated):
    root, boxes = annotated
    out = str(tmp_path / "out")
    argv = ["batch", str(root / "photos"), *model_args(disk_model), "--localize", "--recipe", "cam-threshold",
            "--no-maps", "--out", out, "--quiet"]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    table = read_index(out)
    assert set(table["method"].to_pylist()) == {"cam"}                 # the recipe's map by default
    hit = [r for r in table.to_pylist() if r["image"].endswith("hit.png")][0]
    assert hit["box"] == list(boxes["hit"]) and hit["map"] is None
    code, _, err = run(capsys, *argv[:-1], "--report")
    assert code == 0 and "2 image(s): 0 computed, 2 done before" in err   # resumed without maps
    assert os.path.exists(os.path.join(out, "report.html"))
    code, _, err = run(capsys, "batch", str(root / "photos"), *model_args(disk_model), "--recipe", "paper",
                       "--out", str(tmp_path / "other"))
    assert code == 2 and "--recipe chooses how --localize makes its boxes" in error_line(err)
