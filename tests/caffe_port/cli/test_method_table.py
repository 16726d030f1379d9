"""The method table: the CLI's --method choices, and every line builds a method that makes maps."""
import inspect
import re

import numpy as np
import pytest

from caffe_port import methods, render
from caffe_port.cli import build_parser, main
from caffe_port.cli.method_table import GRID, METHODS
from helpers import tiny_nets


def test_method_choices_are_the_table(capsys):
    with pytest.raises(SystemExit):
        main(["saliency", "--help"])
    usage = capsys.readouterr().out
    assert re.search(r"--method \{([^}]*)\}", usage).group(1).split(",") == list(METHODS)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["saliency", "photo.jpg", "--method", "lrp"])
    assert "invalid choice: 'lrp'" in capsys.readouterr().err


def test_every_method_class_has_a_table_line():
    exported = {obj for obj in vars(methods).values()
                if inspect.isclass(obj) and issubclass(obj, methods.Attribution) and not inspect.isabstract(obj)}
    in_table = {entry.method for entry in METHODS.values()}
    # GradientMethod is the plain signed gradient that Saliency, Deconvnet and GuidedBackprop refine
    assert exported - in_table == {methods.GradientMethod}
    assert in_table <= exported


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_in_the_table_makes_maps_on_a_tiny_net(name):
    net = tiny_nets.conv_gap_fc(classes=4, seed=3)           # global pooling: CAM works too
    args = build_parser().parse_args(["saliency", "photo.jpg", "--method", name, "--samples", "3",
                                      "--steps", "4"])
    method = METHODS[name].build(net, args, score_blob=None, labels=None)
    assert isinstance(method, METHODS[name].method) and isinstance(method, methods.Attribution)
    x = np.random.default_rng(4).standard_normal((2, 3, 9, 8)).astype(np.float32)
    maps = method.attribute(x, top_k=2)
    assert maps.shape[:2] == (2, 2) and maps.shape[-2:] == (9, 8)
    assert maps.shape[2:-2] in ((), (3,))                     # (H, W) maps or (C, H, W) signed images
    assert np.all(np.isfinite(maps)) and np.any(maps != 0)
    scores = methods.Saliency(net).scores(x)
    np.testing.assert_array_equal(method.classes_, np.argsort(-scores, axis=1, kind="stable")[:, :2].T)
    photo = np.zeros((9, 8, 3), np.uint8)
    pictures = render.map_pictures(maps[0, 0], photo, METHODS[name].display)
    assert set(pictures) == ({"all", "positive", "negative"} if maps.ndim == 5 else {"grey", "overlay"})


def test_the_grid_methods_build_from_the_grid_options():
    net = tiny_nets.conv_gap_fc(classes=4, seed=3)
    args = build_parser().parse_args(["grid", "photo.jpg", "--layer", "relu1"])
    assert GRID == ("saliency", "deconvnet", "guided", "gradcam", "guided-gradcam", "cam")
    for name in GRID:
        method = METHODS[name].build(net, args, score_blob=None, labels=None)
        if "layer" in METHODS[name].options:
            assert method.layer == "relu1"
