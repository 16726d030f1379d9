"""Pre-processing presets, image kinds, and maps back to the photograph's pixels."""
import numpy as np
import pytest

from caffe_port.errors import InputError, ShapeError
from caffe_port.preprocess import Preset, as_rgb, load_image, preset

RNG = np.random.default_rng(40)


def constant(height, width, rgb):
    return np.broadcast_to(np.array(rgb, np.uint8), (height, width, 3)).copy()


def test_caffe_preset_by_hand():
    """R, G, B = 10, 20, 30 → BGR minus the mean pixel (104, 117, 123): 30 − 104, 20 − 117, 10 − 123."""
    data = preset("caffe").preprocess(constant(300, 400, (10, 20, 30)))
    assert data.shape == (1, 3, 227, 227) and data.dtype == np.float32
    np.testing.assert_array_equal(data[0, :, 0, 0], [-74, -97, -113])
    assert np.all(data == data[:, :, :1, :1])
    assert preset("caffe", crop=224).preprocess(constant(300, 400, (10, 20, 30))).shape == (1, 3, 224, 224)


def test_torchvision_preset_by_hand():
    """RGB/255 = 0.2, 0.4, 0.8 → (v − mean)/std per channel; shorter side 256 → 256×341 → 224²."""
    data = preset("torchvision").preprocess(constant(300, 400, (51, 102, 204)))
    assert data.shape == (1, 3, 224, 224)
    want = (np.array([0.2, 0.4, 0.8]) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(data[0, :, 5, 7], want, rtol=1e-6)
    assert preset("torchvision").geometry((300, 400)).resized == (256, 341)


def test_efficientnet_preset_is_the_models_own_preprocessing():
    efficientnet_lite = pytest.importorskip("caffe_port.models.efficientnet_lite")
    p = preset("efficientnet-lite0")
    assert (p.resize, p.crop, p.channel_order, p.interpolation) == (256, (224, 224), "RGB", "cubic")
    for shape in ((300, 411, 3), (256, 256, 3), (500, 333, 3)):
        image = RNG.integers(0, 256, shape, dtype=np.uint8)
        np.testing.assert_array_equal(p.preprocess(image), efficientnet_lite.preprocess(image))


def test_deprocess_inverts_preprocess():
    image = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    for name in ("caffe", "torchvision", "none"):
        p = preset(name, resize=None, crop=None)
        np.testing.assert_array_equal(p.deprocess(p.preprocess(image)), image, err_msg=name)
    with pytest.raises(ShapeError, match="deprocess expects"):
        preset("none").deprocess(np.zeros((2, 3, 4, 4)))


def test_to_original_footprint_by_hand():
    """Caffe preset on 300×400: resize to 256×256, crop 227 at (14, 14). Original row v lands at
    (v + ½)·256/300 − ½ − 14 in the crop, inside for −½ … 226½: v + ½ ∈ [16.41, 282.42], so rows
    16…281; columns: (u + ½)·256/400 ∈ [14, 241] → u + ½ ∈ [21.88, 376.56], columns 22…376."""
    p = preset("caffe")
    back = p.to_original(np.ones((227, 227), np.float32), (300, 400))
    assert back.shape == (300, 400)
    rows, cols = np.nonzero(back)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (16, 281, 22, 376)
    np.testing.assert_array_equal(back[16:282, 22:377], 1)
    # a single bright crop pixel (100, 50) comes back around its centre: original row 134 sits at
    # crop y = 134.5·256/300 − 14.5 = 100.273, column 100 at crop x = 100.5·256/400 − 14.5 = 49.82;
    # bilinear weights (1 − 0.273)(1 − 0.18)
    delta = np.zeros((227, 227), np.float32)
    delta[100, 50] = 1
    back = p.to_original(delta, (300, 400))
    assert np.unravel_index(np.argmax(back), back.shape) == (134, 100)
    dy, dx = 134.5 * 256 / 300 - 14.5 - 100, 50 - (100.5 * 256 / 400 - 14.5)
    np.testing.assert_allclose(back[134, 100], (1 - dy) * (1 - dx), rtol=1e-5)
    # several maps at once, and the wrong size refused
    assert p.to_original(np.zeros((2, 5, 227, 227)), (300, 400)).shape == (2, 5, 300, 400)
    with pytest.raises(ShapeError, match="does not fit the network's 227×227 input"):
        p.to_original(np.zeros((224, 224)), (300, 400))


def test_to_original_is_exact_on_a_ramp():
    """Bilinear sampling reproduces a linear function: a map equal to x_c + ½·y_c (crop
    coordinates) comes back as x_c(u) + ½·y_c(v) with x_c(u) = (u + ½)·W_r/W_0 − ½ − left."""
    p = preset("torchvision")                                   # 300×400 → 256×341, crop at (16, 58)
    g = p.geometry((300, 400))
    assert (g.resized, g.top, g.left) == ((256, 341), 16, 58)
    yc, xc = np.mgrid[:224, :224].astype(np.float32)
    back = p.to_original(xc + 0.5 * yc, (300, 400))
    v, u = np.mgrid[:300, :400]
    want = ((u + 0.5) * 341 / 400 - 0.5 - 58) + 0.5 * ((v + 0.5) * 256 / 300 - 0.5 - 16)
    rows, cols = np.nonzero(g.covered())
    # the outermost covered rows/columns sample within half a pixel of the crop's edge, where
    # the border is replicated rather than extrapolated: left out
    inner = g.covered() & (v > rows.min()) & (v < rows.max()) & (u > cols.min()) & (u < cols.max())
    np.testing.assert_allclose(back[inner], want[inner], atol=2e-3)   # float32 coordinates
    assert not back[~g.covered()].any()


def test_oversample_and_merge():
    image = RNG.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    p = preset("caffe")
    crops = p.oversample(image)
    assert crops.shape == (10, 3, 227, 227)
    np.testing.assert_array_equal(crops[4:5], p.preprocess(image))          # the centre crop
    np.testing.assert_array_equal(crops[5:], crops[:5, :, :, ::-1])         # then the mirrors
    g = p.geometry((300, 400), crop_index=3)                                # bottom-right
    assert (g.top, g.left, g.mirrored) == (29, 29, False)
    # crop k's map is the constant k + 1: a pixel gets the mean over the crops that contain it.
    # (5, 5) → resized (3.8, 3.0): top-left boxes only, crops 0 and 5 → (1 + 6)/2;
    # (150, 5) → (127.9, 3.0): the left boxes, crops 0, 2, 5, 7 → 4.5; the centre: all ten → 5.5
    maps = np.arange(1, 11, dtype=np.float32)[:, None, None] * np.ones((10, 227, 227), np.float32)
    merged = p.merge_oversampled(maps, (300, 400))
    assert merged.shape == (300, 400)
    np.testing.assert_allclose([merged[5, 5], merged[150, 5], merged[150, 200]], [3.5, 4.5, 5.5], rtol=1e-6)
    # a map that is 1 on each crop's left half: at column 5 the unmirrored left crops see their
    # left edge (1), the mirrored ones see it at their right edge (0)
    halves = np.zeros((10, 227, 227), np.float32)
    halves[:, :, :113] = 1
    merged = p.merge_oversampled(halves, (300, 400))
    assert merged[150, 5] == 0.5 and merged[150, 395] == 0.5


def test_image_kinds():
    rgb = RNG.integers(0, 256, (12, 9, 3), dtype=np.uint8)
    grey = rgb[..., 0]
    np.testing.assert_array_equal(as_rgb(grey), np.stack([grey] * 3, axis=2))
    np.testing.assert_array_equal(as_rgb(grey[..., None]), np.stack([grey] * 3, axis=2))
    rgba = np.concatenate([rgb, np.full((12, 9, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(as_rgb(rgba), rgb)
    deep = (rgb.astype(np.uint16) * 257)                       # 16-bit: 255 · 257 = 65535
    np.testing.assert_allclose(as_rgb(deep), rgb, atol=1e-4)
    np.testing.assert_allclose(as_rgb(rgb / 255.0), rgb, atol=1e-4)         # floats in 0…1
    np.testing.assert_allclose(as_rgb(rgb.astype(np.float64)), rgb)          # floats in 0…255
    np.testing.assert_array_equal(as_rgb(np.eye(3, dtype=bool))[..., 1], np.eye(3) * 255)
    with pytest.raises(InputError, match="got shape \\(4, 5, 6\\)"):
        as_rgb(np.zeros((4, 5, 6)))
    with pytest.raises(InputError, match="NaN"):
        as_rgb(np.full((4, 4), np.nan))
    with pytest.raises(InputError, match="0…1 or 0…255"):
        as_rgb(np.full((4, 4), 300.0))
    with pytest.raises(InputError, match="empty"):
        as_rgb(np.zeros((0, 4, 3)))
    with pytest.raises(InputError, match="not a numeric image"):
        as_rgb(np.array([["a"]]))


def test_huge_images_are_resized_by_area_averaging():
    """A 1-pixel checkerboard of 2600² shrunk to 256²: area averaging gives flat grey (127.5);
    a bilinear resize at a factor of 10 samples scattered pixels and keeps stark contrast."""
    yy, xx = np.mgrid[:2600, :2600]
    board = (((yy + xx) % 2) * 255).astype(np.uint8)
    data = preset("caffe", resize=(256, 256), crop=None).preprocess(board)
    assert data[0].std(axis=(1, 2)).max() < 1.0 and abs(data[0, 0].mean() - (127.5 - 104)) < 1.0
    direct = preset("caffe", resize=(256, 256), crop=None, max_side=4096).preprocess(board)
    assert direct[0].std(axis=(1, 2)).min() > 20


def test_load_image_16_bit_grey_and_errors(tmp_path):
    import cv2
    grey16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), grey16)
    image = load_image(path)
    assert image.shape == (3, 4, 3)
    np.testing.assert_allclose(image[..., 0], grey16.astype(np.float64) * 255 / 65535, rtol=1e-5)
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 200                                 # blue in OpenCV's order
    cv2.imwrite(str(tmp_path / "blue.png"), bgr)
    np.testing.assert_array_equal(load_image(tmp_path / "blue.png")[0, 0], [0, 0, 200])
    with pytest.raises(InputError, match="nothere.png: image file not found"):
        load_image(tmp_path / "nothere.png")
    (tmp_path / "text.png").write_text("not a picture")
    with pytest.raises(InputError, match="text.png: not an image file OpenCV can read"):
        load_image(tmp_path / "text.png")


def test_bad_presets():
    with pytest.raises(InputError, match="unknown preset 'vgg'"):
        preset("vgg")
    with pytest.raises(InputError, match="channel_order must be 'RGB' or 'BGR'"):
        Preset("x", channel_order="GBR")
    with pytest.raises(InputError, match="crop 300×300 is larger than the resized image 256×256"):
        preset("caffe", crop=300).preprocess(constant(10, 10, (1, 2, 3)))
    with pytest.raises(InputError, match="interpolation must be one of"):
        preset("caffe", interpolation="bilinear")
