"""caffe.io: load_image, resize_image, oversample, Transformer, BlobProto/Datum conversion."""
import io as pyio
import types

import cv2
import numpy as np
import pytest

import caffe_port.pycaffe as caffe
from caffe_port.errors import InputError, ShapeError

RNG = np.random.default_rng(0)


def png_bytes(image):
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


# --- load_image -----------------------------------------------------------------------------------

def test_load_image_rgb_from_path_is_float32_rgb_in_unit_range(tmp_path):
    rgb = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "im.png"
    path.write_bytes(png_bytes(rgb[:, :, ::-1]))            # OpenCV writes BGR
    img = caffe.io.load_image(str(path))
    assert img.dtype == np.float32 and img.shape == (5, 7, 3)
    np.testing.assert_array_equal(img, (rgb / 255.0).astype(np.float32))


def test_load_image_reads_a_file_object_whole_from_its_start():
    # as scikit-image's imread: a BytesIO just written (positioned at its end) is read whole
    rgb = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    stream = pyio.BytesIO()
    stream.write(png_bytes(rgb[:, :, ::-1]))
    np.testing.assert_array_equal(caffe.io.load_image(stream), (rgb / 255.0).astype(np.float32))
    stream.seek(3)     # positioned mid-file: still the whole file
    np.testing.assert_array_equal(caffe.io.load_image(stream), (rgb / 255.0).astype(np.float32))


def test_load_image_grey_becomes_three_channels_or_stays_one(tmp_path):
    grey = RNG.integers(0, 256, (6, 5), dtype=np.uint8)
    path = tmp_path / "grey.png"
    path.write_bytes(png_bytes(grey))
    color = caffe.io.load_image(path)
    assert color.shape == (6, 5, 3)
    for c in range(3):
        np.testing.assert_array_equal(color[:, :, c], (grey / 255.0).astype(np.float32))
    single = caffe.io.load_image(path, color=False)
    assert single.shape == (6, 5, 1)
    np.testing.assert_array_equal(single[:, :, 0], (grey / 255.0).astype(np.float32))


def test_load_image_intensity_of_rgb_uses_scikit_image_weights(tmp_path):
    rgb = RNG.integers(0, 256, (4, 3, 3), dtype=np.uint8)
    path = tmp_path / "im.png"
    path.write_bytes(png_bytes(rgb[:, :, ::-1]))
    expected = (0.2125 * rgb[:, :, 0] + 0.7154 * rgb[:, :, 1] + 0.0721 * rgb[:, :, 2]) / 255.0
    got = caffe.io.load_image(path, color=False)
    assert got.shape == (4, 3, 1)
    np.testing.assert_allclose(got[:, :, 0], expected, rtol=1e-6)   # float32 rounding


def test_load_image_matches_scikit_image(tmp_path):
    skio = pytest.importorskip("skimage.io")
    import skimage
    rgb = RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    path = tmp_path / "im.png"
    path.write_bytes(png_bytes(rgb[:, :, ::-1]))
    np.testing.assert_array_equal(caffe.io.load_image(path),
                                  skimage.img_as_float(skio.imread(path)).astype(np.float32))
    grey = skimage.img_as_float(skio.imread(path, as_gray=True)).astype(np.float32)
    np.testing.assert_array_equal(caffe.io.load_image(path, color=False)[:, :, 0], grey)


def test_load_image_drops_alpha_and_scales_16_bit(tmp_path):
    bgra = RNG.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    path = tmp_path / "rgba.png"
    path.write_bytes(png_bytes(bgra))
    np.testing.assert_array_equal(caffe.io.load_image(path),
                                  (bgra[:, :, [2, 1, 0]] / 255.0).astype(np.float32))
    deep = RNG.integers(0, 65536, (3, 4), dtype=np.uint16)
    path16 = tmp_path / "deep.png"
    path16.write_bytes(png_bytes(deep))
    np.testing.assert_array_equal(caffe.io.load_image(path16, color=False)[:, :, 0],
                                  (deep / 65535.0).astype(np.float32))


def test_load_image_jpeg_decodes_as_pil_does(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    rgb = RNG.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", rgb[:, :, ::-1])
    path = tmp_path / "im.jpg"
    path.write_bytes(encoded.tobytes())
    expected = np.asarray(image_module.open(path).convert("RGB")) / 255.0
    np.testing.assert_array_equal(caffe.io.load_image(path), expected.astype(np.float32))


def test_load_image_errors_are_one_line_input_errors(tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not an image")
    # bytes before the image: imread refuses them too (it reads from the start)
    prefixed = pyio.BytesIO(b"a header" + png_bytes(np.zeros((2, 2), np.uint8)))
    prefixed.seek(len(b"a header"))
    cases = [(str(tmp_path / "nope.jpg"), "image not found: .*nope.jpg"),
             (tmp_path, "directory"),
             (junk, "junk.jpg: not an image format"),
             (prefixed, "not an image format"),
             (pyio.StringIO("abc"), "text mode"),
             (42, "path or a binary file object")]
    for source, message in cases:
        with pytest.raises(InputError, match=message) as caught:
            caffe.io.load_image(source)
        assert "\n" not in str(caught.value)


# --- resize_image ---------------------------------------------------------------------------------

def test_resize_image_bilinear_reads_zeros_beyond_the_edge_of_the_normalised_image():
    """1×2 → 1×4: samples at x = −0.25, 0.25, 0.75, 1.25 of [0, 1] (outside reads 0), then
    scaled back from [0, 1] to [2, 4]: the edges lean towards the minimum, as in Caffe."""
    im = np.array([[[2.0], [4.0]]], dtype=np.float32)
    got = caffe.io.resize_image(im, (1, 4))
    assert got.dtype == np.float32 and got.shape == (1, 4, 1)
    np.testing.assert_allclose(got[0, :, 0], [2.0, 2.5, 3.5, 3.5], rtol=1e-6)


def test_resize_image_nearest_rounds_halves_up():
    """8 → 4 samples at 2i + 0.5, which order 0 rounds to 2i + 1."""
    im = np.arange(8, dtype=np.float32).reshape(1, 8, 1)
    np.testing.assert_array_equal(caffe.io.resize_image(im, (1, 4), interp_order=0)[0, :, 0],
                                  [1, 3, 5, 7])


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("dims", [(14, 18), (3, 4), (5, 5), (10, 3)])
def test_resize_image_matches_scikit_image_without_antialiasing(order, dims):
    transform = pytest.importorskip("skimage.transform")
    im = (RNG.random((7, 9, 3)) * 200 - 50).astype(np.float32)
    lo, hi = im.min(), im.max()
    expected = transform.resize((im - lo) / (hi - lo), dims, order=order, mode="constant",
                                anti_aliasing=False) * (hi - lo) + lo
    np.testing.assert_allclose(caffe.io.resize_image(im, dims, order), expected, rtol=0,
                               atol=2e-5)   # float32 storage of values up to 150


@pytest.mark.parametrize("order", [0, 1])
def test_resize_image_other_channel_counts_zoom_with_aligned_corners(order):
    ndimage = pytest.importorskip("scipy.ndimage")
    im = RNG.random((6, 8, 4)).astype(np.float32)
    got = caffe.io.resize_image(im, (11, 5), order)
    expected = ndimage.zoom(im.astype(np.float64), (11 / 6, 5 / 8, 1), order=order)
    assert got.shape == (11, 5, 4)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_resize_image_constant_image_and_bad_order():
    got = caffe.io.resize_image(np.full((3, 4, 3), 7.5, np.float64), (5, 6))
    assert got.dtype == np.float32 and got.shape == (5, 6, 3) and np.all(got == 7.5)
    with pytest.raises(InputError, match="interp_order"):
        caffe.io.resize_image(np.zeros((3, 4, 3)), (5, 6), interp_order=7)


# --- oversample -----------------------------------------------------------------------------------

def test_oversample_gives_ten_crops_in_caffes_order():
    height, width = 7, 9
    yy, xx = np.mgrid[0:height, 0:width]
    first = np.stack([1000 * yy + xx, -(1000 * yy + xx)], axis=-1).astype(np.float64)
    images = [first, first + 0.5]
    crops = caffe.io.oversample(images, (4, 5))
    assert crops.shape == (20, 4, 5, 2) and crops.dtype == np.float32
    # top-left, top-right, bottom-left, bottom-right, centre (Caffe: trunc(3.5 − 2),
    # trunc(4.5 − 2.5))
    origins = [(0, 0), (0, 4), (3, 0), (3, 4), (1, 2)]
    for n, image in enumerate(images):
        for k, (top, left) in enumerate(origins):
            window = image[top:top + 4, left:left + 5]
            np.testing.assert_array_equal(crops[10 * n + k], window)
            np.testing.assert_array_equal(crops[10 * n + 5 + k], window[:, ::-1])


def test_oversample_refuses_crops_larger_than_the_image():
    with pytest.raises(ShapeError, match="larger"):
        caffe.io.oversample([np.zeros((4, 4, 3))], (5, 3))


# --- Transformer ----------------------------------------------------------------------------------

def configured(shape=(1, 3, 4, 5)):
    t = caffe.io.Transformer({"data": shape})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255)
    t.set_mean("data", np.array([104.0, 117.0, 123.0]))
    t.set_input_scale("data", 0.5)
    return t


def test_transformer_preprocess_in_caffes_order_and_float32():
    image = RNG.random((4, 5, 3))
    before = image.copy()
    got = configured().preprocess("data", image)
    rgb_to_bgr = image.astype(np.float32).astype(np.float64).transpose(2, 0, 1)[::-1]
    expected = (rgb_to_bgr * 255 - np.array([104.0, 117.0, 123.0])[:, None, None]) * 0.5
    assert got.dtype == np.float32 and got.shape == (3, 4, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)   # float32 steps
    np.testing.assert_array_equal(image, before)                       # the caller's array is kept


def test_transformer_deprocess_undoes_preprocess():
    image = RNG.random((4, 5, 3)).astype(np.float32)
    t = configured()
    back = t.deprocess("data", t.preprocess("data", image)[np.newaxis])
    assert back.shape == (4, 5, 3)
    np.testing.assert_allclose(back, image, rtol=0, atol=2e-6)   # float32 round trip of 255·x


def test_transformer_resizes_images_of_another_size_first():
    image = RNG.random((8, 10, 3)).astype(np.float32)
    t = configured()
    expected = configured().preprocess("data", caffe.io.resize_image(image, (4, 5)))
    np.testing.assert_array_equal(t.preprocess("data", image), expected)


def test_transformer_mean_image_of_another_size_is_resized_as_caffe_does():
    """A linear ramp halved in size: bilinear samples at 2i + 0.5 are means of neighbours."""
    c, y, x = np.mgrid[0:3, 0:8, 0:10].astype(np.float64)
    mean = 10 * c + y + 0.1 * x
    t = caffe.io.Transformer({"data": (1, 3, 4, 5)})
    t.set_mean("data", mean)
    ci, yi, xi = np.mgrid[0:3, 0:4, 0:5].astype(np.float64)
    expected = 10 * ci + (2 * yi + 0.5) + 0.1 * (2 * xi + 0.5)
    assert t.mean["data"].shape == (3, 4, 5)
    np.testing.assert_allclose(t.mean["data"], expected, rtol=0, atol=1e-4)  # float32 resize
    same = caffe.io.Transformer({"data": (1, 3, 8, 10)})
    same.set_mean("data", mean)
    np.testing.assert_array_equal(same.mean["data"], mean)


def test_transformer_rejects_settings_that_do_not_fit():
    t = caffe.io.Transformer({"data": (1, 3, 4, 5)})
    with pytest.raises(InputError, match="'label' is not one of"):
        t.set_raw_scale("label", 255)
    with pytest.raises(ShapeError, match="3 channels"):
        t.set_channel_swap("data", (1, 0))
    with pytest.raises(ShapeError, match="3 axes"):
        t.set_transpose("data", (1, 0))
    with pytest.raises(ShapeError, match="does not fit"):
        t.set_mean("data", np.zeros(4))


# --- BlobProto / Datum ----------------------------------------------------------------------------

def test_blobproto_round_trip_and_legacy_mean_file(tmp_path):
    array = RNG.random((2, 3, 4)).astype(np.float32)
    blob = caffe.io.array_to_blobproto(array, diff=2 * array)
    back = caffe.io.blobproto_to_array(blob)
    assert back.dtype == np.float64 and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob, return_diff=True), 2 * array)

    # an ilsvrc_2012_mean.binaryproto is a legacy 4-D blob (num, channels, height, width)
    mean = (RNG.random((1, 3, 6, 5)) * 255).astype(np.float32)
    legacy = caffe.proto.caffe_pb2.BlobProto()
    legacy.num, legacy.channels, legacy.height, legacy.width = 1, 3, 6, 5
    legacy.data.extend(mean.ravel().tolist())
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(legacy.SerializeToString())
    # the forum recipe
    blob = caffe.proto.caffe_pb2.BlobProto()
    data = open(path, "rb").read()
    blob.ParseFromString(data)
    arr = np.array(caffe.io.blobproto_to_array(blob))
    np.testing.assert_array_equal(arr[0], mean[0])


def test_blobprotovector_round_trip():
    arrays = [RNG.random((2, 3)).astype(np.float32), RNG.random((4,)).astype(np.float32)]
    back = caffe.io.blobprotovector_str_to_arraylist(
        caffe.io.arraylist_to_blobprotovector_str(arrays))
    assert [b.shape for b in back] == [(2, 3), (4,)]
    for a, b in zip(arrays, back):
        np.testing.assert_array_equal(a, b)


def test_datum_to_array_bytes_floats_and_encoded():
    pixels = RNG.integers(0, 256, (3, 2, 4), dtype=np.uint8)
    datum = types.SimpleNamespace(channels=3, height=2, width=4, data=pixels.tobytes(),
                                  float_data=[], encoded=False, label=5)
    got = caffe.io.datum_to_array(datum)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, pixels)
    floats = types.SimpleNamespace(channels=1, height=2, width=3, data=b"",
                                   float_data=[0.5, 1, 2, 3, 4, 5], encoded=False)
    np.testing.assert_array_equal(caffe.io.datum_to_array(floats),
                                  np.array([0.5, 1, 2, 3, 4, 5]).reshape(1, 2, 3))
    encoded = types.SimpleNamespace(channels=0, height=0, width=0, data=b"\xff\xd8", encoded=True,
                                    float_data=[])
    with pytest.raises(InputError, match="load_image"):
        caffe.io.datum_to_array(encoded)


def test_array_to_datum_round_trip():
    pixels = RNG.integers(0, 256, (3, 2, 4), dtype=np.uint8)
    datum = caffe.io.array_to_datum(pixels, label=2)
    assert datum.label == 2 and (datum.channels, datum.height, datum.width) == (3, 2, 4)
    np.testing.assert_array_equal(caffe.io.datum_to_array(datum), pixels)
    floats = RNG.standard_normal((2, 3, 1)).astype(np.float32)
    np.testing.assert_array_equal(caffe.io.datum_to_array(caffe.io.array_to_datum(floats)), floats)
