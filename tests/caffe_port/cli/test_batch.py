"""caffe-port batch: the command's rows, exit statuses and one-line errors; a run killed with
SIGKILL and rerun ends with every image once."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.compute as pc
import pytest

from caffe_port.batch import read_index
from helpers.cli import error_line, run
from helpers.image_sets import write_bad_files, write_photos


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("set")
    photos = write_photos(str(root / "photos"), 5)
    write_bad_files(str(root / "photos" / "bad"), photos[:2])
    (root / "val.txt").write_text("photos/photo000.jpg 3\nphotos/missing.jpg 1\n")
    return root


def test_batch_writes_rows_for_every_method_class_and_bad_file(capsys, tmp_path, small_onnx, folder):
    out = str(tmp_path / "out")
    code, stdout, err = run(capsys, "batch", str(folder / "photos"), str(folder / "val.txt"), "--model",
                            small_onnx, "--preset", "torchvision", "--method", "saliency,gradcam",
                            "--top-k", "2", "--localize", "--out", out)
    assert code == 1, err                                          # some images failed
    assert "10 image(s): 10 computed, 0 done before, 5 failed" in err
    table = read_index(out)
    ok = table.filter(pc.equal(table["status"], "ok"))
    assert ok.num_rows == 5 * 2 * 2
    for row in ok.to_pylist():
        saliency_map = np.load(os.path.join(out, row["map"]))
        assert saliency_map.shape == (row["height"], row["width"])
        x0, y0, x1, y1 = row["box"]
        assert 0 <= x0 < x1 <= row["width"] and 0 <= y0 < y1 <= row["height"]
    labels = {r["image"]: r["label"] for r in table.to_pylist()}
    assert labels[str(folder / "photos" / "photo000.jpg")] == 3 and labels["photos/missing.jpg"] == 1
    failed = {os.path.basename(r["path"]): r["status"] for r in table.to_pylist() if r["status"] != "ok"}
    assert sorted(failed) == ["cut.jpg", "cut.png", "empty.jpg", "missing.jpg", "notes.png"]
    assert all("\n" not in s for s in failed.values())
    again = ["batch", str(folder / "photos"), "--model", small_onnx, "--preset", "torchvision", "--method",
             "saliency,gradcam", "--top-k", "2", "--localize", "--out", out]
    code, stdout, err = run(capsys, *again)                        # the failed ones are retried
    assert code == 1 and "9 image(s): 4 computed, 5 done before, 4 failed" in err
    assert read_index(out).num_rows == table.num_rows              # the index keeps every image of DIR
    code, stdout, err = run(capsys, *again, "--quiet")
    assert code == 1 and err == ""


@pytest.mark.parametrize("argv, message", [
    (["--class", "3", "--top-k", "2"], "not both"),
    (["--batch-size", "0"], "--batch-size"),
    (["--class", "99"], "out of range"),
])
def test_bad_options_are_one_line(capsys, tmp_path, small_onnx, folder, argv, message):
    code, _, err = run(capsys, "batch", str(folder / "photos"), "--model", small_onnx, "--preset",
                       "torchvision", "--out", str(tmp_path / "out"), *argv)
    assert code == 2 and message in error_line(err)


def test_an_unknown_method_is_a_usage_error(capsys, tmp_path, folder):
    with pytest.raises(SystemExit) as e:
        run(capsys, "batch", str(folder / "photos"), "--method", "saliency,nope", "--out", str(tmp_path))
    assert e.value.code == 2 and "unknown method 'nope'" in capsys.readouterr().err


def test_an_out_that_is_a_file_and_a_missing_input_are_one_line(capsys, tmp_path, small_onnx, folder):
    (tmp_path / "f").write_text("x")
    code, _, err = run(capsys, "batch", str(folder / "photos"), "--model", small_onnx, "--preset",
                       "torchvision", "--out", str(tmp_path / "f"))
    assert code == 2 and "not a directory" in error_line(err)
    code, _, err = run(capsys, "batch", str(tmp_path / "nothing"), "--model", small_onnx, "--preset",
                       "torchvision", "--out", str(tmp_path / "out"))
    assert code == 2 and "no such file or folder" in error_line(err)


def test_a_run_killed_with_sigkill_resumes_to_every_image_once(tmp_path, small_onnx):
    photos = write_photos(str(tmp_path / "many"), 40)
    out = str(tmp_path / "out")
    argv = [sys.executable, "-m", "caffe_port.cli", "batch", str(tmp_path / "many"), "--model", small_onnx,
            "--preset", "torchvision", "--top-k", "2", "--batch-size", "2", "--threads", "1", "--out", out,
            "--quiet"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = os.path.join(out, "parts")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if os.path.isdir(parts) and len(os.listdir(parts)) >= 3:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = read_index(out)
    assert 0 < partial.num_rows < 80
    for map_file in partial["map"].to_pylist():
        assert os.path.isfile(os.path.join(out, map_file))
    finished = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    table = read_index(out)
    keys = list(zip(table["path"].to_pylist(), table["rank"].to_pylist()))
    assert len(keys) == len(set(keys)) == 80
    assert {os.path.abspath(p) for p in photos} == set(table["path"].to_pylist())
    assert not [f for _, _, files in os.walk(out) for f in files if f.endswith(".tmp")]
