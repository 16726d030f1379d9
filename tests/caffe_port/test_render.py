"""Pictures: grey maps, heat maps, overlays, signed images, grids, boxes, atomic PNG writes."""
import os

import cv2
import numpy as np
import pytest

from caffe_port import render
from caffe_port.errors import InputError, ShapeError


def test_grey_is_min_max_white_salient():
    m = np.array([[0.0, 1.0], [2.0, 4.0]])
    np.testing.assert_array_equal(render.grey(m), [[0, 64], [128, 255]])   # 255·(0, ¼, ½, 1), rounded
    np.testing.assert_array_equal(render.grey(np.full((2, 3), 7.0)), np.zeros((2, 3)))
    with pytest.raises(ShapeError, match="expected an \\(H, W\\) map"):
        render.grey(np.zeros((2, 3, 4)))


def test_heatmap_and_overlay():
    m = np.linspace(0, 1, 12).reshape(3, 4)
    heat = render.heatmap(m)
    assert heat.shape == (3, 4, 3) and heat.dtype == np.uint8
    # JET: the lowest value is dark blue, the highest dark red (in RGB order)
    assert heat[0, 0, 2] > 100 and heat[0, 0, 0] == 0
    assert heat[-1, -1, 0] > 100 and heat[-1, -1, 2] == 0
    photo = np.random.default_rng(0).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    np.testing.assert_array_equal(render.overlay(photo, m, alpha=0.0), photo)
    np.testing.assert_array_equal(render.overlay(photo, m, alpha=1.0), heat)
    half = render.overlay(photo, m)                                    # the documented 0.5 / 0.5
    np.testing.assert_array_equal(half, np.rint(0.5 * photo + 0.5 * heat.astype(float)).astype(np.uint8))
    with pytest.raises(ShapeError, match="does not match the 3×4 image"):
        render.overlay(photo, np.zeros((4, 3)))


def test_signed_all_positive_negative_by_hand():
    g = np.zeros((3, 1, 2))
    g[0, 0] = [2.0, -1.0]          # red channel
    g[2, 0] = [0.0, 4.0]           # blue channel
    parts = render.signed(g)
    # all: (g − (−1)) / (4 − (−1)) → red (0.6, 0), green (0.2, 0.2), blue (0.2, 1)
    np.testing.assert_array_equal(parts["all"][0], [[153, 51, 51], [0, 51, 255]])
    # positive: max(g, 0)/4 → red (.5, 0), blue (0, 1)
    np.testing.assert_array_equal(parts["positive"][0], [[128, 0, 0], [0, 0, 255]])
    # negative: max(−g, 0)/1 → red (0, 1)
    np.testing.assert_array_equal(parts["negative"][0], [[0, 0, 0], [255, 0, 0]])
    # a BGR network's gradient comes back in RGB order
    np.testing.assert_array_equal(render.signed(g[::-1], channel_order="BGR")["all"], parts["all"])
    grey = render.signed(np.array([[[1.0, -1.0]]]))
    np.testing.assert_array_equal(grey["positive"][0], [[255] * 3, [0] * 3])


def test_box_and_grid():
    image = np.zeros((20, 30, 3), np.uint8)
    boxed = render.draw_box(image, (5, 4, 15, 12), colour=(255, 0, 0), thickness=1)
    assert boxed[4, 5:15, 0].min() == 255 and boxed[11, 5:15, 0].min() == 255     # top and bottom rows
    assert boxed[4:12, 5, 0].min() == 255 and boxed[4:12, 14, 0].min() == 255     # left and right columns
    assert boxed[8, 10].sum() == 0 and not image.any()                             # inside untouched, copy
    with pytest.raises(InputError, match="is empty"):
        render.draw_box(image, (5, 4, 5, 12))
    tiles = [np.full((20, 30, 3), 200, np.uint8), np.linspace(0, 1, 600).reshape(20, 30)]
    picture = render.grid(tiles, ["tabby cat 14.2", "saliency"], pad=6)
    height, width = picture.shape[:2]
    assert width == 6 + 2 * (30 + 6)
    text_h = height - 2 * 6 - 20
    assert text_h > 0
    np.testing.assert_array_equal(picture[6 + text_h:6 + text_h + 20, 6:36], tiles[0])
    np.testing.assert_array_equal(picture[6 + text_h:6 + text_h + 20, 42:72, 0], render.grey(tiles[1]))
    assert (picture[6:6 + text_h, 6:36] < 128).any()                              # a caption was drawn
    two_rows = render.grid(tiles * 2, columns=2)
    assert two_rows.shape[0] == 6 + 2 * (20 + 6) and two_rows.shape[1] == width
    with pytest.raises(InputError, match="1 captions for 2 pictures"):
        render.grid(tiles, ["one"])


def test_write_png_round_trip_and_refusal(tmp_path):
    picture = np.random.default_rng(1).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    path = tmp_path / "map.png"
    assert render.write_png(path, picture) == str(path)
    back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1]
    np.testing.assert_array_equal(back, picture)                       # RGB in, RGB back
    with pytest.raises(InputError, match=f"{path} exists; pass force=True"):
        render.write_png(path, np.zeros((2, 2), np.uint8))
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1], picture)
    render.write_png(path, np.full((2, 2), 9, np.uint8), force=True)
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), np.full((2, 2), 9))
    assert sorted(os.listdir(tmp_path)) == ["map.png"]                 # no temporary files left
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask             # not mkstemp's private 0o600
    with pytest.raises(InputError, match="pictures are uint8"):
        render.write_png(tmp_path / "f.png", np.zeros((2, 2)))
    with pytest.raises(InputError, match="does not exist"):
        render.write_png(tmp_path / "no" / "f.png", np.zeros((2, 2), np.uint8))


def test_write_png_is_atomic(tmp_path, monkeypatch):
    """A write that fails half-way leaves the old file whole and no temporary file behind."""
    path = tmp_path / "map.png"
    old = np.full((3, 3), 5, np.uint8)
    render.write_png(path, old)

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        render.write_png(path, np.zeros((50, 50), np.uint8), force=True)
    with pytest.raises(OSError, match="disk full"):
        render.write_png(tmp_path / "new.png", np.zeros((50, 50), np.uint8))
    assert sorted(os.listdir(tmp_path)) == ["map.png"]
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), old)
    # the final name only ever appears whole: it is created by a link/rename of a finished file
    seen = []
    real_replace = os.replace

    def watching_replace(src, dst):
        seen.append(os.path.getsize(src))
        return real_replace(src, dst)

    monkeypatch.undo()
    monkeypatch.setattr(os, "replace", watching_replace)
    render.write_png(path, np.zeros((40, 40), np.uint8), force=True)
    assert seen and seen[0] == os.path.getsize(path)


def test_percentile_saturates_the_brightest_values():
    from caffe_port import render
    ramp = np.arange(100, dtype=np.float64).reshape(10, 10)
    plain = render.grey(ramp)
    assert plain.max() == 255 and np.count_nonzero(plain == 255) == 1
    clipped = render.grey(ramp, percentile=50)
    assert np.count_nonzero(clipped == 255) == 50          # values ≥ the median are white
    g = np.linspace(-1, 1, 3 * 20 * 20).reshape(3, 20, 20)
    g[0, 0, 0] = -100                                       # one outlier
    pictures = render.signed(g, percentile=99)
    assert pictures["negative"].max() == 255 and np.count_nonzero(pictures["negative"] > 200) > 1
    with pytest.raises(Exception, match="percentile"):
        render.grey(ramp, percentile=0)


def test_fit_tile_and_upscale():
    wide = np.random.default_rng(0).integers(0, 256, (100, 448, 3), dtype=np.uint8)
    np.testing.assert_array_equal(render.fit_tile(wide), cv2.resize(wide, (224, 50), interpolation=cv2.INTER_AREA))
    small = np.arange(12, dtype=np.uint8).reshape(3, 4)
    big = render.fit_tile(small, size=8)
    np.testing.assert_array_equal(big, np.repeat(np.repeat(small, 2, axis=0), 2, axis=1))   # nearest: pixels kept
    np.testing.assert_array_equal(render.upscale(small, size=8), big)
    assert render.upscale(wide) is wide                          # already as large: untouched


def test_map_pictures_follow_the_display():
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    m = rng.random((6, 5))
    gradient = render.map_pictures(m, photo, render.GRADIENT)
    np.testing.assert_array_equal(gradient["grey"], render.grey(m, 99.5))
    np.testing.assert_array_equal(gradient["overlay"], render.overlay(photo, m, percentile=99.5))
    smooth = render.map_pictures(m, photo, render.SMOOTH)
    np.testing.assert_array_equal(smooth["grey"], render.grey(m))
    chosen = render.map_pictures(m, photo, render.SMOOTH, percentile=50)
    np.testing.assert_array_equal(chosen["grey"], render.grey(m, 50))
    g = rng.standard_normal((3, 6, 5))
    parts = render.map_pictures(g, photo, render.GRADIENT, channel_order="BGR")
    assert list(parts) == ["all", "positive", "negative"]
    np.testing.assert_array_equal(parts["all"], render.signed(g, "BGR", 99.5)["all"])


def test_method_grid_composes_fitted_tiles():
    rng = np.random.default_rng(2)
    photo = rng.integers(0, 256, (112, 150, 3), dtype=np.uint8)
    m = rng.random((112, 150))
    g = rng.standard_normal((3, 112, 150))
    figure = render.MethodGrid(photo, "tabby (class 281), score 14.20", channel_order="BGR")
    figure.add_map("saliency", m, render.GRADIENT)
    figure.add_map("gradcam", m, render.SMOOTH)
    figure.add_map("guided", g, render.GRADIENT, percentile=90)
    figure.add_box("localisation (10, 20, 60, 80)", (10, 20, 60, 80))
    expected = [photo, render.grey(m, 99.5), render.overlay(photo, m), render.signed(g, "BGR", 90)["all"],
                render.draw_box(photo, (10, 20, 60, 80))]
    assert len(figure.tiles) == len(expected) == len(figure.captions)
    for tile, picture in zip(figure.tiles, expected):
        np.testing.assert_array_equal(tile, render.fit_tile(picture))
    assert figure.tiles[0].shape == (render.TILE * 112 // 150, render.TILE, 3)
    np.testing.assert_array_equal(figure.picture(columns=3), render.grid(figure.tiles, figure.captions, columns=3))


def test_signed_leaves_an_rgba_nets_alpha_out():
    """A 4-channel (RGBA) net's signed image shows its colour channels only."""
    g = np.random.default_rng(7).standard_normal((3, 4, 5))
    with_alpha = np.concatenate([g, np.full((1, 4, 5), 100.0)])
    for kind, picture in render.signed(g).items():
        np.testing.assert_array_equal(render.signed(with_alpha)[kind], picture)
