"""The map commands on models as other exporters write them: tf2onnx's NHWC Keras CNN, a file
whose metadata states its pixels, a 299-pixel net, a layout no one can tell; the options that
say what the file does not."""
import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from caffe_port.cli.method_table import GRID
from caffe_port.models.builders import caffenet, lenet
from caffe_port.onnx_util import initializer, make_model
from helpers.cli import error_line, run
from helpers.exporter_graphs import keras_like


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras")
    nhwc, nchw = keras_like(size=(48, 56), classes=5)
    paths = folder / "keras_nhwc.onnx", folder / "keras_nchw.onnx"
    onnx.save(nhwc, paths[0])
    onnx.save(nchw, paths[1])
    return tuple(str(p) for p in paths)


def assumed(err):
    lines = [line for line in err.splitlines() if line.startswith("caffe-port: assuming")]
    assert len(lines) == 1, err
    return lines[0]


def test_saliency_on_nhwc_with_no_other_flag(capsys, tmp_path, keras_files, photo):
    nhwc, nchw = keras_files
    code, out, err = run(capsys, "saliency", photo, "--model", nhwc, "--out", str(tmp_path / "a"))
    assert code == 0, err
    line = assumed(err)
    assert "'input_1' NHWC (from the graph: transposed to channels first for Conv 'conv1')" in line
    assert "RGB pixels 0-255 (Mul 'rescaling/mul' rescales them)" in line
    name = sorted(f for f in os.listdir(tmp_path / "a") if f.endswith(".npy"))[0]
    saliency_map = np.load(tmp_path / "a" / name)
    assert saliency_map.shape == (80, 100)                   # the photograph's own pixels
    code, out, err = run(capsys, "saliency", photo, "--model", nchw, "--out", str(tmp_path / "b"))
    assert code == 0 and "NHWC" not in assumed(err)
    np.testing.assert_allclose(saliency_map, np.load(tmp_path / "b" / name), rtol=0,
                               atol=1e-6 * np.abs(saliency_map).max())


@pytest.mark.parametrize("method", ["deconvnet", "guided", "gradcam", "guided-gradcam", "cam", "smoothgrad", "ig"])
def test_every_method_on_nhwc(capsys, tmp_path, keras_files, photo, method):
    code, out, err = run(capsys, "saliency", photo, "--model", keras_files[0], "--method", method,
                         "--samples", "2", "--steps", "2", "--out", str(tmp_path))
    assert code == 0, err
    maps = [np.load(tmp_path / f) for f in os.listdir(tmp_path) if f.endswith(".npy")]
    assert len(maps) == 1 and maps[0].shape[-2:] == (80, 100) and np.isfinite(maps[0]).all()


def test_classify_localize_and_grid_on_nhwc(capsys, tmp_path, keras_files, photo):
    code, out, err = run(capsys, "classify", photo, "--model", keras_files[0], "--json")
    assert code == 0 and len(json.loads(out)["top_k"]) == 5
    code, out, err = run(capsys, "localize", photo, "--model", keras_files[0], "--json")
    assert code == 0, err
    box = json.loads(out)["boxes"][0]["box"]
    assert box is None or (0 <= box[0] < box[2] <= 100 and 0 <= box[1] < box[3] <= 80)
    code, out, err = run(capsys, "grid", photo, "--model", keras_files[0], "--iterations", "1", "--quiet",
                         "--out", str(tmp_path))
    assert code == 0, err
    assert not [name for name in GRID if f"{name} skipped" in err]   # CAM too: ReduceMean over H, W of NHWC


def small_classifier(path, size, metadata=None):
    model = caffenet(width=0.25, input_size=size, num_classes=7, seed=1)
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, path)
    return str(path)


def test_metadata_states_the_pixels(capsys, tmp_path, photo):
    model = small_classifier(tmp_path / "m.onnx", 67, {"Image.BitmapPixelFormat": "Bgr8",
                                                       "Image.NominalPixelRange": "Normalized_0_1"})
    code, out, err = run(capsys, "classify", photo, "--model", model)
    assert code == 0, err
    assert "the model's image metadata for m.onnx (BGR, /255, resize shorter side 77, crop 67×67)" in assumed(err)
    bad = small_classifier(tmp_path / "bad.onnx", 67, {"Image.NominalPixelRange": "Percent"})
    code, out, err = run(capsys, "classify", photo, "--model", bad)
    assert code == 2 and "Image.NominalPixelRange" in error_line(err) and "normalized_0_1" in error_line(err)


def test_preprocessing_options_for_a_file_we_know_nothing_about(capsys, tmp_path, photo):
    model = small_classifier(tmp_path / "m.onnx", 67)
    code, out, err = run(capsys, "classify", photo, "--model", model, "--scale", "1/255", "--std", "0.5",
                         "--mean", "0.5", "--channel-order", "bgr")
    assert code == 0, err
    assert "(BGR, /255, mean (0.5, 0.5, 0.5), std (0.5, 0.5, 0.5), resize shorter side 77, crop 67×67)" in assumed(err)
    code, out, err = run(capsys, "classify", photo, "--model", model, "--scale", "1/0")
    assert code == 2 and "--scale" in error_line(err)


def test_the_resize_follows_the_input_size(capsys, tmp_path, photo):
    """A 299-pixel net gets torchvision's inception_v3 transform (resize 342); a --resize too small
    for the crop names the option that fixes it."""
    model = small_classifier(tmp_path / "inception_sized.onnx", 299)
    code, out, err = run(capsys, "classify", photo, "--model", model)
    assert code == 0 and "resize shorter side 342, crop 299×299" in assumed(err)
    code, out, err = run(capsys, "classify", photo, "--model", model, "--resize", "256")
    assert code == 2
    assert "crop 299×299 is larger than the resized image 256×320" in error_line(err)
    assert "--resize 299" in error_line(err)


def test_a_layout_no_one_can_tell_asks_for_the_option(capsys, tmp_path, photo):
    """Every dimension symbolic and no convolution: --layout decides."""
    nodes = [helper.make_node("ReduceMean", ["image"], ["pooled"], axes=[1, 2], keepdims=0),
             helper.make_node("MatMul", ["pooled", "w"], ["scores"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", "H", "W", "C"])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, None)],
                              initializer=[initializer("w", np.ones((3, 4), np.float32))])
    path = tmp_path / "undecided.onnx"
    onnx.save(make_model(graph, 17), path)
    code, out, err = run(capsys, "classify", photo, "--model", str(path))
    assert code == 2 and "pass --layout NCHW or --layout NHWC" in error_line(err)
    code, out, err = run(capsys, "classify", photo, "--model", str(path), "--layout", "nhwc", "--top-k", "2")
    assert code == 0, err


def test_an_internal_error_is_one_line_without_traceback(capsys, monkeypatch, small_onnx, photo):
    def broken(*args, **kwargs):
        raise RuntimeError("something nobody planned for\nsecond line")
    monkeypatch.setattr("caffe_port.cli.maps.Saliency", broken)
    monkeypatch.delenv("CAFFE_PORT_TRACEBACK", raising=False)
    code, out, err = run(capsys, "classify", photo, "--model", small_onnx)
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("caffe-port: internal error: RuntimeError: something nobody planned "
                                            "for (CAFFE_PORT_TRACEBACK=1 shows where)")


@pytest.mark.parametrize("method", ["saliency", "guided"])
def test_a_grey_net_reads_the_photograph_as_grey(capsys, tmp_path, photo, method):
    """A one-channel input: the photograph becomes its BT.601 luma; maps in its own pixels."""
    path = tmp_path / "lenet.onnx"
    onnx.save(lenet(input_size=28, channels=1), path)
    code, out, err = run(capsys, "saliency", photo, "--model", str(path), "--method", method,
                         "--out", str(tmp_path / "maps"))
    assert code == 0, err
    assert "(grey, /255" in assumed(err)
    maps = [np.load(tmp_path / "maps" / f) for f in os.listdir(tmp_path / "maps") if f.endswith(".npy")]
    assert maps[0].shape[-2:] == (80, 100) and (maps[0].ndim == 2 or maps[0].shape[0] == 1)
